/* input.c - an image's rows into the model's input (and the overlay's base):
 * the reader (or the caller's pixels) feeds, row by row, one resampler per
 * target, so a photo is never held whole and both targets come from the same
 * decode (docs/semantics.md 1, 3, 5). */
#include <stdlib.h>
#include <string.h>

#include "../engine/error.h"
#include "image.h"
#include "reader.h"
#include "resample.h"

/* Rows read from the decoder at a time: few calls, a small buffer (a 4000-px
 * row is 12 KB). */
#define IN_BATCH 16

void ec_input_scratch_free(ec_input_scratch *sc)
{
    free(sc->mem);
    free(sc->rows);
    memset(sc, 0, sizeof *sc);
}

/* Grows *p to n bytes (16-byte aligned, for the resamplers); 0 or -1. */
static int in_reserve(void **p, size_t *cap, size_t n)
{
    if (n <= *cap) return 0;
    void *np = NULL;
    if (posix_memalign(&np, 64, n ? n : 1)) return -1;
    free(*p);
    *p = np;
    *cap = n;
    return 0;
}

ec_status ec_input_run(const ec_input_spec *sp, ec_img *im, const uint8_t *rgb, int w, int h, ec_input_scratch *sc)
{
    if (im) ec_img_size(im, &w, &h);
    if (w <= 0 || h <= 0) return ec_fail(EC_ERR_ARG, "image %dx%d: empty", w, h);
    if ((int64_t)w * h > sp->max_pixels)
        return ec_fail(EC_ERR_LIMIT, "image %dx%d exceeds max_pixels (%lld)", w, h, (long long)sp->max_pixels);
    const int n_out = sp->base ? 2 : 1;
    size_t b0 = ec_resampler_bytes(sp->filter, w, h, sp->dst_w, sp->dst_h, 3);
    size_t b1 = n_out > 1 ? ec_resampler_bytes(sp->base_filter, w, h, sp->dst_w, sp->dst_h, 3) : 0;
    if (!b0 || (n_out > 1 && !b1))
        return ec_fail(EC_ERR_LIMIT, "cannot resize a %dx%d image to %dx%d (over the resampler's limits)", w, h,
                       sp->dst_w, sp->dst_h);
    size_t a0 = (b0 + 63) & ~(size_t)63;
    /* grows only when a larger source arrives; steady state allocates nothing */
    if (in_reserve(&sc->mem, &sc->cap, a0 + b1) ||
        (im && in_reserve((void **)&sc->rows, &sc->rows_cap, (size_t)IN_BATCH * w * 3)))
        return ec_fail(EC_ERR_NOMEM, "out of memory (resampling a %dx%d image)", w, h);
    ec_resampler *r[2] = { NULL, NULL };
    ec_status st = ec_resampler_init(sc->mem, b0, sp->filter, w, h, sp->dst_w, sp->dst_h, 3, sp->dst, &r[0]);
    if (st == EC_OK && n_out > 1)
        st = ec_resampler_init((uint8_t *)sc->mem + a0, b1, sp->base_filter, w, h, sp->dst_w, sp->dst_h, 3, sp->base,
                               &r[1]);
    const size_t stride = (size_t)w * 3;
    for (int y = 0; st == EC_OK && y < h;) {
        const uint8_t *rows;
        int got;
        if (im) {
            st = ec_img_read_rows(im, sc->rows, IN_BATCH, &got);
            if (st == EC_OK && got == 0)
                st = ec_fail(EC_ERR_IMAGE, "the image ended after %d of its %d rows", y, h);
            rows = sc->rows;
        } else {
            got = h - y < IN_BATCH ? h - y : IN_BATCH;
            rows = rgb + (size_t)y * stride;
        }
        for (int i = 0; st == EC_OK && i < got; i++)
            for (int k = 0; k < n_out && st == EC_OK; k++) st = ec_resampler_push(r[k], rows + (size_t)i * stride);
        y += got;
    }
    for (int k = 0; st == EC_OK && k < n_out; k++)
        if (ec_resampler_rows_done(r[k]) != sp->dst_h)
            st = ec_fail(EC_ERR_INTERNAL, "resize %dx%d -> %dx%d ended early", w, h, sp->dst_w, sp->dst_h);
    return st;
}
