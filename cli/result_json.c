/* result_json.c - the one writer of an image's result, for `predict --json`
 * (one object per line), `serve` (the same fields after the request's "id")
 * and the text report of `predict`. One top-k, one JSON shape:
 *
 *   "image": PATH | null, "input_hw": [h, w],
 *   "probabilities": [p_0, ...]          ("scores" when the output is not a softmax)
 *   "top": [{"index": i, "label": L, "probability": p}, ...]    ("score" likewise)
 *   "gradcam": {"layer": NAME, "method": M, "class": c, "score": "prob" | "logit",
 *               "height": h, "width": w, "values": [...]}       with a heatmap
 *   "overlay_base64": "<PNG>"                                    with an overlay
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

void cli_top_k(const float *p, int num_classes, int k, int *order)
{
    /* selection with the pick moved to the front by shifting, so the rest keeps
     * its order and equal values stay in class order (Python's stable sort) */
    for (int i = 0; i < num_classes; i++) order[i] = i;
    if (k > num_classes) k = num_classes;
    for (int i = 0; i < k; i++) {
        int best = i;
        for (int j = i + 1; j < num_classes; j++)
            if (p[order[j]] > p[order[best]]) best = j;
        int pick = order[best];
        memmove(order + i + 1, order + i, (size_t)(best - i) * sizeof *order);
        order[i] = pick;
    }
}

void cli_result_fields(js_buf *b, const cli_result *res)
{
    const ec_result *r = res->r;
    const int prob = ec_model_output_is_probability(res->m);
    js_buf_puts(b, "\"image\": ");
    if (res->image) js_buf_string(b, res->image);
    else js_buf_puts(b, "null");
    js_buf_printf(b, ", \"input_hw\": [%d, %d], \"%s\": [", r->input_height, r->input_width,
                  prob ? "probabilities" : "scores");
    for (int i = 0; i < r->num_classes; i++) js_buf_printf(b, "%s%.9g", i ? ", " : "", r->probabilities[i]);
    js_buf_puts(b, "], \"top\": [");
    for (int i = 0; i < res->top_k; i++) {
        int c = res->order[i];
        js_buf_printf(b, "%s{\"index\": %d, \"label\": ", i ? ", " : "", c);
        js_buf_string(b, ec_model_label(res->m, c));
        js_buf_printf(b, ", \"%s\": %.9g}", prob ? "probability" : "score", r->probabilities[c]);
    }
    js_buf_puts(b, "]");
    if (r->cam) {
        js_buf_puts(b, ", \"gradcam\": {\"layer\": ");
        js_buf_string(b, r->cam_layer ? r->cam_layer : "");
        js_buf_puts(b, ", \"method\": ");
        js_buf_string(b, r->cam_method ? r->cam_method : "gradcam");
        js_buf_printf(b, ", \"class\": %d, \"score\": \"%s\", \"height\": %d, \"width\": %d, \"values\": [",
                      r->cam_class, r->cam_logit ? "logit" : "prob", r->cam_height, r->cam_width);
        for (int i = 0; i < r->cam_height * r->cam_width; i++) js_buf_printf(b, "%s%.7g", i ? ", " : "", r->cam[i]);
        js_buf_puts(b, "]}");
    }
    if (res->png) {
        js_buf_puts(b, ", \"overlay_base64\": ");
        cli_buf_base64(b, res->png, res->png_len);
    }
}

void cli_error_object(js_buf *b, const char *image, const char *msg)
{
    js_buf_puts(b, "{\"image\": ");
    if (image) js_buf_string(b, image);
    else js_buf_puts(b, "null");
    js_buf_puts(b, ", \"error\": ");
    js_buf_string(b, msg);
    js_buf_puts(b, "}");
}

/* s with control characters shown as \xNN: a label or a path from a file must
 * not move the terminal's cursor or forge lines of the report */
static void cli_text_escaped(js_buf *b, const char *s)
{
    char tmp[8];
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7F) {
            snprintf(tmp, sizeof tmp, "\\x%02x", c);
            js_buf_puts(b, tmp);
        } else {
            tmp[0] = (char)c, tmp[1] = 0;
            js_buf_puts(b, tmp);
        }
    }
}

void cli_result_text(js_buf *b, const cli_result *res)
{
    const int prob = ec_model_output_is_probability(res->m);
    cli_text_escaped(b, res->image ? res->image : "(upload)");
    for (int i = 0; i < res->top_k; i++) {
        int c = res->order[i];
        js_buf_printf(b, "\n  %d. ", i + 1);
        size_t at = b->len;
        cli_text_escaped(b, ec_model_label(res->m, c));
        size_t n = b->len - at;
        for (; n < 56; n++) js_buf_puts(b, " ");
        if (prob) js_buf_printf(b, " %7.2f%%", 100.0 * res->r->probabilities[c]);
        else js_buf_printf(b, " %10.5g", res->r->probabilities[c]);
    }
}
