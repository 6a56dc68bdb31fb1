/* test_kernels.c - kernels/ against their references, math and finite differences.
 *
 * Every optimized kernel is compared with its __ref twin over awkward sizes
 * (channels 1, 7, 8, 9, 15, 16, 17, 31, 32, 33 around the 8- and 16-lane tiles;
 * odd H/W down to 1;
 * kernels 1/3/5, strides 1/2, SAME/VALID/asymmetric/oversized padding,
 * multiplier 1 and 2, row ranges split in parts). Activations are also measured
 * against double-precision libm, f16 is checked exhaustively, and every backward
 * op gets a finite-difference check. Each check prints one PASS/FAIL line with
 * its tolerance; failures print the worst element. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "tests/harness.h"
#include "tests/testutil.h"

/* ---- helpers ---------------------------------------------------------------- */

static uint32_t fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static const char *act_name(int act)
{
    static const char *names[] = {"linear", "relu", "relu6", "sigmoid", "softmax", "swish", "tanh", "gelu"};
    return act >= 0 && act < 8 ? names[act] : "?";
}

static const int channels[] = {1, 7, 8, 9, 15, 16, 17, 31, 32, 33};
#define NCH (int)(sizeof channels / sizeof channels[0])
static const int elementwise_acts[] = {EC_ACT_LINEAR, EC_ACT_RELU, EC_ACT_RELU6, EC_ACT_SIGMOID,
                                       EC_ACT_SWISH, EC_ACT_TANH, EC_ACT_GELU};
#define NACT (int)(sizeof elementwise_acts / sizeof elementwise_acts[0])

/* Double-precision truth for each activation. */
static double act_double(double x, int act)
{
    switch (act) {
    case EC_ACT_RELU:    return x < 0 ? 0 : x;
    case EC_ACT_RELU6:   return x < 0 ? 0 : (x > 6 ? 6 : x);
    case EC_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case EC_ACT_SWISH:   return x / (1.0 + exp(-x));
    case EC_ACT_TANH:    return tanh(x);
    case EC_ACT_GELU:    return 0.5 * x * erfc(-x / sqrt(2.0));
    default:             return x;
    }
}

/* The SIMD tiers: index 0 AVX2, 1 AVX-512; each is tested where the CPU has it
 * and prints SKIP where it does not. */
enum { NVAR = 2 };
static const char *const var_name[NVAR] = {"avx2", "avx512"};
static int var_have(int v) { return v ? ec_cpu_has_avx512() : ec_cpu_has_avx2(); }
static const char *var_why(int v) { return v ? "no AVX-512 on this CPU (or EFFCAM_NO_AVX512)" : "no AVX2 on this CPU"; }

typedef void act_fn(const float *x, float *y, size_t rows, int c, int act);
static act_fn *const act_var[NVAR] = {ec_f32_act__avx2, ec_f32_act__avx512};
typedef void affine_fn(float *x, size_t rows, int c, const float *scale, const float *shift, int act);
static affine_fn *const affine_var[NVAR] = {ec_f32_affine_act__avx2, ec_f32_affine_act__avx512};

/* ---- f16 -------------------------------------------------------------------- */

static void test_f16(void)
{
    /* half -> float against the definition, all 65536 patterns. */
    int bad = -1;
    for (uint32_t h = 0; h < 65536 && bad < 0; h++) {
        float f = ec_f16_to_f32((uint16_t)h);
        int e = (h >> 10) & 31, m = h & 1023, neg = (h >> 15) & 1;
        if (e == 31) {
            if (m == 0 ? !(isinf(f) && !!signbit(f) == neg) : !isnan(f)) bad = (int)h;
        } else {
            double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
            if (neg) v = -v;
            if ((double)f != v || !!signbit(f) != neg) bad = (int)h;
        }
    }
    T_CHECK("f16_to_f32_exhaustive", bad < 0, "half 0x%04x decodes wrong", bad);

    /* Round trip: every non-NaN half survives; NaNs stay NaN (quieted). */
    bad = -1;
    for (uint32_t h = 0; h < 65536 && bad < 0; h++) {
        uint16_t r = ec_f32_to_f16(ec_f16_to_f32((uint16_t)h));
        int is_nan = ((h >> 10) & 31) == 31 && (h & 1023);
        if (is_nan ? !((r & 0x7c00) == 0x7c00 && (r & 0x3ff) && (r & 0x200) && (r & 0x8000) == (h & 0x8000)) : r != h)
            bad = (int)h;
    }
    T_CHECK("f16_round_trip_exhaustive", bad < 0, "half 0x%04x -> 0x%04x",
            bad, bad < 0 ? 0 : ec_f32_to_f16(ec_f16_to_f32((uint16_t)bad)));

    /* Ties: the float midway between two adjacent halves (exact: 12 significant
     * bits) must round to the one with an even mantissa, and one float ulp either
     * side to the nearer one. All adjacent pairs incl. subnormals, 0 -> 2^-24, and
     * 65504 -> 65520 (the tie that overflows to inf) of both signs. */
    bad = -1;
    int bad_kind = 0;
    for (uint32_t s = 0; s < 2 && bad < 0; s++) {
        for (uint32_t h = 0; h < 0x7c00 && bad < 0; h++) {
            const uint16_t lo = (uint16_t)(h | s << 15), hi = (uint16_t)((h + 1) | s << 15);
            float a = ec_f16_to_f32(lo), b = ec_f16_to_f32(hi);
            if (isinf(b)) b = s ? -65536.0f : 65536.0f;   /* the value "inf" rounds from */
            const float mid = (float)(((double)a + b) / 2);
            const uint16_t even = (lo & 1) ? hi : lo;
            if (ec_f32_to_f16(mid) != even) { bad = (int)lo; bad_kind = 0; }
            else if (ec_f32_to_f16(nextafterf(mid, a)) != lo) { bad = (int)lo; bad_kind = 1; }
            else if (ec_f32_to_f16(nextafterf(mid, b)) != hi) { bad = (int)lo; bad_kind = 2; }
        }
    }
    T_CHECK("f16_rne_ties_exhaustive", bad < 0, "pair starting 0x%04x, case %d (0 tie, 1 below, 2 above)",
            bad, bad_kind);

    /* Saturation and special encodings. */
    int ok = ec_f32_to_f16(65519.996f) == 0x7bff && ec_f32_to_f16(65520.0f) == 0x7c00 &&
             ec_f32_to_f16(1e10f) == 0x7c00 && ec_f32_to_f16(-INFINITY) == 0xfc00 &&
             ec_f32_to_f16(-0.0f) == 0x8000 && ec_f32_to_f16(0x1p-25f) == 0 &&
             ec_f32_to_f16(nextafterf(0x1p-25f, 1)) == 1 && ec_f32_to_f16(0x1.8p-24f) == 2 &&
             ec_f32_to_f16(FLT_MIN) == 0 && (ec_f32_to_f16(NAN) & 0x7e00) == 0x7e00;
    T_CHECK("f16_specials", ok, "saturation/subnormal/NaN encodings wrong");

    /* Random floats in half range: result is a nearest half. */
    bad = -1;
    float badf = 0;
    for (int i = 0; i < 1000000 && bad < 0; i++) {
        uint32_t u = (t_rng_u32() % 0x477fe000u) | (t_rng_u32() & 0x80000000u);
        float f;
        memcpy(&f, &u, 4);
        uint16_t h = ec_f32_to_f16(f);
        double d = fabs((double)ec_f16_to_f32(h) - f);
        double dn = fabs((double)ec_f16_to_f32((uint16_t)(h + 1)) - f);
        double dp = (h & 0x7fff) ? fabs((double)ec_f16_to_f32((uint16_t)(h - 1)) - f) : INFINITY;
        if (d > dn || d > dp) { bad = (int)h; badf = f; }
    }
    T_CHECK("f16_random_nearest", bad < 0, "%a -> 0x%04x is not nearest", badf, bad);

    /* Bulk float -> half (F16C vs scalar), bitwise: every half's float value,
     * each midpoint and its neighbours, random floats incl. out-of-range and NaN,
     * at every tail length 0..17. */
    {
        size_t nf = 4 * 65536 + 100000;
        float *src = malloc(nf * sizeof *src);
        uint16_t *ha = malloc(nf * sizeof *ha), *hb = malloc(nf * sizeof *hb);
        size_t k = 0;
        for (uint32_t h = 0; h < 65536; h++) {
            float a = ec_f16_to_f32((uint16_t)h), b = ec_f16_to_f32((uint16_t)(h + 1));
            float mid = isfinite(a) && isfinite(b) ? (float)(((double)a + b) / 2) : a;
            src[k++] = a;
            src[k++] = mid;
            src[k++] = nextafterf(mid, a);
            src[k++] = nextafterf(mid, b);
        }
        while (k < nf) {
            uint32_t u = t_rng_u32();
            memcpy(&src[k++], &u, 4);
        }
        ec_f32_to_f16_n__ref(src, ha, nf);
        ec_f32_to_f16_n(src, hb, nf);
        size_t first = nf;
        for (size_t i = 0; i < nf && first == nf; i++)
            if (ha[i] != hb[i] && !((ha[i] & 0x7c00) == 0x7c00 && (ha[i] & 0x3ff) && (hb[i] & 0x7c00) == 0x7c00 && (hb[i] & 0x3ff)))
                first = i;
        for (size_t n = 0; n <= 17 && first == nf; n++) {
            ec_f32_to_f16_n(src + 1000, hb, n);
            for (size_t i = 0; i < n; i++)
                if (hb[i] != ha[1000 + i]) first = 1000 + i;
        }
        T_CHECK("f32_to_f16_bulk_vs_ref", first == nf, "element %zu: %a -> 0x%04x, ref 0x%04x", first,
                first < nf ? src[first] : 0.0f, first < nf ? hb[first] : 0, first < nf ? ha[first] : 0);
        /* each SIMD tier directly, tails 0..33 with a guard after the end */
        typedef void f2h_fn(const float *src, uint16_t *dst, size_t n);
        f2h_fn *const f2h[NVAR] = {ec_f32_to_f16_n__avx2, ec_f32_to_f16_n__avx512};
        for (int v = 0; v < NVAR; v++) {
            char name[64];
            snprintf(name, sizeof name, "f32_to_f16_n_%s_vs_ref_bitwise", var_name[v]);
            if (!var_have(v)) { t_skip(name, var_why(v)); continue; }
            f2h[v](src, hb, nf);
            size_t bad16 = nf;
            for (size_t i = 0; i < nf && bad16 == nf; i++)
                if (ha[i] != hb[i] && !((ha[i] & 0x7c00) == 0x7c00 && (ha[i] & 0x3ff) && (hb[i] & 0x7c00) == 0x7c00 && (hb[i] & 0x3ff)))
                    bad16 = i;
            for (size_t n = 0; n <= 33 && bad16 == nf; n++) {
                hb[n] = 0xabcd;
                f2h[v](src + 1000, hb, n);
                for (size_t i = 0; i < n; i++)
                    if (hb[i] != ha[1000 + i]) bad16 = 1000 + i;
                if (hb[n] != 0xabcd) bad16 = nf - 1;
            }
            T_CHECK(name, bad16 == nf, "element %zu differs (or a tail wrote past n)", bad16);
        }
        free(src);
        free(ha);
        free(hb);
    }

    /* Bulk conversion: __avx2 (F16C) and the dispatcher vs scalar, bitwise,
     * over all halves and every tail length 0..17. */
    uint16_t *hs = malloc(65536 * sizeof *hs);
    float *fa = t_fmalloc(65536), *fb = t_fmalloc(65536);
    for (uint32_t h = 0; h < 65536; h++) hs[h] = (uint16_t)h;
    ec_f16_to_f32_n__ref(hs, fa, 65536);
    ec_f16_to_f32_n(hs, fb, 65536);
    bad = -1;
    for (uint32_t h = 0; h < 65536 && bad < 0; h++)
        if (fbits(fa[h]) != fbits(fb[h])) bad = (int)h;
    for (size_t n = 0; n <= 17 && bad < 0; n++) {
        float *t = t_fmalloc(n);
        ec_f16_to_f32_n(hs + 0x3c00 - 3, t, n);
        for (size_t i = 0; i < n; i++)
            if (fbits(t[i]) != fbits(fa[0x3c00 - 3 + i])) bad = (int)(0x3c00 - 3 + i);
        free(t);
    }
    T_CHECK("f16_to_f32_n_dispatch_vs_ref_bitwise", bad < 0, "half 0x%04x differs", bad);
    typedef void h2f_fn(const uint16_t *src, float *dst, size_t n);
    h2f_fn *const h2f[NVAR] = {ec_f16_to_f32_n__avx2, ec_f16_to_f32_n__avx512};
    for (int v = 0; v < NVAR; v++) {
        char name[64];
        snprintf(name, sizeof name, "f16_to_f32_n_%s_vs_ref_bitwise", var_name[v]);
        if (!var_have(v)) { t_skip(name, var_why(v)); continue; }
        h2f[v](hs, fb, 65536);
        bad = -1;
        for (uint32_t h = 0; h < 65536 && bad < 0; h++)
            if (fbits(fa[h]) != fbits(fb[h])) bad = (int)h;
        for (size_t n = 0; n <= 33 && bad < 0; n++) {   /* every tail, nothing written past n */
            float *t = t_fmalloc(n + 1);
            t[n] = 12345.0f;
            h2f[v](hs + 0x3c00 - 3, t, n);
            for (size_t i = 0; i < n; i++)
                if (fbits(t[i]) != fbits(fa[0x3c00 - 3 + i])) bad = (int)(0x3c00 - 3 + i);
            if (t[n] != 12345.0f) bad = 0x10000;
            free(t);
        }
        T_CHECK(name, bad < 0, "half 0x%04x: %08x vs %08x (0x10000: wrote past n)", bad,
                bad < 0 || bad > 0xffff ? 0 : fbits(fb[bad]), bad < 0 || bad > 0xffff ? 0 : fbits(fa[bad]));
    }

    /* Widening with a per-column scale (BN folded into a conv kernel): __avx2,
     * __avx512 and the dispatcher vs __ref bitwise, awkward column counts, scale or NULL, every
     * half value somewhere, and nothing written past the matrix. */
    {
        static const int cols_set[] = {1, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 192};
        int sc_ok = 1;
        char sc_where[128] = "";
        for (size_t ci = 0; ci < sizeof cols_set / sizeof *cols_set && sc_ok; ci++)
            for (int rows = 1; rows <= 5 && sc_ok; rows += 2)
                for (int with_scale = 0; with_scale < 2 && sc_ok; with_scale++) {
                    int cols = cols_set[ci];
                    size_t n = (size_t)rows * cols;
                    uint16_t *src = malloc(n * sizeof *src);
                    float *sc = t_fmalloc((size_t)cols), *ra = t_fmalloc(n + 1), *rb = t_fmalloc(n + 1);
                    for (size_t i = 0; i < n; i++) src[i] = (uint16_t)(t_rng_u32() >> 16);
                    t_fill(sc, (size_t)cols, -3.0f, 3.0f);
                    ra[n] = rb[n] = 12345.0f;
                    ec_f16_to_f32_scale_cols__ref(src, ra, (size_t)rows, cols, with_scale ? sc : NULL);
                    for (int v = 0; v <= NVAR && sc_ok; v++) {
                        if (v && !var_have(v - 1)) continue;
                        if (v == 0) ec_f16_to_f32_scale_cols(src, rb, (size_t)rows, cols, with_scale ? sc : NULL);
                        else if (v == 1) ec_f16_to_f32_scale_cols__avx2(src, rb, (size_t)rows, cols, with_scale ? sc : NULL);
                        else ec_f16_to_f32_scale_cols__avx512(src, rb, (size_t)rows, cols, with_scale ? sc : NULL);
                        for (size_t i = 0; i < n && sc_ok; i++)
                            if (fbits(ra[i]) != fbits(rb[i]) && !(isnan(ra[i]) && isnan(rb[i]))) {
                                sc_ok = 0;
                                snprintf(sc_where, sizeof sc_where, "%s rows %d cols %d scale %d elem %zu",
                                         v ? var_name[v - 1] : "dispatch", rows, cols, with_scale, i);
                            }
                        if (sc_ok && rb[n] != 12345.0f) {
                            sc_ok = 0;
                            snprintf(sc_where, sizeof sc_where, "rows %d cols %d: wrote past the end", rows, cols);
                        }
                    }
                    free(src); free(sc); free(ra); free(rb);
                }
        T_CHECK("f16_to_f32_scale_cols_vs_ref_bitwise", sc_ok, "%s", sc_where);
    }
    free(hs); free(fa); free(fb);
}

