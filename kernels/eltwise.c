/* eltwise.c - global average pooling, elementwise ops, zero padding:
 * references, dispatch, and zeropad (a pure copy, no SIMD variant needed). */
#include <string.h>

#include "kernels/kernels.h"

/* Pixels per partial sum in GAP. Summing a long run straight into one float
 * grows the rounding error with hw (a 150 x 150 map is 22500 terms); summing
 * blocks of 64 and then the block sums keeps it near (64 + hw / 64) ulp. The
 * AVX2 and AVX-512 kernels use the same blocking: bit-identical results. */
#define EC_GAP_BLOCK 64

/* x: (hw, c), rows ldx apart -> out: (c), mean over hw (0 for hw == 0). */
void ec_f32_gap__ref(const float *restrict x, size_t hw, int c, size_t ldx, float *restrict out)
{
    for (int j = 0; j < c; j++) {
        float total = 0.0f;
        for (size_t p0 = 0; p0 < hw; p0 += EC_GAP_BLOCK) {
            const size_t p1 = hw - p0 < EC_GAP_BLOCK ? hw : p0 + EC_GAP_BLOCK;
            float part = 0.0f;
            for (size_t p = p0; p < p1; p++) part += x[p * ldx + j];
            total += part;
        }
        out[j] = hw ? total / (float)hw : 0.0f;
    }
}

void ec_f32_gap(const float *x, size_t hw, int c, size_t ldx, float *out)
{
    if (ec_cpu_has_avx512()) ec_f32_gap__avx512(x, hw, c, ldx, out);
    else if (ec_cpu_has_avx2()) ec_f32_gap__avx2(x, hw, c, ldx, out);
    else ec_f32_gap__ref(x, hw, c, ldx, out);
}

/* GAP backward: dx[p * ldx + j] = dout[j] / hw for every pixel p (plus the old
 * dx[...] when acc: a tensor feeding both a GAP and another consumer, the SE
 * block's input). dout[j] / hw is rounded once per channel. The twins divide
 * once per channel into a buffer, then store (or add) it row by row: the same
 * quotient and sum, so the same bits. */
void ec_f32_gap_backward__ref(const float *restrict dout, size_t hw, int c, size_t ldx, float *restrict dx, int acc)
{
    if (!hw) return;
    for (size_t p = 0; p < hw; p++) {
        float *d = dx + p * ldx;
        for (int j = 0; j < c; j++) {
            const float g = dout[j] / (float)hw;
            d[j] = acc ? d[j] + g : g;
        }
    }
}

void ec_f32_gap_backward(const float *dout, size_t hw, int c, size_t ldx, float *dx, int acc)
{
    if (ec_cpu_has_avx512()) ec_f32_gap_backward__avx512(dout, hw, c, ldx, dx, acc);
    else if (ec_cpu_has_avx2()) ec_f32_gap_backward__avx2(dout, hw, c, ldx, dx, acc);
    else ec_f32_gap_backward__ref(dout, hw, c, ldx, dx, acc);
}

