/* overlay.c - the app's Grad-CAM overlay (docs/semantics.md section 5): the heatmap
 * truncated to uint8, upscaled with PIL BILINEAR, coloured with matplotlib's
 * jet, blended into the overlay base with Image.blend(0.4), each step rounding
 * exactly where the app rounded. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/error.h"
#include "image.h"
#include "resample.h"


/* matplotlib's "jet" segment data (_cm.py): per channel, rows of
 * (x, value left of x, value right of x). */
typedef struct { double x, y0, y1; } im_seg;
static const im_seg jet_red[] = {{0, 0, 0}, {0.35, 0, 0}, {0.66, 1, 1}, {0.89, 1, 1}, {1, 0.5, 0.5}};
static const im_seg jet_green[] = {{0, 0, 0}, {0.125, 0, 0}, {0.375, 1, 1}, {0.64, 1, 1}, {0.91, 0, 0}, {1, 0, 0}};
static const im_seg jet_blue[] = {{0, 0.5, 0.5}, {0.11, 1, 1}, {0.34, 1, 1}, {0.65, 0, 0}, {1, 0, 0}};

/* One channel of LinearSegmentedColormap's 256-entry LUT, with numpy's
 * float64 operations in numpy's order: breakpoints x * 255; sample points
 * 255 * (i * (1/255)) (np.linspace multiplies by the step; not exactly i);
 * searchsorted (left); linear interpolation; clip to [0, 1]. The product and
 * the sum are separate statements so no compiler fuses them into an FMA,
 * which numpy never does. */
static void im_jet_channel(const im_seg *s, int ns, double lut[256])
{
    double xs[8];
    for (int j = 0; j < ns; j++) xs[j] = s[j].x * 255.0;
    const double step = 1.0 / 255.0;
    lut[0] = s[0].y1;
    lut[255] = s[ns - 1].y0;
    for (int i = 1; i < 255; i++) {
        double xi = 255.0 * ((double)i * step);
        int j = 0;
        while (j < ns - 1 && xs[j] < xi) j++;             /* first xs[j] >= xi */
        double dist = (xi - xs[j - 1]) / (xs[j] - xs[j - 1]);
        double t = dist * (s[j].y0 - s[j - 1].y1);
        double v = t + s[j - 1].y1;
        lut[i] = v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v;
    }
}

/* col[b] = the overlay colour for upscaled heat byte b: v = b / 255.0,
 * entry min(255, floor(v * 256)) (Colormap.__call__), then uint8(255 * c)
 * with numpy's truncation. */
static void im_jet_colors(uint8_t col[256][3])
{
    double lut[3][256];
    im_jet_channel(jet_red, (int)(sizeof jet_red / sizeof *jet_red), lut[0]);
    im_jet_channel(jet_green, (int)(sizeof jet_green / sizeof *jet_green), lut[1]);
    im_jet_channel(jet_blue, (int)(sizeof jet_blue / sizeof *jet_blue), lut[2]);
    for (int b = 0; b < 256; b++) {
        double v = (double)b / 255.0;
        int idx = (int)(v * 256.0);
        if (idx > 255) idx = 255;
        for (int c = 0; c < 3; c++) col[b][c] = (uint8_t)(255.0 * lut[c][idx]);
    }
}

static size_t im_align16(size_t n) { return (n + 15) & ~(size_t)15; }

static int im_overlay_sizes_ok(int ch, int cw, int h, int w)
{
    return ch > 0 && cw > 0 && h > 0 && w > 0 && ch <= (1 << 24) && cw <= (1 << 24) && h <= (1 << 24) &&
           w <= (1 << 24) && (uint64_t)ch * cw <= ((uint64_t)1 << 40) && (uint64_t)h * w <= ((uint64_t)1 << 40);
}

size_t ec_overlay_scratch_bytes(int ch, int cw, int h, int w)
{
    if (!im_overlay_sizes_ok(ch, cw, h, w)) return 0;
    size_t rs = ec_resampler_bytes(EC_RESIZE_BILINEAR, cw, ch, w, h, 1);
    return rs ? im_align16((size_t)ch * (size_t)cw) + im_align16((size_t)h * (size_t)w) + rs : 0;
}

ec_status ec_overlay_rgba(const float *cam, int ch, int cw, const uint8_t *rgb, int h, int w,
                          void *scratch, uint8_t *rgba)
{
    size_t sb = ec_overlay_scratch_bytes(ch, cw, h, w);
    if (!cam || !rgb || !scratch || !rgba || !sb)
        return ec_fail(EC_ERR_ARG, "overlay of a %dx%d map on a %dx%d image: bad arguments", ch, cw, h, w);
    uint8_t *heat = scratch;                                               /* [ch][cw] */
    uint8_t *up = heat + im_align16((size_t)ch * (size_t)cw);             /* [h][w] */
    uint8_t *rs_mem = up + im_align16((size_t)h * (size_t)w);

    /* 1. np.uint8(255 * cam): cam is float32 and numpy keeps the product in
     * float32, then truncates. Out-of-range and NaN inputs are clamped. */
    for (size_t i = 0; i < (size_t)ch * (size_t)cw; i++) {
        float p = 255.0f * cam[i];
        heat[i] = p > 0.0f ? (p >= 255.0f ? 255 : (uint8_t)p) : 0;
    }
    /* 2. Image.fromarray(heat).resize((w, h), BILINEAR), in the scratch. */
    ec_resampler *r;
    ec_status st = ec_resampler_init(rs_mem, sb - (size_t)(rs_mem - heat), EC_RESIZE_BILINEAR, cw, ch, w, h, 1, up, &r);
    for (int y = 0; st == EC_OK && y < ch; y++) st = ec_resampler_push(r, heat + (size_t)y * cw);
    if (st != EC_OK) return st;

    /* 3. jet colours, one per heat byte. */
    uint8_t col[256][3];
    im_jet_colors(col);

    /* 4. Image.blend(input, colours, 0.4): out = (uint8)(in1 + 0.4f * (in2 - in1))
     * in float (Pillow's alpha is a C float), truncated. The products are
     * tabulated by difference so the add cannot be fused with the multiply. */
    const float alpha = 0.4f;
    float prod[511];
    for (int d = -255; d <= 255; d++) prod[d + 255] = alpha * (float)d;
    for (size_t i = 0; i < (size_t)h * (size_t)w; i++) {
        const uint8_t *in1 = rgb + 3 * i, *in2 = col[up[i]];
        uint8_t *o = rgba + 4 * i;
        for (int c = 0; c < 3; c++) o[c] = (uint8_t)((float)in1[c] + prod[in2[c] - in1[c] + 255]);
        o[3] = 255;                                       /* 255 + 0.4 * (255 - 255) */
    }
    return EC_OK;
}