/* The loader's non-finite scan: each twin against __ref, float16 and float32,
 * lengths around the 32/128/256-byte steps, unaligned starts, one planted
 * infinity, NaN or largest finite value (not a hit) at the first, a middle or
 * the last position, and a trap value just past the end that must not count. */
static void test_any_nonfinite(void)
{
    typedef int nf_fn(const void *p, size_t n, int f16);
    nf_fn *const fn[NVAR + 1] = {ec_any_nonfinite__avx2, ec_any_nonfinite__avx512, ec_any_nonfinite};
    static const size_t lens[] = {0, 1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 1000};
    unsigned char *buf = malloc(4 * 1100 + 8);
    for (int v = 0; v < NVAR + 1; v++) {
        char name[64];
        snprintf(name, sizeof name, "any_nonfinite_%s_vs_ref", v < NVAR ? var_name[v] : "dispatch");
        if (v < NVAR && !var_have(v)) { t_skip(name, var_why(v)); continue; }
        int bad = 0, cases = 0;
        char where[128] = "";
        for (int f16 = 0; f16 < 2 && !bad; f16++)
            for (size_t li = 0; li < sizeof lens / sizeof lens[0] && !bad; li++)
                for (int off = 0; off < 3 && !bad; off++)
                    for (int plant = 0; plant < 10 && !bad; plant++) {
                        const size_t n = lens[li];
                        unsigned char *p = buf + off;
                        for (size_t i = 0; i < n + 1; i++) {   /* finite values, then the trap */
                            uint32_t u = (uint32_t)(i * 2654435761u);
                            if (f16) { uint16_t h = (uint16_t)((u & 0x83ffu) | (((u >> 10) % 31) << 10)); memcpy(p + 2 * i, &h, 2); }
                            else { uint32_t w = (u & 0x807fffffu) | (((u >> 23) % 255) << 23); memcpy(p + 4 * i, &w, 4); }
                        }
                        if (f16) { uint16_t h = 0x7c00; memcpy(p + 2 * n, &h, 2); }
                        else { uint32_t w = 0x7f800000; memcpy(p + 4 * n, &w, 4); }
                        if (n && plant) {
                            /* plants 1-3: inf, NaN, max finite at 0; 4-6 in the middle; 7-9 last */
                            size_t at = plant <= 3 ? 0 : plant <= 6 ? n / 2 : n - 1;
                            int kind = (plant - 1) % 3;
                            uint32_t w = kind == 0 ? 0x7f800000u : kind == 1 ? 0xffc00001u : 0x7f7fffffu;
                            uint16_t h = kind == 0 ? 0xfc00 : kind == 1 ? 0x7e01 : 0x7bff;
                            if (f16) memcpy(p + 2 * at, &h, 2);
                            else memcpy(p + 4 * at, &w, 4);
                        }
                        int want = ec_any_nonfinite__ref(p, n, f16), got = fn[v](p, n, f16);
                        cases++;
                        if (want != got || (plant && n && (plant - 1) % 3 < 2 && !want)) {
                            bad = 1;
                            snprintf(where, sizeof where, "%s n=%zu off=%d plant=%d: %d, ref %d", f16 ? "f16" : "f32", n,
                                     off, plant, got, want);
                        }
                    }
        T_CHECK(name, !bad, "%s (%d cases)", where, cases);
    }
    free(buf);
}

/* ---- GEMM ------------------------------------------------------------------- */

static void test_gemm(void)
{
    /* Tolerance: float accumulation of K products of values in [-1, 1] against a
     * double reference: |err| <= K * eps * sum|a b| <= K^2 eps; we allow
     * 4 * K * eps * (K + 1) + 1e-6, far under that bound's worst case in practice. */
    static const int dims[][3] = {{0, 5, 3}, {4, 0, 3}, {3, 4, 0}, {1, 1, 1}, {1, 7, 9}, {7, 1, 33},
                                  {17, 33, 15}, {64, 48, 96}, {100, 130, 257}};
    static const float betas[] = {0.0f, 1.0f, 0.5f};
    double worst = 0;
    int fail = 0;
    char where[128] = "";
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        for (size_t bi = 0; bi < 3; bi++) {
            const int M = dims[d][0], N = dims[d][1], K = dims[d][2];
            const int lda = K + 3, ldb = N + 1, ldc = N + 2;      /* padded strides */
            float *A = t_fmalloc((size_t)M * lda + 1), *B = t_fmalloc((size_t)K * ldb + 1);
            float *C1 = t_fmalloc((size_t)M * ldc + 1), *C2 = t_fmalloc((size_t)M * ldc + 1);
            t_fill(A, (size_t)M * lda + 1, -1, 1);
            t_fill(B, (size_t)K * ldb + 1, -1, 1);
            t_fill(C1, (size_t)M * ldc + 1, -1, 1);
            /* beta == 0: C is write-only; stale NaN must not leak into the result. */
            if (betas[bi] == 0.0f)
                for (size_t i = 0; i < (size_t)M * ldc; i++) C1[i] = NAN;
            memcpy(C2, C1, ((size_t)M * ldc + 1) * sizeof *C1);
            ec_gemm(M, N, K, A, lda, B, ldb, betas[bi], C1, ldc);
            ec_gemm__ref(M, N, K, A, lda, B, ldb, betas[bi], C2, ldc);
            const double tol = 4.0 * K * FLT_EPSILON * (K + 1) + 1e-6;
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double e = fabs((double)C1[(size_t)i * ldc + j] - C2[(size_t)i * ldc + j]);
                    if (!(e <= tol)) {
                        if (!fail) snprintf(where, sizeof where, "M=%d N=%d K=%d beta=%g (%d,%d) %g vs %g",
                                            M, N, K, betas[bi], i, j, C1[(size_t)i * ldc + j],
                                            C2[(size_t)i * ldc + j]);
                        fail = 1;
                    }
                    if (e > worst) worst = e;
                }
            free(A); free(B); free(C1); free(C2);
        }
    }
    T_CHECK("gemm_vs_ref", !fail, "tol 4*K*eps*(K+1)+1e-6; first bad %s; max abs diff %.3g", where, worst);
    if (!fail) printf("  gemm max abs diff %.3g\n", worst);
}

/* ---- geometry helpers --------------------------------------------------------- */

enum { PAD_SAME, PAD_VALID, PAD_ASYM, PAD_OVER, NPAD };
static const char *pad_name[] = {"same", "valid", "asym", "over"};

/* Fills g for one padding scheme; returns 0 when that scheme has no output. */
static int make_geom(ec_conv_geom *g, int in_h, int in_w, int c, int k, int s, int pad)
{
    memset(g, 0, sizeof *g);
    g->in_h = in_h; g->in_w = in_w; g->c = c; g->kh = k; g->kw = k; g->sh = s; g->sw = s;
    int pt, pb, pl, pr;
    switch (pad) {
    case PAD_SAME: {                      /* Keras: extra pixel bottom/right */
        int oh = (in_h + s - 1) / s, ow = (in_w + s - 1) / s;
        int th = (oh - 1) * s + k - in_h, tw = (ow - 1) * s + k - in_w;
        if (th < 0) th = 0;
        if (tw < 0) tw = 0;
        pt = th / 2; pb = th - pt; pl = tw / 2; pr = tw - pl;
        break;
    }
    case PAD_VALID: pt = pb = pl = pr = 0; break;
    case PAD_ASYM:  pt = k - 1; pb = 0; pl = 0; pr = k - 1; break;   /* all top, all right */
    default:        pt = pb = pl = pr = k; break;                    /* whole rows of padding */
    }
    g->pad_t = pt; g->pad_l = pl;
    if (in_h + pt + pb < k || in_w + pl + pr < k) return 0;
    g->out_h = (in_h + pt + pb - k) / s + 1;
    g->out_w = (in_w + pl + pr - k) / s + 1;
    return 1;
}

static const int sizes[][2] = {{1, 1}, {1, 5}, {5, 1}, {2, 3}, {7, 7}, {9, 6}, {13, 11}};
#define NSIZE (int)(sizeof sizes / sizeof sizes[0])

/* ---- im2col ------------------------------------------------------------------ */

/* Packed GEMM (kernels/pgemm.c): the AVX2 and AVX-512 kernels against the
 * scalar twin over awkward sizes - rows around the 6-row (AVX2) and 9/14-row
 * (AVX-512) micro tiles and the 96/112-row blocks, columns around the 16-column
 * panel and the 2- and 3-panel groups, K around the 128/256 k blocks (partial
 * sums kept in C between blocks), padded strides, every activation, with and
 * without a shift - each also computed in row and panel pieces to show that
 * the split does not change a bit. The packers (fp32 and fp16, with and without
 * scale) equal the scalar one bitwise. Before the activation both kernels are
 * the same FMA chain per element, so for the activations they compute alike
 * (all but sigmoid and swish, whose reciprocal estimates differ) AVX-512 must
 * equal AVX2 bit for bit. */
typedef void pgemm_fn(int M, int N, int K, const float *A, int lda, const float *Bp, const float *shift, int act,
                      float *C, int ldc, int m0, int m1, int p0, int p1);
typedef void packb_fn(const void *w, int w_f16, const float *scale, int K, int N, int p0, int p1, float *bp);