/* a, b, out: (n); out may alias a or b exactly (no restrict). */
void ec_f32_add__ref(const float *a, const float *b, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void ec_f32_mul__ref(const float *a, const float *b, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}

/* x, out: (hw, c), out may alias x; s: (c). */
void ec_f32_mul_bcast__ref(const float *x, const float *s, float *out, size_t hw, int c)
{
    for (size_t p = 0; p < hw; p++)
        for (int j = 0; j < c; j++) out[p * c + j] = x[p * c + j] * s[j];
}

/* Multiply backward, broadcast side: out[p, j] = x[p, j] * s[j] (either operand
 * order) gives ds[j] = sum_p dout[p, j] * x[p, j]; x and dout rows ld >= c floats
 * apart (a channel range of a wider tensor: each channel's sum is the same
 * whatever the range). Summed in blocks of EC_GAP_BLOCK pixels as GAP is, in
 * float: the AVX2 twin does the same multiplies and adds in the same order and
 * gives the same bits. The full-shape side is dx = dout * s: ec_f32_mul_bcast.
 * A full-shape Multiply (no broadcast) is da = dout * b, db = dout * a:
 * ec_f32_mul twice. */
void ec_f32_mul_bcast_backward__ref(const float *restrict x, const float *restrict dout, size_t hw, int c,
                                    size_t ld, float *restrict ds)
{
    for (int j = 0; j < c; j++) {
        float total = 0.0f;
        for (size_t p0 = 0; p0 < hw; p0 += EC_GAP_BLOCK) {
            const size_t p1 = hw - p0 < EC_GAP_BLOCK ? hw : p0 + EC_GAP_BLOCK;
            float part = 0.0f;
            for (size_t p = p0; p < p1; p++) part += dout[p * ld + j] * x[p * ld + j];
            total += part;
        }
        ds[j] = total;
    }
}

void ec_f32_mul_bcast_backward(const float *x, const float *dout, size_t hw, int c, size_t ld, float *ds)
{
    if (ec_cpu_has_avx2()) ec_f32_mul_bcast_backward__avx2(x, dout, hw, c, ld, ds);
    else ec_f32_mul_bcast_backward__ref(x, dout, hw, c, ld, ds);
}

void ec_f32_add(const float *a, const float *b, float *out, size_t n)
{
    if (ec_cpu_has_avx512()) ec_f32_add__avx512(a, b, out, n);
    else if (ec_cpu_has_avx2()) ec_f32_add__avx2(a, b, out, n);
    else ec_f32_add__ref(a, b, out, n);
}

void ec_f32_mul(const float *a, const float *b, float *out, size_t n)
{
    if (ec_cpu_has_avx512()) ec_f32_mul__avx512(a, b, out, n);
    else if (ec_cpu_has_avx2()) ec_f32_mul__avx2(a, b, out, n);
    else ec_f32_mul__ref(a, b, out, n);
}

void ec_f32_mul_bcast(const float *x, const float *s, float *out, size_t hw, int c)
{
    if (ec_cpu_has_avx512()) ec_f32_mul_bcast__avx512(x, s, out, hw, c);
    else if (ec_cpu_has_avx2()) ec_f32_mul_bcast__avx2(x, s, out, hw, c);
    else ec_f32_mul_bcast__ref(x, s, out, hw, c);
}

/* x: (h, w, c) -> out: (h + pt + pb, w + pl + pr, c). Row by row: each output
 * byte is written once (no memset of the whole buffer followed by copies). */
void ec_f32_zeropad(const float *restrict x, int h, int w, int c, int pt, int pb, int pl, int pr,
                    float *restrict out)
{
    const size_t orow = (size_t)(w + pl + pr) * c;        /* floats per output row */
    const size_t lpad = (size_t)pl * c, rpad = (size_t)pr * c, xrow = (size_t)w * c;
    memset(out, 0, (size_t)pt * orow * sizeof *out);
    out += (size_t)pt * orow;
    for (int y = 0; y < h; y++, out += orow, x += xrow) {
        memset(out, 0, lpad * sizeof *out);
        memcpy(out + lpad, x, xrow * sizeof *out);
        memset(out + lpad + xrow, 0, rpad * sizeof *out);
    }
    memset(out, 0, (size_t)pb * orow * sizeof *out);
}

/* Zero-padding backward: dx(h, w, c) = the interior of dout(h + pt + pb,
 * w + pl + pr, c) (the padding's gradient goes nowhere). Rows [y0, y1) of dx. */
void ec_f32_zeropad_backward(const float *restrict dout, int h, int w, int c, int pt, int pb, int pl, int pr,
                             float *restrict dx, int y0, int y1)
{
    (void)h;
    (void)pb;
    const size_t orow = (size_t)(w + pl + pr) * c, xrow = (size_t)w * c;
    for (int y = y0; y < y1; y++)
        memcpy(dx + (size_t)y * xrow, dout + (size_t)(y + pt) * orow + (size_t)pl * c, xrow * sizeof *dx);
}
