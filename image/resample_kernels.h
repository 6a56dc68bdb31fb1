/* resample_kernels.h - the horizontal pass of image/resample.c: one source row
 * through one axis of fixed-point weights, a scalar reference and an AVX2 twin
 * that give the same bytes (integer sums: exact in any order).
 *
 * The vertical pass likewise: one output row from the rows of its window.
 *
 * Weights are Pillow's: w = round(k * 2^22), |w| < 2^23 and 255 * sum|w| + 2^21
 * below 2^31 for every output (resample.c refuses other tables). The AVX2 twin
 * reads them split, w = wh * 4096 + wl with wl in [0, 4096): both halves fit
 * int16, so pmaddwd multiplies 16 taps per instruction exactly, and the two
 * sums are joined modulo 2^32, which is exact because the true sum fits int32.
 */
#ifndef EFFCAM_RESAMPLE_KERNELS_H
#define EFFCAM_RESAMPLE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define EC_RS_FRAC_BITS 22
#define EC_RS_SPLIT_BITS 12          /* w = wh << 12 | wl */

typedef struct {
    int in_w, out_w, channels;       /* channels 1..4, interleaved */
    const int32_t *span;             /* [out_w][2]: first source pixel, taps */
    const int32_t *w;                /* [out_w][taps]: weights (reference) */
    int taps;
    const int16_t *wh, *wl;          /* [out_w][taps16]: split weights, 0 past the taps */
    int taps16;                      /* taps rounded up to 16 */
} ec_rs_hpass;

/* Scratch the AVX2 twin needs: channel planes of the row, padded. */
size_t ec_u8_resample_h_scratch_bytes(int in_w, int channels);

/* in: [in_w][channels] -> out: [out_w][channels]. */
void ec_u8_resample_h__ref(const ec_rs_hpass *p, const uint8_t *in, uint8_t *out);
void ec_u8_resample_h__avx2(const ec_rs_hpass *p, const uint8_t *in, uint8_t *out, uint8_t *scratch);

/* Vertical: rows[i] is tap i's row (len bytes), w[i] its weight -> out[len].
 * Channels do not matter: every byte of a row has the same weight. */
void ec_u8_resample_v__ref(const uint8_t *const *rows, const int32_t *w, int n, uint8_t *out, size_t len);
void ec_u8_resample_v__avx2(const uint8_t *const *rows, const int32_t *w, int n, uint8_t *out, size_t len);

#endif