static void test_pgemm(void)
{
    static const int Ms[] = {1, 5, 6, 7, 13, 14, 15, 29, 97, 113, 200};
    static const int Ns[] = {1, 7, 15, 16, 17, 31, 32, 33, 48, 80};
    static const int Ks[] = {0, 1, 3, 31, 129, 257, 600};
    enum { NV = 2 };
    static const char *vname[NV] = {"avx2", "avx512"};
    pgemm_fn *const gem[NV] = {ec_gemm_packed__avx2, ec_gemm_packed__avx512};
    packb_fn *const pack[NV] = {ec_pack_b__avx2, ec_pack_b__avx512};
    const int have[NV] = {ec_cpu_has_avx2(), ec_cpu_has_avx512()};
    double worst[NV] = {0, 0};
    int fail[NV] = {0, 0}, packfail[NV] = {0, 0}, splitfail[NV] = {0, 0}, xfail = 0, xruns = 0, runs = 0;
    int counter = 0, dfail = 0;
    char where[NV][240] = {"", ""}, pwhere[NV][160] = {"", ""}, swhere[NV][160] = {"", ""}, xwhere[160] = "";
    for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
        for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
            for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++) {
                const int M = Ms[mi], N = Ns[ni], K = Ks[ki], lda = K + 3, ldc = N + 2;
                const int act = elementwise_acts[counter % NACT], f16 = counter % 2, sv = counter % 3;
                counter++;
                const int np = (N + EC_PG_NR - 1) / EC_PG_NR;
                const size_t nb = ec_pack_b_floats(K, N), nc = (size_t)M * ldc;
                float *A = t_fmalloc((size_t)M * lda), *B = t_fmalloc((size_t)K * N), *sc = t_fmalloc((size_t)N);
                float *sh = t_fmalloc((size_t)N), *bp1 = t_fmalloc(nb), *bp2 = t_fmalloc(nb), *mag = t_fmalloc(nc);
                float *C1 = t_fmalloc(nc), *C2[NV] = {t_fmalloc(nc), t_fmalloc(nc)}, *C3 = t_fmalloc(nc);
                uint16_t *B16 = malloc(((size_t)K * N + 1) * sizeof *B16);
                t_fill(A, (size_t)M * lda, -1, 1);
                t_fill(B, (size_t)K * N, -1, 1);
                t_fill(sc, (size_t)N, 0.5f, 1.5f);
                t_fill(sh, (size_t)N, -0.5f, 0.5f);
                ec_f32_to_f16_n(B, B16, (size_t)K * N);
                const void *W = f16 ? (const void *)B16 : (const void *)B;
                const float *S = sv == 0 ? sc : NULL, *H = sv != 1 ? sh : NULL;
                ec_pack_b__ref(W, f16, S, K, N, 0, np, bp1);
                for (size_t i = 0; i < nc; i++) C1[i] = NAN;
                ec_gemm_packed__ref(M, N, K, A, lda, bp1, H, act, C1, ldc, 0, M, 0, np);
                for (int i = 0; i < M; i++)             /* sum |a b| + |shift|: the error scale */
                    for (int j = 0; j < N; j++) {
                        double m = H ? fabs(H[j]) : 0;
                        for (int k = 0; k < K; k++)
                            m += fabs(A[(size_t)i * lda + k] * bp1[((size_t)(j / 16) * K + k) * 16 + j % 16]);
                        mag[(size_t)i * ldc + j] = (float)m;
                    }
                for (int v = 0; v < NV; v++) {
                    if (!have[v]) continue;
                    /* two calls, panels [0, 1) and [1, np) */
                    pack[v](W, f16, S, K, N, 0, 1, bp2);
                    pack[v](W, f16, S, K, N, 1, np, bp2);
                    if (memcmp(bp1, bp2, nb * sizeof *bp1) && !packfail[v]) {
                        packfail[v] = 1;
                        snprintf(pwhere[v], sizeof pwhere[v], "K=%d N=%d f16=%d scale=%d", K, N, f16, S != NULL);
                    }
                    for (size_t i = 0; i < nc; i++) C2[v][i] = C3[i] = NAN;
                    gem[v](M, N, K, A, lda, bp1, H, act, C2[v], ldc, 0, M, 0, np);
                    /* pieces: rows [0, r) x all panels, rows [r, M) x panel 0, then the other panels */
                    const int r = M / 3;
                    gem[v](M, N, K, A, lda, bp1, H, act, C3, ldc, 0, r, 0, np);
                    gem[v](M, N, K, A, lda, bp1, H, act, C3, ldc, r, M, 0, 1);
                    gem[v](M, N, K, A, lda, bp1, H, act, C3, ldc, r, M, 1, np);
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < ldc; j++) {
                            const size_t e = (size_t)i * ldc + j;
                            if (j >= N) {   /* the padding of each row stays untouched */
                                if ((!isnan(C2[v][e]) || !isnan(C3[e])) && !fail[v]) {
                                    fail[v] = 1;
                                    snprintf(where[v], sizeof where[v], "M=%d N=%d K=%d: wrote past column N at (%d,%d)",
                                             M, N, K, i, j);
                                }
                                continue;
                            }
                            const double tol = 2.0 * (K + 2) * FLT_EPSILON * mag[e] + 4e-6 * fabs(C1[e]) + 1e-7;
                            const double d = fabs((double)C1[e] - C2[v][e]);
                            if (d > worst[v] || isnan(d)) worst[v] = d;
                            if (!(d <= tol) && !fail[v]) {
                                fail[v] = 1;
                                snprintf(where[v], sizeof where[v],
                                         "M=%d N=%d K=%d act=%s shift=%d: (%d,%d) %.9g vs ref %.9g", M, N, K,
                                         act_name(act), H != NULL, i, j, C2[v][e], C1[e]);
                            }
                            if (fbits(C2[v][e]) != fbits(C3[e]) && !splitfail[v]) {
                                splitfail[v] = 1;
                                snprintf(swhere[v], sizeof swhere[v], "M=%d N=%d K=%d: (%d,%d) %a whole vs %a in pieces",
                                         M, N, K, i, j, C2[v][e], C3[e]);
                            }
                        }
                }
                if (have[0] && have[1] && act != EC_ACT_SIGMOID && act != EC_ACT_SWISH) {
                    xruns++;
                    for (int i = 0; i < M && !xfail; i++)
                        for (int j = 0; j < N && !xfail; j++)
                            if (fbits(C2[0][(size_t)i * ldc + j]) != fbits(C2[1][(size_t)i * ldc + j])) {
                                xfail = 1;
                                snprintf(xwhere, sizeof xwhere, "M=%d N=%d K=%d act=%s: (%d,%d) %a vs %a", M, N, K,
                                         act_name(act), i, j, C2[1][(size_t)i * ldc + j], C2[0][(size_t)i * ldc + j]);
                            }
                }
                /* the dispatcher reaches one of them */
                for (size_t i = 0; i < nc; i++) C3[i] = NAN;
                ec_gemm_packed(M, N, K, A, lda, bp1, H, act, C3, ldc, 0, M, 0, np);
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        const size_t e = (size_t)i * ldc + j;
                        dfail |= !(fabs((double)C1[e] - C3[e]) <= 2.0 * (K + 2) * FLT_EPSILON * mag[e] + 4e-6 * fabs(C1[e]) + 1e-7);
                    }
                runs++;
                free(A); free(B); free(sc); free(sh); free(bp1); free(bp2); free(mag); free(C1); free(C2[0]);
                free(C2[1]); free(C3); free(B16);
            }
    for (int v = 0; v < NV; v++) {
        char name[64];
        if (!have[v]) {
            snprintf(name, sizeof name, "pgemm_%s_vs_ref", vname[v]);
            t_skip(name, v ? "no AVX-512 on this CPU (or EFFCAM_NO_AVX512)" : "no AVX2 on this CPU");
            continue;
        }
        snprintf(name, sizeof name, "pgemm_%s_vs_ref", vname[v]);
        T_CHECK(name, !fail[v], "%d shapes, tol 2*(K+2)*eps*sum|ab| + 4e-6|ref|: %s (max abs diff %.3g)", runs,
                where[v], worst[v]);
        if (!fail[v]) printf("  %s max abs diff %.3g over %d shapes\n", name, worst[v], runs);
        snprintf(name, sizeof name, "pgemm_%s_split_bit_identical", vname[v]);
        T_CHECK(name, !splitfail[v], "%s", swhere[v]);
        snprintf(name, sizeof name, "pack_b_%s_vs_ref_bitwise", vname[v]);
        T_CHECK(name, !packfail[v], "%s", pwhere[v]);
    }
    T_CHECK("pgemm_dispatch_vs_ref", !dfail, "the dispatcher's result is off");
    if (have[0] && have[1])
        T_CHECK("pgemm_avx512_vs_avx2_bitwise", !xfail && xruns > 0, "%d runs (exact activations): %s", xruns, xwhere);
    else
        t_skip("pgemm_avx512_vs_avx2_bitwise", "no AVX-512 on this CPU (or EFFCAM_NO_AVX512)");
}

/* GEMM on fp16 weights widened per block (ec_gemm_w16) and the excite-folding
 * packer (ec_pack_b_se): for the scalar, AVX2 and AVX-512 variants, the packer
 * equals the scalar one bitwise, and the w16 GEMM - computed in row and panel
 * pieces - equals the same variant's ec_gemm_packed on the packed weights bit
 * for bit (with and without scale, se and shift, every activation, sizes
 * around the tiles and the k blocks), which ties it to the packed GEMM's
 * tests against the reference; and it is within the packed GEMM's tolerance
 * of ec_gemm_w16__ref. */
static void test_gemm_w16(void)
{
    static const int Ms[] = {1, 6, 7, 14, 15, 29, 113, 130};
    static const int Ns[] = {1, 15, 16, 17, 33, 48, 80};
    static const int Ks[] = {0, 1, 17, 129, 257, 300};
    typedef void w16_fn(int M, int N, int K, const float *A, int lda, const uint16_t *W, const float *scale,
                        const float *se, const float *shift, int act, float *C, int ldc, int m0, int m1, int p0, int p1);
    typedef void pse_fn(const void *w, int w_f16, const float *scale, const float *se, int K, int N, int p0, int p1,
                        float *bp);
    w16_fn *const w16v[1 + NVAR] = {ec_gemm_w16__ref, ec_gemm_w16__avx2, ec_gemm_w16__avx512};
    pse_fn *const psev[1 + NVAR] = {ec_pack_b_se__ref, ec_pack_b_se__avx2, ec_pack_b_se__avx512};
    pgemm_fn *const gemv[1 + NVAR] = {ec_gemm_packed__ref, ec_gemm_packed__avx2, ec_gemm_packed__avx512};
    static const char *vn[1 + NVAR] = {"ref", "avx2", "avx512"};
    int bitfail[1 + NVAR] = {0, 0, 0}, packfail[1 + NVAR] = {0, 0, 0}, tolfail[1 + NVAR] = {0, 0, 0}, runs = 0;
    int counter = 0;
    double worst[1 + NVAR] = {0, 0, 0};
    char where[1 + NVAR][200] = {"", "", ""};
    for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
        for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
            for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++) {
                const int M = Ms[mi], N = Ns[ni], K = Ks[ki], lda = K + 1, ldc = N + 3;
                const int act = elementwise_acts[counter % NACT], sv = counter % 4;
                counter++;
                const int np = (N + EC_PG_NR - 1) / EC_PG_NR;
                const size_t nb = ec_pack_b_floats(K, N), nc = (size_t)M * ldc;
                float *A = t_fmalloc((size_t)M * lda), *B = t_fmalloc((size_t)K * N), *sc = t_fmalloc((size_t)N);
                float *se = t_fmalloc((size_t)K), *sh = t_fmalloc((size_t)N), *bp0 = t_fmalloc(nb), *bp = t_fmalloc(nb);
                float *C0 = t_fmalloc(nc), *C1 = t_fmalloc(nc), *C2 = t_fmalloc(nc);
                uint16_t *W = malloc(((size_t)K * N + 1) * sizeof *W);
                t_fill(A, (size_t)M * lda, -1, 1);
                t_fill(B, (size_t)K * N, -1, 1);
                t_fill(sc, (size_t)N, 0.5f, 1.5f);
                t_fill(se, (size_t)K, -1.0f, 1.0f);   /* an excite is in (0, 1); any sign must work */
                t_fill(sh, (size_t)N, -0.5f, 0.5f);
                ec_f32_to_f16_n(B, W, (size_t)K * N);
                const float *S = (sv & 1) ? sc : NULL, *E = (sv & 2) ? se : NULL, *H = counter % 3 ? sh : NULL;
                for (size_t i = 0; i < nc; i++) C0[i] = NAN;
                ec_gemm_w16__ref(M, N, K, A, lda, W, S, E, H, act, C0, ldc, 0, M, 0, np);
                ec_pack_b_se__ref(W, 1, S, E, K, N, 0, np, bp0);
                for (int v = 0; v <= NVAR; v++) {
                    if (v && !var_have(v - 1)) continue;
                    psev[v](W, 1, S, E, K, N, 0, 1, bp);
                    psev[v](W, 1, S, E, K, N, 1, np, bp);
                    if (memcmp(bp, bp0, nb * sizeof *bp) && !packfail[v]) packfail[v] = 1;
                    for (size_t i = 0; i < nc; i++) C1[i] = C2[i] = NAN;
                    gemv[v](M, N, K, A, lda, bp0, H, act, C1, ldc, 0, M, 0, np);
                    const int r = M / 3;
                    w16v[v](M, N, K, A, lda, W, S, E, H, act, C2, ldc, 0, r, 0, np);
                    w16v[v](M, N, K, A, lda, W, S, E, H, act, C2, ldc, r, M, 0, 1);
                    w16v[v](M, N, K, A, lda, W, S, E, H, act, C2, ldc, r, M, 1, np);
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < ldc; j++) {
                            const size_t e = (size_t)i * ldc + j;
                            if (fbits(C1[e]) != fbits(C2[e]) && !(j >= N && isnan(C1[e]) && isnan(C2[e])) &&
                                !bitfail[v]) {
                                bitfail[v] = 1;
                                snprintf(where[v], sizeof where[v], "M=%d N=%d K=%d se=%d: (%d,%d) %a vs packed %a", M,
                                         N, K, E != NULL, i, j, C2[e], C1[e]);
                            }
                            if (j >= N) continue;
                            double mag = H ? fabs(H[j]) : 0;
                            for (int k = 0; k < K; k++) mag += fabs(A[(size_t)i * lda + k] * bp0[((size_t)(j / 16) * K + k) * 16 + j % 16]);
                            const double d = fabs((double)C0[e] - C2[e]);
                            if (d > worst[v]) worst[v] = d;
                            if (!(d <= 2.0 * (K + 2) * FLT_EPSILON * mag + 4e-6 * fabs(C0[e]) + 1e-7)) tolfail[v] = 1;
                        }
                }
                runs++;
                free(A); free(B); free(sc); free(se); free(sh); free(bp0); free(bp); free(C0); free(C1); free(C2); free(W);
            }
    for (int v = 0; v <= NVAR; v++) {
        char name[64];
        snprintf(name, sizeof name, "gemm_w16_%s_vs_packed_bitwise", vn[v]);
        if (v && !var_have(v - 1)) { t_skip(name, var_why(v - 1)); continue; }
        T_CHECK(name, !bitfail[v] && !tolfail[v], "%d shapes: %s%s (max abs diff vs ref %.3g)", runs, where[v],
                tolfail[v] ? " / outside the tolerance of the ref" : "", worst[v]);
        if (!bitfail[v] && !tolfail[v]) printf("  %s: %d shapes, max abs diff vs ref %.3g\n", name, runs, worst[v]);
        if (!v) continue;   /* the scalar packer is the reference itself */
        snprintf(name, sizeof name, "pack_b_se_%s_vs_ref_bitwise", vn[v]);
        T_CHECK(name, !packfail[v], "packed weights differ");
    }
}

static void test_im2col(void)
{
    int fail = 0;
    char where[160] = "";
    for (int si = 0; si < NSIZE; si++)
        for (int k = 1; k <= 5; k += 2)
            for (int s = 1; s <= 2; s++)
                for (int pad = 0; pad < NPAD; pad++)
                    for (int ci = 0; ci < NCH; ci += 3) {
                        ec_conv_geom g;
                        if (!make_geom(&g, sizes[si][0], sizes[si][1], channels[ci], k, s, pad)) continue;
                        const int P = g.out_h * g.out_w, c = g.c;
                        const size_t L = (size_t)k * k * c;
                        float *x = t_fmalloc((size_t)g.in_h * g.in_w * c), *col = t_fmalloc((size_t)P * L);
                        t_fill(x, (size_t)g.in_h * g.in_w * c, -1, 1);
                        /* Three parts, the middle one possibly empty. */
                        const int cut1 = P / 3, cut2 = P / 3 + (P > 1);
                        ec_f32_im2col(&g, x, 0, cut1, col);
                        ec_f32_im2col(&g, x, cut1, cut2, col + (size_t)cut1 * L);
                        ec_f32_im2col(&g, x, cut2, P, col + (size_t)cut2 * L);
                        for (int p = 0; p < P && !fail; p++)
                            for (int ky = 0; ky < k; ky++)
                                for (int kx = 0; kx < k; kx++)
                                    for (int ch = 0; ch < c; ch++) {
                                        int iy = (p / g.out_w) * s - g.pad_t + ky;
                                        int ix = (p % g.out_w) * s - g.pad_l + kx;
                                        float want = (iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w)
                                                         ? 0.0f : x[((size_t)iy * g.in_w + ix) * c + ch];
                                        float got = col[(size_t)p * L + ((size_t)ky * k + kx) * c + ch];
                                        if (fbits(got) != fbits(want) && !fail) {
                                            fail = 1;
                                            snprintf(where, sizeof where,
                                                     "in %dx%d c=%d k=%d s=%d pad=%s p=%d tap (%d,%d,%d)",
                                                     g.in_h, g.in_w, c, k, s, pad_name[pad], p, ky, kx, ch);
                                        }
                                    }
                        free(x); free(col);
                    }
    T_CHECK("im2col_exact", !fail, "%s", where);
}

/* ---- activations -------------------------------------------------------------- */

/* Relative error of a float result y against the double truth yd. Outputs
 * below 1e-30 in magnitude are judged absolutely (error <= 1e-30 counts as 0):
 * there exp(-x) has left the normal float range (denormal results lose bits, the
 * AVX2 code flushes them like TensorFlow's FTZ), and no such value can matter
 * next to the O(1) terms of the following layer. */
static double rel_err(float y, double yd)
{
    if (isnan(yd)) return isnan(y) ? 0 : INFINITY;
    if (isinf(yd)) return (double)y == yd ? 0 : INFINITY;
    const double a = fabs(yd), d = fabs((double)y - yd);
    if (a < 1e-30) return d <= 1e-30 ? 0 : INFINITY;
    return d / a;
}

static void test_act_accuracy(void)
{
    /* Inputs: a dense sweep of [-30, 30], log-uniform magnitudes 1e-8..1e4 of
     * both signs, the flush/overflow boundaries, and specials. */
    const size_t n = 600000;
    float *x = t_fmalloc(n), *y = t_fmalloc(n);
    size_t i = 0;
    static const float special[] = {0.0f, -0.0f, 1e-30f, -1e-30f, FLT_MIN, -FLT_MIN, 1e-7f, -1e-7f,
                                    0.5f, -0.5f, 0.34657f, -0.34657f, 6.0f, 9.0f, -9.0f, 15.0f, -15.0f,
                                    17.0f, -17.0f, 44.0f, -44.0f, 87.0f, -87.0f, 87.33f, -87.33f,
                                    87.34f, -87.34f, 88.7f, -88.7f, 89.0f, -89.0f, 100.0f, -100.0f,
                                    104.0f, -104.0f, 1e6f, -1e6f, FLT_MAX, -FLT_MAX};
    for (size_t s = 0; s < sizeof special / sizeof special[0]; s++) x[i++] = special[s];
    for (; i < n / 2; i++) x[i] = -30.0f + 60.0f * (float)i / (float)(n / 2);
    for (; i < n; i++) {
        float m = powf(10.0f, t_rng_uniform(-8, 4));
        x[i] = (t_rng_u32() & 1) ? m : -m;
    }
    for (int ai = 1; ai < NACT; ai++) {
        const int act = elementwise_acts[ai];
        for (int v = 0; v <= NVAR; v++) {
            char name[64];
            snprintf(name, sizeof name, "act_accuracy_%s_%s", v ? var_name[v - 1] : "ref", act_name(act));
            if (v && !var_have(v - 1)) { t_skip(name, var_why(v - 1)); continue; }
            if (v == 0) ec_f32_act__ref(x, y, 1, (int)n, act);
            else act_var[v - 1](x, y, 1, (int)n, act);
            double worst = 0;
            size_t wi = 0;
            for (size_t j = 0; j < n; j++) {
                double yd = act_double(x[j], act);
                double e = rel_err(y[j], yd);
                if (!(e <= worst)) { worst = e; wi = j; }
            }
            T_CHECK(name, worst <= 1e-6, "max rel err %.3g > 1e-6 at x=%a (y=%a, want %.9g)",
                    worst, x[wi], y[wi], act_double(x[wi], act));
            if (worst <= 1e-6) printf("  %s max rel err %.3g (%.2f ulp)\n", name, worst, worst / FLT_EPSILON);
        }
    }
    /* NaN in, NaN out, for every activation and variant. */
    int ok = 1;
    float nanv[9], out[9];
    for (int j = 0; j < 9; j++) nanv[j] = NAN;
    for (int ai = 1; ai < NACT; ai++) {
        ec_f32_act__ref(nanv, out, 1, 9, elementwise_acts[ai]);
        for (int j = 0; j < 9; j++) ok &= isnan(out[j]);
        for (int v = 0; v < NVAR; v++) {
            if (!var_have(v)) continue;
            act_var[v](nanv, out, 1, 9, elementwise_acts[ai]);
            for (int j = 0; j < 9; j++) ok &= isnan(out[j]);
        }
    }
    T_CHECK("act_nan_propagates", ok, "an activation turned NaN into a number");
    free(x); free(y);
}

/* softmax vs a double reference: relative 1e-6 + |x - max| eps / 2 (float exp
 * within ~2 ulp, float sums over up to 1000 terms split 8 ways, and the float
 * subtraction), absolute below 1e-30 as above. */
static void test_softmax(void)
{
    static const int cs[] = {1, 2, 7, 8, 9, 15, 16, 17, 33, 1000};
    double worst[1 + NVAR] = {0, 0, 0};
    int fail = 0;
    char where[128] = "";
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
        const int c = cs[ci], rows = 3;
        float *x = t_fmalloc((size_t)rows * c), *y = t_fmalloc((size_t)rows * c);
        t_fill(x, (size_t)rows * c, -50, 50);
        for (int v = 0; v <= NVAR; v++) {
            if (v && !var_have(v - 1)) continue;
            if (v == 0) ec_f32_act__ref(x, y, rows, c, EC_ACT_SOFTMAX);
            else act_var[v - 1](x, y, rows, c, EC_ACT_SOFTMAX);
            for (int r = 0; r < rows; r++) {
                const float *xr = x + (size_t)r * c;
                double m = -INFINITY, z = 0;
                for (int j = 0; j < c; j++) m = xr[j] > m ? xr[j] : m;
                for (int j = 0; j < c; j++) z += exp(xr[j] - m);
                for (int j = 0; j < c; j++) {
                    /* x - max is rounded to float before exp (as in TF): that alone
                     * is a relative error up to |x - max| eps / 2. */
                    const double tol = 1e-6 + 0.5 * FLT_EPSILON * fabs(xr[j] - m);
                    double e = rel_err(y[(size_t)r * c + j], exp(xr[j] - m) / z) / tol;
                    if (e > worst[v]) worst[v] = e;
                    if (!(e <= 1) && !fail) {
                        fail = 1;
                        snprintf(where, sizeof where, "%s c=%d row %d col %d err/tol %.3g",
                                 v ? var_name[v - 1] : "ref", c, r, j, e);
                    }
                }
            }
            /* In place must equal out of place. */
            if (v) {
                float *z = t_fmalloc((size_t)rows * c);
                memcpy(z, x, (size_t)rows * c * sizeof *z);
                act_var[v - 1](z, z, rows, c, EC_ACT_SOFTMAX);
                if (memcmp(z, y, (size_t)rows * c * sizeof *z) && !fail) {
                    fail = 1;
                    snprintf(where, sizeof where, "%s in-place differs, c=%d", var_name[v - 1], c);
                }
                free(z);
            }
        }
        free(x); free(y);
    }
    T_CHECK("softmax_vs_double", !fail, "tol rel 1e-6 + |x-max| eps/2: %s", where);
    if (!fail) printf("  softmax max err / tol: ref %.3g avx2 %.3g avx512 %.3g\n", worst[0], worst[1], worst[2]);
}

/* __avx2 vs __ref for act and affine_act over channel counts, rows, NULL
 * scale/shift and in-place use. Tolerance |d| <= 2e-6 |ref| + 1e-7: both sides
 * are within ~2 ulp of the truth, and FMA vs mul+add in the affine step moves the
 * activation input by <= 1 ulp (every activation's slope is <= 1.13). */
static void test_act_vs_ref(void)
{
    static const int rowsv[] = {1, 3, 5};
    for (int v = 0; v < NVAR; v++)
    for (int affine = 0; affine < 2; affine++) {
        char name[64];
        snprintf(name, sizeof name, "%s_%s_vs_ref", affine ? "affine_act" : "act", var_name[v]);
        if (!var_have(v)) { t_skip(name, var_why(v)); continue; }
        double worst = 0;
        int fail = 0;
        char where[160] = "";
        for (int ci = 0; ci < NCH; ci++)
            for (int ri = 0; ri < 3; ri++)
                for (int ai = 0; ai < NACT + 1; ai++)
                    for (int sv = 0; sv < 4; sv++) {
                        const int c = channels[ci], rows = rowsv[ri];
                        const int act = ai < NACT ? elementwise_acts[ai] : EC_ACT_SOFTMAX;
                        if (affine && act == EC_ACT_SOFTMAX) continue;
                        if (!affine && sv) continue;
                        const size_t n = (size_t)rows * c;
                        float *x = t_fmalloc(n), *a = t_fmalloc(n), *b = t_fmalloc(n);
                        float *sc = t_fmalloc((size_t)c), *sh = t_fmalloc((size_t)c);
                        t_fill(x, n, -8, 8);
                        t_fill(sc, (size_t)c, 0.25f, 2.0f);
                        t_fill(sh, (size_t)c, -1, 1);
                        const float *S = (sv & 1) ? sc : NULL, *H = (sv & 2) ? sh : NULL;
                        if (affine) {
                            memcpy(a, x, n * sizeof *x);
                            memcpy(b, x, n * sizeof *x);
                            ec_f32_affine_act__ref(a, rows, c, S, H, act);
                            affine_var[v](b, rows, c, S, H, act);
                        } else {
                            ec_f32_act__ref(x, a, rows, c, act);
                            memcpy(b, x, n * sizeof *x);
                            act_var[v](b, b, rows, c, act);     /* in place */
                        }
                        for (size_t i = 0; i < n; i++) {
                            double d = fabs((double)a[i] - b[i]);
                            if (d > worst) worst = d;
                            if (!(d <= 2e-6 * fabs(a[i]) + 1e-7) && !fail) {
                                fail = 1;
                                snprintf(where, sizeof where, "c=%d rows=%d act=%s scale=%d shift=%d i=%zu: %.9g vs ref %.9g",
                                         c, rows, act_name(act), !!S, !!H, i, b[i], a[i]);
                            }
                        }
                        free(x); free(a); free(b); free(sc); free(sh);
                    }
        T_CHECK(name, !fail, "tol 2e-6|ref|+1e-7: %s (max abs diff %.3g)", where, worst);
        if (!fail) printf("  %s max abs diff %.3g\n", name, worst);
    }
    /* The dispatchers reach a correct variant. */
    float x[19], a[19], b[19];
    t_fill(x, 19, -4, 4);
    ec_f32_act__ref(x, a, 1, 19, EC_ACT_SWISH);
    ec_f32_act(x, b, 1, 19, EC_ACT_SWISH);
    double d = 0;
    for (int i = 0; i < 19; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    T_CHECK("act_dispatch", d <= 1e-6, "max abs diff %.3g", d);
}

/* ---- depthwise convolution ---------------------------------------------------- */

typedef void dw_fn(const ec_dwconv_params *p, const float *x, const float *w, const float *scale,
                   const float *shift, float *out, int y0, int y1);

/* The depthwise tests' channel counts: the awkward ones, then enough for the
 * kernels' wider paths: a border pixel's channel tiles go 8 (128 channels) and
 * 4 at a time on AVX-512, 4 (32) on AVX2, then one by one, then the masked tail */
static const int dw_channels[] = {1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 72, 128, 211};
#define NDWCH (int)(sizeof dw_channels / sizeof dw_channels[0])

static void test_dwconv(void)
{
    static const int acts[] = {EC_ACT_SWISH, EC_ACT_LINEAR, EC_ACT_RELU6, EC_ACT_SIGMOID,
                               EC_ACT_RELU, EC_ACT_TANH, EC_ACT_GELU};
    dw_fn *const var[NVAR] = {ec_f32_dwconv__avx2, ec_f32_dwconv__avx512};
    /* sizes up to 21 wide: interior runs of 8- and 4-pixel groups plus leftovers */
    static const int dsizes[][2] = {{1, 1}, {1, 5}, {5, 1}, {2, 3}, {7, 7}, {9, 6}, {13, 11}, {6, 21}};
    const int ndsize = (int)(sizeof dsizes / sizeof *dsizes);
    int counter = 0;
    for (int v = 0; v < NVAR; v++) {
        if (!var_have(v)) {
            char name[64];
            snprintf(name, sizeof name, "dwconv_%s_vs_ref", var_name[v]);
            t_skip(name, var_why(v));
            continue;
        }
        int splitfail = 0;
        char swhere[160] = "";
        for (int k = 1; k <= 5; k += 2)
            for (int s = 1; s <= 2; s++)
                for (int mult = 1; mult <= 2; mult++) {
                    double worst = 0;
                    int fail = 0, runs = 0;
                    char where[200] = "";
                    for (int si = 0; si < ndsize; si++)
                        for (int pad = 0; pad < NPAD; pad++)
                            for (int ci = 0; ci < NDWCH; ci++) {
                                ec_dwconv_params p;
                                if (!make_geom(&p.g, dsizes[si][0], dsizes[si][1], dw_channels[ci], k, s, pad)) continue;
                                p.mult = mult;
                                p.act = acts[counter % 7];
                                const int sv = counter++ % 3;      /* scale+shift, none, shift only */
                                const ec_conv_geom *g = &p.g;
                                const int C = g->c * mult, oh = g->out_h;
                                const size_t nx = (size_t)g->in_h * g->in_w * g->c, nw = (size_t)k * k * C;
                                const size_t no = (size_t)oh * g->out_w * C;
                                float *x = t_fmalloc(nx), *w = t_fmalloc(nw), *sc = t_fmalloc((size_t)C), *sh = t_fmalloc((size_t)C);
                                float *o1 = t_fmalloc(no), *o2 = t_fmalloc(no), *o3 = t_fmalloc(no), *mag = t_fmalloc(no);
                                t_fill(x, nx, -1, 1);
                                t_fill(w, nw, -1, 1);
                                t_fill(sc, (size_t)C, 0.5f, 1.5f);
                                t_fill(sh, (size_t)C, -0.5f, 0.5f);
                                const float *S = sv == 0 ? sc : NULL, *H = sv != 1 ? sh : NULL;
                                for (size_t i = 0; i < no; i++) o2[i] = NAN;     /* catches unwritten outputs */
                                ec_f32_dwconv__ref(&p, x, w, S, H, o1, 0, oh);
                                /* Row ranges in three parts (one possibly empty), and whole */
                                const int c1 = oh / 3, c2 = oh / 3 + (oh > 1);
                                var[v](&p, x, w, S, H, o2, 0, c1);
                                var[v](&p, x, w, S, H, o2, c1, c2);
                                var[v](&p, x, w, S, H, o2, c2, oh);
                                var[v](&p, x, w, S, H, o3, 0, oh);
                                if (memcmp(o2, o3, no * sizeof *o2) && !splitfail) {
                                    splitfail = 1;
                                    snprintf(swhere, sizeof swhere, "in %dx%d c=%d k=%d s=%d mult=%d pad=%s", g->in_h,
                                             g->in_w, g->c, k, s, mult, pad_name[pad]);
                                }
                                /* Error bound of a k*k-term float sum: k*k*eps*sum|x w| * |scale|
                                 * (computed by the reference on absolute values), plus the
                                 * activation's ~2 ulp; activation slopes are <= 1.13. */
                                for (size_t i = 0; i < nx; i++) x[i] = fabsf(x[i]);
                                for (size_t i = 0; i < nw; i++) w[i] = fabsf(w[i]);
                                ec_dwconv_params pm = p;
                                pm.act = EC_ACT_LINEAR;
                                ec_f32_dwconv__ref(&pm, x, w, S, NULL, mag, 0, oh);
                                for (size_t i = 0; i < no; i++) {
                                    const double tol = 1.2 * (k * k + 2) * FLT_EPSILON * fabs(mag[i]) + 2e-6 * fabs(o1[i]) + 1e-7;
                                    const double d = fabs((double)o1[i] - o2[i]);
                                    if (d > worst || isnan(d)) worst = d;
                                    if (!(d <= tol) && !fail) {
                                        fail = 1;
                                        const size_t px = i / C;
                                        snprintf(where, sizeof where,
                                                 "in %dx%d c=%d pad=%s(t%d,l%d) act=%s sv=%d: out(%zu,%zu,%zu) %.9g vs ref %.9g",
                                                 g->in_h, g->in_w, g->c, pad_name[pad], g->pad_t, g->pad_l,
                                                 act_name(p.act), sv, px / g->out_w, px % g->out_w, i % C, o2[i], o1[i]);
                                    }
                                }
                                runs++;
                                free(x); free(w); free(sc); free(sh); free(o1); free(o2); free(o3); free(mag);
                            }
                    char name[64];
                    snprintf(name, sizeof name, "dwconv_%s_vs_ref_k%d_s%d_m%d", var_name[v], k, s, mult);
                    T_CHECK(name, !fail, "tol k*k*eps*sum|xw| + 2e-6|ref|: %s (max abs diff %.3g)", where, worst);
                    if (!fail) printf("  %s: %d shapes, max abs diff %.3g\n", name, runs, worst);
                }
        char name[64];
        snprintf(name, sizeof name, "dwconv_%s_split_bit_identical", var_name[v]);
        T_CHECK(name, !splitfail, "rows in 3 parts != whole: %s", swhere);
    }

    /* SE squeeze fused into the depthwise conv: for each variant (ref, the
     * dispatcher, AVX-512) the row sums equal, bit for bit, the sums of that
     * variant's own output taken in ox order, whatever the row split; the
     * squeeze mean is within (out_w + out_h + 2) eps of the double mean of the
     * same outputs; and the outputs equal ec_f32_dwconv's. */
    {
        typedef void dwrs_fn(const ec_dwconv_params *p, const float *x, const float *w, const float *scale,
                             const float *shift, float *out, float *rowsum, int y0, int y1);
        dwrs_fn *const rsv[3] = {ec_f32_dwconv_rowsum__ref, ec_f32_dwconv_rowsum, ec_f32_dwconv_rowsum__avx512};
        static const char *rsname[3] = {"ref", "dispatch", "avx512"};
        static const int rsizes[][2] = {{1, 1}, {5, 3}, {9, 6}, {13, 11}, {19, 19}, {6, 21}};
        for (int v = 0; v < 3; v++) {
            char name[64];
            snprintf(name, sizeof name, "dwconv_rowsum_%s", rsname[v]);
            if (v == 2 && !ec_cpu_has_avx512()) { t_skip(name, var_why(1)); continue; }
            int fail = 0, runs = 0;
            double worst = 0;
            char where[200] = "";
            for (size_t si = 0; si < sizeof rsizes / sizeof *rsizes; si++)
                for (int ci = 0; ci < NDWCH; ci++)
                    for (int k = 3; k <= 5; k += 2)
                        for (int s = 1; s <= 2; s++) {
                            ec_dwconv_params p;
                            if (!make_geom(&p.g, rsizes[si][0], rsizes[si][1], dw_channels[ci], k, s, PAD_SAME)) continue;
                            p.mult = 1;
                            p.act = (ci & 1) ? EC_ACT_SWISH : EC_ACT_RELU6;
                            const ec_conv_geom *g = &p.g;
                            const int C = g->c, oh = g->out_h, ow = g->out_w;
                            const size_t nx = (size_t)g->in_h * g->in_w * C, no = (size_t)oh * ow * C;
                            float *x = t_fmalloc(nx), *w = t_fmalloc((size_t)k * k * C), *sh = t_fmalloc((size_t)C);
                            float *o = t_fmalloc(no), *o2 = t_fmalloc(no), *rs = t_fmalloc((size_t)oh * C), *m = t_fmalloc((size_t)C);
                            t_fill(x, nx, -1, 1);
                            t_fill(w, (size_t)k * k * C, -1, 1);
                            t_fill(sh, (size_t)C, -0.5f, 0.5f);
                            const int c1 = oh / 2;
                            rsv[v](&p, x, w, NULL, sh, o, rs, 0, c1);
                            rsv[v](&p, x, w, NULL, sh, o, rs, c1, oh);
                            if (v == 2) ec_f32_dwconv__avx512(&p, x, w, NULL, sh, o2, 0, oh);
                            else if (v == 1) ec_f32_dwconv(&p, x, w, NULL, sh, o2, 0, oh);
                            else ec_f32_dwconv__ref(&p, x, w, NULL, sh, o2, 0, oh);
                            if (memcmp(o, o2, no * sizeof *o) && !fail) {
                                fail = 1;
                                snprintf(where, sizeof where, "%dx%d c=%d k=%d s=%d: outputs differ from dwconv's",
                                         g->in_h, g->in_w, C, k, s);
                            }
                            for (int oy = 0; oy < oh && !fail; oy++)
                                for (int j = 0; j < C; j++) {
                                    float t = 0.0f;
                                    for (int ox = 0; ox < ow; ox++) t += o[((size_t)oy * ow + ox) * C + j];
                                    if (fbits(t) != fbits(rs[(size_t)oy * C + j]) && !fail) {
                                        fail = 1;
                                        snprintf(where, sizeof where, "%dx%d c=%d k=%d s=%d: row %d ch %d sum %a vs %a",
                                                 g->in_h, g->in_w, C, k, s, oy, j, rs[(size_t)oy * C + j], t);
                                    }
                                }
                            ec_f32_rowsum_mean(rs, oh, C, (size_t)oh * ow, m);
                            for (int j = 0; j < C; j++) {
                                double t = 0, ta = 0;
                                for (size_t q = 0; q < (size_t)oh * ow; q++) t += o[q * C + j], ta += fabs(o[q * C + j]);
                                const double e = fabs(m[j] - t / (oh * ow));
                                if (e > worst) worst = e;
                                if (!(e <= (ow + oh + 2) * FLT_EPSILON * ta / (oh * ow) + 1e-30) && !fail) {
                                    fail = 1;
                                    snprintf(where, sizeof where, "%dx%d c=%d: mean ch %d %.9g vs %.9g", g->in_h, g->in_w,
                                             C, j, m[j], t / (oh * ow));
                                }
                            }
                            runs++;
                            free(x); free(w); free(sh); free(o); free(o2); free(rs); free(m);
                        }
            T_CHECK(name, !fail, "%s", where);
            if (!fail) printf("  %s: %d shapes, mean max abs diff %.3g\n", name, runs, worst);
        }
    }

    /* A partial row range writes exactly its rows, nothing else. An
     * EfficientNet-like shape through the dispatcher, rows [3, 7) of 10. */
    ec_dwconv_params p;
    make_geom(&p.g, 19, 19, 48, 3, 2, PAD_SAME);
    p.mult = 1;
    p.act = EC_ACT_SWISH;
    const size_t nx = 19 * 19 * 48, no = (size_t)p.g.out_h * p.g.out_w * 48;
    float *x = t_fmalloc(nx), *w = t_fmalloc(9 * 48), *o1 = t_fmalloc(no), *o2 = t_fmalloc(no);
    t_fill(x, nx, -1, 1);
    t_fill(w, 9 * 48, -1, 1);
    for (size_t i = 0; i < no; i++) o1[i] = o2[i] = -12345.0f;
    ec_f32_dwconv__ref(&p, x, w, NULL, NULL, o1, 3, 7);
    ec_f32_dwconv(&p, x, w, NULL, NULL, o2, 3, 7);
    int ok = 1;
    for (size_t i = 0; i < no; i++) {
        const size_t row = i / ((size_t)p.g.out_w * 48);
        if (row < 3 || row >= 7) ok &= o2[i] == -12345.0f;
        else ok &= fabs((double)o1[i] - o2[i]) <= 1e-5;
    }
    T_CHECK("dwconv_dispatch_row_range", ok, "rows outside [3,7) touched or inside wrong");
    free(x); free(w); free(o1); free(o2);
}

/* ---- direct convolution (few output channels) ------------------------------- */

/* __avx2 and __avx512 vs __ref over awkward sizes: cin 1..25, cout across the
 * 8- and 16-lane vectors and the 24- and 48-channel register groups, k 1/3/5,
 * both strides, every padding case, row ranges split in three; and a partial row
 * range writes exactly its rows. */
typedef void conv_fn(const ec_conv_params *p, const float *x, const float *w, const float *scale,
                     const float *shift, float *out, int y0, int y1);

static void test_conv_direct(void)
{
    static const int cins[] = {1, 3, 8, 24, 25};
    static const int couts[] = {1, 7, 8, 9, 15, 16, 17, 24, 25, 31, 32, 33, 49};
    static const int acts[] = {EC_ACT_SWISH, EC_ACT_LINEAR, EC_ACT_RELU6, EC_ACT_SIGMOID, EC_ACT_RELU};
    conv_fn *const var[NVAR] = {ec_f32_conv_direct__avx2, ec_f32_conv_direct__avx512};
    /* up to 21 wide: 8- and 4-pixel blocks and single pixels */
    static const int csizes[][2] = {{1, 1}, {1, 5}, {5, 1}, {2, 3}, {7, 7}, {9, 6}, {13, 11}, {3, 21}};
    int counter = 0, xfail = 0, xruns = 0;
    char xwhere[160] = "";
    for (int v = 0; v < NVAR; v++) {
        if (!var_have(v)) {
            char name[64];
            snprintf(name, sizeof name, "conv_direct_%s_vs_ref", var_name[v]);
            t_skip(name, var_why(v));
            continue;
        }
        for (int k = 1; k <= 5; k += 2)
            for (int s = 1; s <= 2; s++) {
                double worst = 0;
                int fail = 0, runs = 0;
                char where[220] = "";
                for (size_t si = 0; si < sizeof csizes / sizeof *csizes; si++)
                    for (int pad = 0; pad < NPAD; pad++)
                        for (size_t ii = 0; ii < sizeof cins / sizeof *cins; ii++)
                            for (size_t oi = 0; oi < sizeof couts / sizeof *couts; oi++) {
                                ec_conv_params p;
                                if (!make_geom(&p.g, csizes[si][0], csizes[si][1], cins[ii], k, s, pad)) continue;
                                p.cout = couts[oi];
                                p.act = acts[counter % 5];
                                const int sv = counter++ % 3;      /* scale+shift, none, shift only */
                                const ec_conv_geom *g = &p.g;
                                const int C = p.cout, oh = g->out_h;
                                const size_t nx = (size_t)g->in_h * g->in_w * g->c, nw = (size_t)k * k * g->c * C;
                                const size_t no = (size_t)oh * g->out_w * C;
                                float *x = t_fmalloc(nx), *w = t_fmalloc(nw), *sc = t_fmalloc((size_t)C), *sh = t_fmalloc((size_t)C);
                                float *o1 = t_fmalloc(no), *o2 = t_fmalloc(no), *mag = t_fmalloc(no);
                                t_fill(x, nx, -1, 1);
                                t_fill(w, nw, -1, 1);
                                t_fill(sc, (size_t)C, 0.5f, 1.5f);
                                t_fill(sh, (size_t)C, -0.5f, 0.5f);
                                const float *S = sv == 0 ? sc : NULL, *H = sv != 1 ? sh : NULL;
                                for (size_t i = 0; i < no; i++) o2[i] = NAN;     /* catches unwritten outputs */
                                ec_f32_conv_direct__ref(&p, x, w, S, H, o1, 0, oh);
                                const int c1 = oh / 3, c2 = oh / 3 + (oh > 1);
                                var[v](&p, x, w, S, H, o2, 0, c1);
                                var[v](&p, x, w, S, H, o2, c1, c2);
                                var[v](&p, x, w, S, H, o2, c2, oh);
                                /* both SIMD tiers are one FMA chain per output in the same
                                 * order: the same bits for the exact activations */
                                if (v == 1 && var_have(0) && p.act != EC_ACT_SWISH && p.act != EC_ACT_SIGMOID) {
                                    float *o3 = t_fmalloc(no);
                                    var[0](&p, x, w, S, H, o3, 0, oh);
                                    if (memcmp(o2, o3, no * sizeof *o2) && !xfail) {
                                        xfail = 1;
                                        snprintf(xwhere, sizeof xwhere, "in %dx%d cin=%d cout=%d k=%d s=%d pad=%s act=%s",
                                                 g->in_h, g->in_w, g->c, C, k, s, pad_name[pad], act_name(p.act));
                                    }
                                    xruns++;
                                    free(o3);
                                }
                                /* k*k*cin-term float sums (fused vs separate multiply-add) */
                                for (size_t i = 0; i < nx; i++) x[i] = fabsf(x[i]);
                                for (size_t i = 0; i < nw; i++) w[i] = fabsf(w[i]);
                                ec_conv_params pm = p;
                                pm.act = EC_ACT_LINEAR;
                                ec_f32_conv_direct__ref(&pm, x, w, S, NULL, mag, 0, oh);
                                const int terms = k * k * g->c;
                                for (size_t i = 0; i < no; i++) {
                                    const double tol = 1.2 * (terms + 2) * FLT_EPSILON * fabs(mag[i]) + 2e-6 * fabs(o1[i]) + 1e-7;
                                    const double d = fabs((double)o1[i] - o2[i]);
                                    if (d > worst || isnan(d)) worst = d;
                                    if (!(d <= tol) && !fail) {
                                        fail = 1;
                                        const size_t px = i / C;
                                        snprintf(where, sizeof where,
                                                 "in %dx%d cin=%d cout=%d pad=%s act=%s sv=%d: out(%zu,%zu,%zu) %.9g vs ref %.9g",
                                                 g->in_h, g->in_w, g->c, C, pad_name[pad], act_name(p.act), sv,
                                                 px / g->out_w, px % g->out_w, i % C, o2[i], o1[i]);
                                    }
                                }
                                runs++;
                                free(x); free(w); free(sc); free(sh); free(o1); free(o2); free(mag);
                            }
                char name[64];
                snprintf(name, sizeof name, "conv_direct_%s_vs_ref_k%d_s%d", var_name[v], k, s);
                T_CHECK(name, !fail, "tol k*k*cin*eps*sum|xw| + 2e-6|ref|: %s (max abs diff %.3g)", where, worst);
                if (!fail) printf("  %s: %d shapes, max abs diff %.3g\n", name, runs, worst);
            }
    }
    if (var_have(0) && var_have(1))
        T_CHECK("conv_direct_avx512_vs_avx2_bitwise", !xfail && xruns > 0, "%d runs (exact activations): %s", xruns, xwhere);
    else
        t_skip("conv_direct_avx512_vs_avx2_bitwise", var_why(1));

    /* rows [3, 7) of an EfficientNetV2 stage-1 like shape through the dispatcher */
    ec_conv_params p;
    make_geom(&p.g, 19, 17, 24, 3, 1, PAD_SAME);
    p.cout = 24;
    p.act = EC_ACT_SWISH;
    const size_t nx = 19 * 17 * 24, nw = 9 * 24 * 24, no = (size_t)p.g.out_h * p.g.out_w * 24;
    float *x = t_fmalloc(nx), *w = t_fmalloc(nw), *o1 = t_fmalloc(no), *o2 = t_fmalloc(no);
    t_fill(x, nx, -1, 1);
    t_fill(w, nw, -1, 1);
    for (size_t i = 0; i < no; i++) o1[i] = o2[i] = -12345.0f;
    ec_f32_conv_direct__ref(&p, x, w, NULL, NULL, o1, 3, 7);
    ec_f32_conv_direct(&p, x, w, NULL, NULL, o2, 3, 7);
    int ok = 1;
    for (size_t i = 0; i < no; i++) {
        const size_t row = i / ((size_t)p.g.out_w * 24);
        if (row < 3 || row >= 7) ok &= o2[i] == -12345.0f;
        else ok &= fabs((double)o1[i] - o2[i]) <= 1e-4;
    }
    T_CHECK("conv_direct_dispatch_row_range", ok, "rows outside [3,7) touched or inside wrong");
    free(x); free(w); free(o1); free(o2);
}

/* ---- Winograd F(2x2, 3x3) and F(4x4, 3x3) ---------------------------------------- */

/* The whole Winograd conv the way the engine runs it, F(4x4, 3x3) if f43 else
 * F(2x2, 3x3), tile ranges [0, a), [a, b), [b, n) as three tasks; var picks
 * the transforms (0 scalar, 1 AVX2, 2 AVX-512); packed != 0 runs the GEMMs on
 * U packed in panels (the engine's path with AVX2), else sgemm. */
static void wino_weights(int f43, int var, const void *w, int w_f16, const float *scale, int cin, int cout, int c0,
                         int c1, size_t u_stride, float *tmp, float *u)
{
    if (f43 && var == 2) ec_wino43_weights__avx512(w, w_f16, scale, cin, cout, c0, c1, u_stride, u);
    else if (f43 && var == 1) ec_wino43_weights__avx2(w, w_f16, scale, cin, cout, c0, c1, u_stride, u);
    else if (f43) ec_wino43_weights__ref(w, w_f16, scale, cin, cout, c0, c1, u_stride, u);
    else if (var == 2) ec_wino23_weights__avx512(w, w_f16, scale, cin, cout, c0, c1, u_stride, u);
    else if (var == 1) ec_wino23_weights__avx2(w, w_f16, scale, cin, cout, c0, c1, u_stride, u);
    else ec_wino23_weights__ref(w, w_f16, scale, cin, cout, c0, c1, u_stride, tmp, u);
}

/* runs whose packed U (written in three channel ranges) differed from
 * ec_pack_b of the plain U, bit for bit, padding included */
static int wino_packed_u_bad, wino_packed_u_runs;

static void wino_conv(int f43, const ec_conv_params *p, const void *w, int w_f16, const float *scale,
                      const float *shift, const float *x, float *out, int var, int packed)
{
    const ec_conv_geom *g = &p->g;
    const int nxi = f43 ? 36 : 16, cin = g->c, cout = p->cout, np = (cout + EC_PG_NR - 1) / EC_PG_NR;
    const int n = f43 ? ec_wino43_tiles(g) : ec_wino23_tiles(g);
    const size_t ps = ec_pack_b_floats(cin, cout);
    float *u = t_fmalloc((size_t)nxi * cin * cout), *tmp = t_fmalloc((size_t)9 * cout), *up = t_fmalloc(nxi * ps);
    float *up2 = t_fmalloc(nxi * ps);
    wino_weights(f43, var, w, w_f16, scale, cin, cout, 0, cin, 0, tmp, u);
    for (size_t i = 0; i < nxi * ps; i++) up[i] = NAN;               /* unwritten padding shows */
    const int c1 = cin / 3, c2 = c1 + (cin - c1) / 2;
    wino_weights(f43, var, w, w_f16, scale, cin, cout, 0, c1, ps, tmp, up);
    wino_weights(f43, var, w, w_f16, scale, cin, cout, c1, c2, ps, tmp, up);
    wino_weights(f43, var, w, w_f16, scale, cin, cout, c2, cin, ps, tmp, up);
    for (int xi = 0; xi < nxi; xi++) ec_pack_b(u + (size_t)xi * cin * cout, 0, NULL, cin, cout, 0, np, up2 + xi * ps);
    wino_packed_u_bad += memcmp(up, up2, nxi * ps * sizeof *up) != 0;
    wino_packed_u_runs++;
    free(up2);
    const int cuts[4] = {0, n / 3, n / 3 + (n > 1), n};
    for (int c = 0; c < 3; c++) {
        const int t0 = cuts[c], t1 = cuts[c + 1], nt = t1 - t0;
        if (nt <= 0) continue;
        float *v = t_fmalloc((size_t)nxi * nt * cin), *m = t_fmalloc((size_t)nxi * nt * cout);
        if (f43 && var == 2) ec_wino43_input__avx512(g, x, t0, t1, v);
        else if (f43 && var == 1) ec_wino43_input__avx2(g, x, t0, t1, v);
        else if (f43) ec_wino43_input__ref(g, x, t0, t1, v);
        else if (var == 2) ec_wino23_input__avx512(g, x, t0, t1, v);
        else if (var == 1) ec_wino23_input__avx2(g, x, t0, t1, v);
        else ec_wino23_input__ref(g, x, t0, t1, v);
        for (int xi = 0; xi < nxi; xi++) {
            if (packed)
                ec_gemm_packed(nt, cout, cin, v + (size_t)xi * nt * cin, cin, up + xi * ps, NULL, EC_ACT_LINEAR,
                               m + (size_t)xi * nt * cout, cout, 0, nt, 0, np);
            else
                ec_gemm(nt, cout, cin, v + (size_t)xi * nt * cin, cin, u + (size_t)xi * cin * cout, cout, 0.0f,
                        m + (size_t)xi * nt * cout, cout);
        }
        if (f43 && var == 2) ec_wino43_output__avx512(g, cout, m, t0, t1, shift, p->act, out);
        else if (f43 && var == 1) ec_wino43_output__avx2(g, cout, m, t0, t1, shift, p->act, out);
        else if (f43) ec_wino43_output__ref(g, cout, m, t0, t1, shift, p->act, out);
        else if (var == 2) ec_wino23_output__avx512(g, cout, m, t0, t1, shift, p->act, out);
        else if (var == 1) ec_wino23_output__avx2(g, cout, m, t0, t1, shift, p->act, out);
        else ec_wino23_output__ref(g, cout, m, t0, t1, shift, p->act, out);
        free(v); free(m);
    }
    free(u); free(tmp); free(up);
}

/* Against the direct conv (scalar transforms; sgemm and packed GEMM), and the
 * AVX2 (channel counts that are multiples of 8) and AVX-512 (any) transforms
 * against their scalar twins bit for bit, fp32 and fp16 weights.
 * Tolerance: the transforms add up to nxi terms of |x| and 9 of |w| per product,
 * so the direct form's bound grows by them; F(4x4)'s coefficients (up to 8, and
 * 1/6, 1/24 in G) get 4x the allowance of F(2x2)'s, and its 6x6 patch mixes in
 * inputs that the taps do not see and that cancel only to rounding (|x|, |w| <= 1,
 * scale <= 1.5): a floor of 4 eps per term. */
static void test_winograd_kind(int f43)
{
    static const int cins[] = {1, 3, 8, 17, 32, 48};
    static const int couts[] = {1, 8, 16, 25, 33, 40};
    static const int acts[] = {EC_ACT_SWISH, EC_ACT_LINEAR, EC_ACT_RELU6, EC_ACT_SIGMOID, EC_ACT_RELU};
    const char *kind = f43 ? "winograd43" : "winograd";
    const double k_eps = f43 ? 32.0 : 8.0, floor_eps = f43 ? 4.0 : 0.0;
    const int nxi = f43 ? 36 : 16;
    int counter = 0, fail = 0, bitfail[NVAR] = {0, 0}, runs = 0, bitruns[NVAR] = {0, 0};
    double worst = 0, worst_rel = 0;
    char where[240] = "", bitwhere[NVAR][200] = {"", ""}, name[64];
    for (int si = 0; si < NSIZE; si++)
        for (int pad = 0; pad < NPAD; pad++)
            for (size_t ii = 0; ii < sizeof cins / sizeof *cins; ii++)
                for (size_t oi = 0; oi < sizeof couts / sizeof *couts; oi++) {
                    ec_conv_params p;
                    if (!make_geom(&p.g, sizes[si][0], sizes[si][1], cins[ii], 3, 1, pad)) continue;
                    p.cout = couts[oi];
                    p.act = acts[counter % 5];
                    const int sv = counter++ % 3;      /* scale+shift, none, shift only */
                    const ec_conv_geom *g = &p.g;
                    const int C = p.cout, oh = g->out_h;
                    const size_t nx = (size_t)g->in_h * g->in_w * g->c, nw = (size_t)9 * g->c * C;
                    const size_t no = (size_t)oh * g->out_w * C;
                    float *x = t_fmalloc(nx), *w = t_fmalloc(nw), *sc = t_fmalloc((size_t)C), *sh = t_fmalloc((size_t)C);
                    float *o1 = t_fmalloc(no), *o2 = t_fmalloc(no), *o3 = t_fmalloc(no), *mag = t_fmalloc(no);
                    uint16_t *w16 = malloc(nw * sizeof *w16);
                    t_fill(x, nx, -1, 1);
                    t_fill(w, nw, -1, 1);
                    t_fill(sc, (size_t)C, 0.5f, 1.5f);
                    t_fill(sh, (size_t)C, -0.5f, 0.5f);
                    const float *S = sv == 0 ? sc : NULL, *H = sv != 1 ? sh : NULL;
                    for (size_t i = 0; i < no; i++) o2[i] = o3[i] = NAN;     /* catches unwritten outputs */
                    ec_f32_conv_direct__ref(&p, x, w, S, H, o1, 0, oh);
                    wino_conv(f43, &p, w, 0, S, H, x, o2, 0, 0);
                    wino_conv(f43, &p, w, 0, S, H, x, o3, 0, 1);
                    float *ax = t_fmalloc(nx), *aw = t_fmalloc(nw);
                    for (size_t i = 0; i < nx; i++) ax[i] = fabsf(x[i]);
                    for (size_t i = 0; i < nw; i++) aw[i] = fabsf(w[i]);
                    ec_conv_params pm = p;
                    pm.act = EC_ACT_LINEAR;
                    ec_f32_conv_direct__ref(&pm, ax, aw, S, NULL, mag, 0, oh);
                    free(ax); free(aw);
                    const int terms = 9 * g->c;
                    for (size_t j = 0; j < 2 * no; j++) {   /* sgemm, then packed */
                        const size_t i = j % no;
                        const float got = j < no ? o2[i] : o3[i];
                        const double tol = k_eps * (terms + nxi) * FLT_EPSILON * fabs(mag[i]) + 4e-6 * fabs(o1[i]) +
                                           floor_eps * FLT_EPSILON * terms + 1e-7;
                        const double d = fabs((double)o1[i] - got);
                        if (d > worst || isnan(d)) worst = d;
                        if (mag[i] > 0 && d / mag[i] > worst_rel) worst_rel = d / mag[i];
                        if (!(d <= tol) && !fail) {
                            fail = 1;
                            const size_t px = i / C;
                            snprintf(where, sizeof where,
                                     "%s in %dx%d cin=%d cout=%d pad=%s act=%s sv=%d: out(%zu,%zu,%zu) %.9g vs direct %.9g",
                                     j < no ? "sgemm" : "packed", g->in_h, g->in_w, g->c, C, pad_name[pad],
                                     act_name(p.act), sv, px / g->out_w, px % g->out_w, i % C, got, o1[i]);
                        }
                    }
                    runs++;
                    /* the SIMD transforms vs the scalar ones, bit for bit: the scalar
                     * output transform applies its activation through the
                     * dispatcher, so it runs linear here and the variant's own
                     * activation follows (each fused one is that same function) */
                    for (int v = 0; v < NVAR; v++) {
                        if (!var_have(v) || (v == 0 && (g->c % 8 || C % 8))) continue;
                        ec_f32_to_f16_n(w, w16, nw);
                        ec_conv_params pl = p;
                        pl.act = EC_ACT_LINEAR;
                        for (int f16 = 0; f16 < 2; f16++) {
                            const void *wv = f16 ? (const void *)w16 : (const void *)w;
                            wino_conv(f43, &pl, wv, f16, S, H, x, o2, 0, 1);
                            act_var[v](o2, o2, (size_t)oh * g->out_w, C, p.act);
                            wino_conv(f43, &p, wv, f16, S, H, x, o3, v + 1, 1);
                            for (size_t i = 0; i < no && !bitfail[v]; i++)
                                if (fbits(o2[i]) != fbits(o3[i])) {
                                    bitfail[v] = 1;
                                    snprintf(bitwhere[v], sizeof bitwhere[v],
                                             "in %dx%d cin=%d cout=%d pad=%s act=%s f16=%d: %zu: %.9g vs %.9g", g->in_h,
                                             g->in_w, g->c, C, pad_name[pad], act_name(p.act), f16, i, o3[i], o2[i]);
                                }
                            bitruns[v]++;
                        }
                    }
                    free(x); free(w); free(sc); free(sh); free(o1); free(o2); free(o3); free(mag); free(w16);
                }
    snprintf(name, sizeof name, "%s_vs_direct", kind);
    T_CHECK(name, !fail, "tol %g*(9*cin+%d)*eps*sum|xw| + 4e-6|ref| + %g*9*cin*eps: %s (max abs diff %.3g)", k_eps, nxi,
            floor_eps, where, worst);
    if (!fail) printf("  %s: %d shapes, max abs diff %.3g, max diff / sum|xw| %.3g\n", name, runs, worst, worst_rel);
    snprintf(name, sizeof name, "%s_weights_packed_in_ranges", kind);
    T_CHECK(name, wino_packed_u_bad == 0 && wino_packed_u_runs > 0,
            "%d of %d runs: U written in panels over 3 channel ranges != ec_pack_b(plain U)", wino_packed_u_bad,
            wino_packed_u_runs);
    wino_packed_u_bad = wino_packed_u_runs = 0;
    for (int v = 0; v < NVAR; v++) {
        snprintf(name, sizeof name, "%s_%s_bit_identical", kind, var_name[v]);
        if (!var_have(v)) t_skip(name, var_why(v));
        else T_CHECK(name, !bitfail[v] && bitruns[v] > 0, "%d runs: %s", bitruns[v], bitwhere[v]);
    }
}

static void test_winograd(void)
{
    test_winograd_kind(0);
    test_winograd_kind(1);
}

/* ---- pooling and elementwise ------------------------------------------------------ */

typedef void gap_fn(const float *x, size_t hw, int c, size_t ldx, float *out);
typedef void bin_fn(const float *a, const float *b, float *out, size_t n);
typedef void bcast_fn(const float *x, const float *s, float *out, size_t hw, int c);

static void test_eltwise(void)
{
    gap_fn *const gapv[1 + NVAR] = {ec_f32_gap__ref, ec_f32_gap__avx2, ec_f32_gap__avx512};
    bin_fn *const addv[1 + NVAR] = {ec_f32_add__ref, ec_f32_add__avx2, ec_f32_add__avx512};
    bin_fn *const mulv[1 + NVAR] = {ec_f32_mul__ref, ec_f32_mul__avx2, ec_f32_mul__avx512};
    bcast_fn *const bcv[1 + NVAR] = {ec_f32_mul_bcast__ref, ec_f32_mul_bcast__avx2, ec_f32_mul_bcast__avx512};
    /* GAP: identical blocking in every variant -> bitwise equal; and within
     * (64 + hw/64 + 2) eps of the double mean (sum of |x| bounds the terms). */
    static const size_t hws[] = {1, 7, 63, 64, 65, 200, 4097};
    int ok_bits[NVAR] = {1, 1}, ok_acc = 1, ok_split = 1;
    double worst = 0;
    for (size_t hi = 0; hi < sizeof hws / sizeof hws[0]; hi++)
        for (int ci = 0; ci < NCH; ci++) {
            const size_t hw = hws[hi];
            const int c = channels[ci] + (hi & 1) * 32;        /* also 33..65 wide */
            float *x = t_fmalloc(hw * c), *a = t_fmalloc((size_t)c), *b = t_fmalloc((size_t)c + 1);
            t_fill(x, hw * c, -1, 3);
            ec_f32_gap__ref(x, hw, c, (size_t)c, a);
            for (int v = 0; v < NVAR; v++) {
                if (!var_have(v)) continue;
                b[c] = 12345.0f;
                gapv[1 + v](x, hw, c, (size_t)c, b);
                ok_bits[v] &= memcmp(a, b, (size_t)c * sizeof *a) == 0 && b[c] == 12345.0f;
            }
            /* channel ranges [0, 8), [8, c0), [c0, c) of the same rows, as the
             * engine splits them between threads: the same bits */
            const int c0 = c > 40 ? 40 : c;
            float *r = t_fmalloc((size_t)c);
            for (int v = 0; v <= NVAR; v++) {
                if (v && !var_have(v - 1)) continue;
                gap_fn *g = gapv[v];
                if (c >= 8) g(x, hw, 8, (size_t)c, r);
                if (c0 > 8) g(x + 8, hw, c0 - 8, (size_t)c, r + 8);
                if (c < 8) g(x, hw, c, (size_t)c, r);
                else if (c > c0) g(x + c0, hw, c - c0, (size_t)c, r + c0);
                ok_split &= memcmp(a, r, (size_t)c * sizeof *a) == 0;
            }
            free(r);
            for (int j = 0; j < c; j++) {
                double s = 0, sa = 0;
                for (size_t p = 0; p < hw; p++) { s += x[p * c + j]; sa += fabs(x[p * c + j]); }
                double e = fabs(a[j] - s / hw), bound = (64.0 + hw / 64.0 + 2) * FLT_EPSILON * sa / hw;
                ok_acc &= e <= bound;
                if (e > worst) worst = e;
            }
            free(x); free(a); free(b);
        }
    for (int v = 0; v < NVAR; v++) {
        char name[64];
        snprintf(name, sizeof name, "gap_%s_vs_ref_bitwise", var_name[v]);
        if (!var_have(v)) t_skip(name, var_why(v));
        else T_CHECK(name, ok_bits[v], "GAP variants differ (or wrote past c)");
    }
    T_CHECK("gap_channel_ranges_bitwise", ok_split, "GAP over channel ranges (row stride c) differs from the whole");
    T_CHECK("gap_vs_double_mean", ok_acc, "error above (64 + hw/64 + 2) eps mean|x| (max abs diff %.3g)", worst);

    /* add / mul / mul_bcast: one rounding per element in every variant, so
     * results must be bitwise equal; out aliasing an input is allowed. */
    static const size_t ns[] = {0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100};
    int ok = 1;
    char where[96] = "";
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        const size_t n = ns[ni];
        float *a = t_fmalloc(n), *b = t_fmalloc(n), *r = t_fmalloc(n), *o = t_fmalloc(n);
        t_fill(a, n, -2, 2);
        t_fill(b, n, -2, 2);
        for (int op = 0; op < 2; op++) {
            bin_fn *const *fv = op ? mulv : addv;
            fv[0](a, b, r, n);
            memcpy(o, a, n * sizeof *o);                       /* out aliases a, dispatcher */
            if (op == 0) ec_f32_add(o, b, o, n); else ec_f32_mul(o, b, o, n);
            if (n && memcmp(o, r, n * sizeof *o) && ok) ok = 0, snprintf(where, sizeof where, "dispatch op %d n %zu", op, n);
            for (int v = 0; v < NVAR; v++) {
                if (!var_have(v)) continue;
                memcpy(o, b, n * sizeof *o);                   /* out aliases b */
                fv[1 + v](a, o, o, n);
                if (n && memcmp(o, r, n * sizeof *o) && ok)
                    ok = 0, snprintf(where, sizeof where, "%s op %d n %zu", var_name[v], op, n);
            }
        }
        free(a); free(b); free(r); free(o);
    }
    T_CHECK("add_mul_vs_ref_bitwise", ok, "elementwise add/mul differ: %s", where);

    ok = 1;
    for (int ci = 0; ci < NCH; ci++)
        for (size_t hw = 1; hw <= 5; hw += 2) {
            const int c = channels[ci];
            float *x = t_fmalloc(hw * c), *s = t_fmalloc((size_t)c), *r = t_fmalloc(hw * c), *o = t_fmalloc(hw * c);
            t_fill(x, hw * c, -2, 2);
            t_fill(s, (size_t)c, 0, 1);
            ec_f32_mul_bcast__ref(x, s, r, hw, c);
            for (int v = 0; v <= NVAR; v++) {
                if (v && !var_have(v - 1)) continue;
                memcpy(o, x, hw * c * sizeof *o);
                if (v) bcv[v](o, s, o, hw, c);                  /* in place */
                else ec_f32_mul_bcast(o, s, o, hw, c);
                if (memcmp(o, r, hw * c * sizeof *o) && ok)
                    ok = 0, snprintf(where, sizeof where, "%s c %d hw %zu", v ? var_name[v - 1] : "dispatch", c, hw);
            }
            free(x); free(s); free(r); free(o);
        }
    T_CHECK("mul_bcast_vs_ref_bitwise", ok, "SE excite multiply differs: %s", where);

    /* zeropad against the definition, including zero-size sides. */
    ok = 1;
    static const int pads[][4] = {{0, 0, 0, 0}, {0, 1, 0, 1}, {1, 1, 1, 1}, {2, 0, 3, 0}};
    for (int pi = 0; pi < 4; pi++)
        for (int ci = 0; ci < NCH; ci += 2) {
            const int h = 3, w = 5, c = channels[ci];
            const int pt = pads[pi][0], pb = pads[pi][1], pl = pads[pi][2], pr = pads[pi][3];
            const int oh = h + pt + pb, ow = w + pl + pr;
            float *x = t_fmalloc((size_t)h * w * c), *o = t_fmalloc((size_t)oh * ow * c);
            t_fill(x, (size_t)h * w * c, 1, 2);
            ec_f32_zeropad(x, h, w, c, pt, pb, pl, pr, o);
            for (int y = 0; y < oh; y++)
                for (int xx = 0; xx < ow; xx++)
                    for (int j = 0; j < c; j++) {
                        const int iy = y - pt, ix = xx - pl;
                        const float want = iy < 0 || iy >= h || ix < 0 || ix >= w
                                               ? 0.0f : x[((size_t)iy * w + ix) * c + j];
                        ok &= o[((size_t)y * ow + xx) * c + j] == want;
                    }
            free(x); free(o);
        }
    T_CHECK("zeropad_exact", ok, "zeropad output wrong");
}

/* ---- backward: finite differences -------------------------------------------------
 * Central differences on the float forward kernel: f'(x) ~ (f(x+h) - f(x-h)) / 2h
 * with h = 1e-2 balances truncation (h^2/6 |f'''| ~ 2e-5) against float
 * rounding (eps |f| / h ~ 6e-6 |f|). Tolerance 2e-4 + 1e-3 |g|. Inputs keep
 * 0.05 away from the kinks of relu/relu6 so the difference quotient is smooth. */
static void test_backward(void)
{
    const float h = 1e-2f;
    for (int ai = 0; ai < NACT + 1; ai++) {
        const int act = ai < NACT ? elementwise_acts[ai] : EC_ACT_SOFTMAX;
        const int rows = 2, c = 7, n = rows * c;
        float x[14], dy[14], dx[14], xp[14], yp[14], ym[14];
        for (int i = 0; i < n; i++) {
            float v;
            do v = t_rng_uniform(-4, 8);
            while (fabsf(v) < 0.05f || fabsf(v - 6.0f) < 0.05f);
            x[i] = act == EC_ACT_SOFTMAX ? v / 3 : v;
            dy[i] = t_rng_uniform(-1, 1);
        }
        ec_f32_act_backward(x, dy, dx, rows, c, act);
        double worst = 0;
        int fail = 0, wi = 0;
        for (int i = 0; i < n; i++) {
            /* L = sum dy * act(x); dL/dx_i by central difference. */
            double L[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                memcpy(xp, x, sizeof x);
                xp[i] += sgn ? -h : h;
                ec_f32_act(xp, sgn ? ym : yp, rows, c, act);
            }
            L[0] = L[1] = 0;
            for (int j = 0; j < n; j++) { L[0] += (double)dy[j] * yp[j]; L[1] += (double)dy[j] * ym[j]; }
            const double num = (L[0] - L[1]) / (2.0 * h);
            const double e = fabs(num - dx[i]);
            if (e > worst) { worst = e; wi = i; }
            if (!(e <= 2e-4 + 1e-3 * fabs(num))) fail = 1;
        }
        char name[64];
        snprintf(name, sizeof name, "act_backward_fd_%s", act_name(act));
        T_CHECK(name, !fail, "max |analytic - numeric| %.3g at x=%g (dx=%g)", worst, x[wi], dx[wi]);
    }

    /* the AVX2 and AVX-512 twins (sigmoid, swish, relu, relu6) against the
     * double-precision reference over [-90, 90] (both tails, where 1 - s must not
     * cancel), lengths with a masked tail */
    typedef void bwd_fn(const float *x, const float *dy, float *dx, size_t n, int act);
    bwd_fn *const bwd[NVAR] = {ec_f32_act_backward__avx2, ec_f32_act_backward__avx512};
    for (int v = 0; v < NVAR; v++) {
        char name[64];
        snprintf(name, sizeof name, "act_backward_%s_vs_ref", var_name[v]);
        if (!var_have(v)) { t_skip(name, var_why(v)); continue; }
        static const int bacts[] = {EC_ACT_SIGMOID, EC_ACT_SWISH, EC_ACT_RELU, EC_ACT_RELU6, EC_ACT_LINEAR};
        static const size_t lens[] = {1, 15, 17, 31, 4099};
        double worst = 0;
        int fail = 0;
        char where[160] = "";
        for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
            const size_t n = lens[li];
            float *x = t_fmalloc(n), *dy = t_fmalloc(n), *d1 = t_fmalloc(n), *d2 = t_fmalloc(n);
            for (size_t ai = 0; ai < sizeof bacts / sizeof *bacts; ai++) {
                for (size_t i = 0; i < n; i++) {
                    x[i] = i % 3 ? t_rng_uniform(-8, 8) : t_rng_uniform(-90, 90);
                    dy[i] = t_rng_uniform(-1, 1);
                }
                if (n > 2) x[0] = 0.0f, x[1] = 6.0f, x[2] = -0.0f;
                ec_f32_act_backward__ref(x, dy, d1, 1, (int)n, bacts[ai]);
                bwd[v](x, dy, d2, n, bacts[ai]);
                for (size_t i = 0; i < n; i++) {
                    /* relative to the terms' size: swish' = s + x s (1 - s) crosses 0
                     * near x = -1.28, where the sum cancels; and the double reference
                     * rounds 1 - s to 0 past |x| ~ 37 (the absolute floor) */
                    const double sg = 1.0 / (1.0 + exp(-(double)x[i]));
                    const double mag = fabs(dy[i]) * (sg + fabs((double)x[i]) * sg * (1.0 - sg) + 1.0);
                    const double e = fabs((double)d1[i] - d2[i]);
                    if (e > worst) worst = e;
                    if (!(e <= 1e-6 * mag + 1e-12) && !fail) {
                        fail = 1;
                        snprintf(where, sizeof where, "n=%zu %s x=%a dy=%g: %a vs ref %a", n, act_name(bacts[ai]),
                                 x[i], dy[i], d2[i], d1[i]);
                    }
                }
            }
            free(x); free(dy); free(d1); free(d2);
        }
        T_CHECK(name, !fail, "tol 1e-6 |dy| (s + |x| s (1 - s) + 1) + 1e-12: %s (max abs diff %.3g)", where, worst);
        if (!fail) printf("  %s max abs diff %.3g\n", name, worst);
    }

    /* softmax_backward, also through act_backward's softmax path. */
    {
        const int rows = 3, c = 9, n = rows * c;
        float x[27], y[27], dy[27], dx[27], dx2[27], xp[27], yp[27], ym[27];
        t_fill(x, n, -2, 2);
        t_fill(dy, n, -1, 1);
        ec_f32_act__ref(x, y, rows, c, EC_ACT_SOFTMAX);
        ec_f32_softmax_backward(y, dy, dx, rows, c);
        double worst = 0;
        int fail = 0;
        for (int i = 0; i < n; i++) {
            double L[2] = {0, 0};
            for (int sgn = 0; sgn < 2; sgn++) {
                memcpy(xp, x, sizeof x);
                xp[i] += sgn ? -h : h;
                ec_f32_act__ref(xp, sgn ? ym : yp, rows, c, EC_ACT_SOFTMAX);
            }
            for (int j = 0; j < n; j++) { L[0] += (double)dy[j] * yp[j]; L[1] += (double)dy[j] * ym[j]; }
            const double e = fabs((L[0] - L[1]) / (2.0 * h) - dx[i]);
            if (e > worst) worst = e;
            if (!(e <= 1e-4)) fail = 1;
        }
        T_CHECK("softmax_backward_fd", !fail, "max |analytic - numeric| %.3g > 1e-4", worst);
        /* dx may alias dy. */
        memcpy(dx2, dy, sizeof dy);
        ec_f32_softmax_backward(y, dx2, dx2, rows, c);
        double d = 0;
        for (int i = 0; i < n; i++) d = fmax(d, fabs((double)dx2[i] - dx[i]));
        T_CHECK("softmax_backward_in_place", d == 0, "in-place differs by %.3g", d);
    }
}

int main(void)
{
    printf("# kernels: AVX2 variants %s; AVX-512 variants %s\n", ec_cpu_has_avx2() ? "tested" : "absent on this CPU (SKIP)",
           ec_cpu_has_avx512() ? "tested" : "not used on this CPU or disabled by EFFCAM_NO_AVX512 (SKIP)");
    test_f16();
    test_any_nonfinite();
    test_gemm();
    test_im2col();
    test_act_accuracy();
    test_softmax();
    test_act_vs_ref();
    test_dwconv();
    test_conv_direct();
    test_winograd();
    test_pgemm();
    test_gemm_w16();
    test_eltwise();
    test_backward();
    return t_failed;
}
