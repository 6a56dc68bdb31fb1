/* ref_forward_impl.h - the reference interpreter's body, included by
 * ref_forward.c once per precision (REF_T float, then double); not a header to
 * include anywhere else. */
static REF_T REF(act)(int act, REF_T x)
{
    switch (act) {
    case ECM_ACT_SWISH: return x / (1 + REF_EXP(-x));
    case ECM_ACT_SIGMOID: return 1 / (1 + REF_EXP(-x));
    case ECM_ACT_RELU: return x > 0 ? x : 0;
    case ECM_ACT_RELU6: return x > 0 ? (x < 6 ? x : 6) : 0;
    case ECM_ACT_TANH: return REF_TANH(x);
    case ECM_ACT_GELU: return (REF_T)(0.5 * x * (1.0 + erf(x / sqrt(2.0))));
    default: return x;   /* linear; softmax is applied over whole rows */
    }
}

/* y[0..n) += a * x[0..n). Unrolled by 8 so that GCC's -O2 straight-line
 * vectorizer picks it up; per element the arithmetic is the scalar one (C11 mode
 * does not contract to FMA), so results are bit-identical across machines. */
static void REF(axpy)(int n, REF_T a, const REF_T *restrict x, REF_T *restrict y)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        y[i] += a * x[i];         y[i + 1] += a * x[i + 1];
        y[i + 2] += a * x[i + 2]; y[i + 3] += a * x[i + 3];
        y[i + 4] += a * x[i + 4]; y[i + 5] += a * x[i + 5];
        y[i + 6] += a * x[i + 6]; y[i + 7] += a * x[i + 7];
    }
    for (; i < n; i++) y[i] += a * x[i];
}

/* softmax over each row of c values, in place (max subtracted first) */
static void REF(softmax)(REF_T *y, size_t rows, int c)
{
    for (size_t r = 0; r < rows; r++, y += c) {
        REF_T mx = -INFINITY, sum = 0;
        for (int k = 0; k < c; k++) mx = y[k] > mx ? y[k] : mx;
        for (int k = 0; k < c; k++) sum += (y[k] = REF_EXP(y[k] - mx));
        for (int k = 0; k < c; k++) y[k] /= sum;
    }
}

/* One node on one image: x = its first input, y = its output (zeroed), w = its
 * weights as float32 (NULL where absent). */
static int REF(node)(const cv_graph *g, const cv_node *n, REF_T *const *v, size_t b, REF_T **w, REF_T *y, cv_err *e)
{
    const cv_value *X = &g->values[n->in[0]], *Y = &g->values[n->out];
    const int H = X->h, W = X->w, C = X->c;
    const size_t xs = (size_t)H * W * C, ys = (size_t)Y->h * Y->w * Y->c;   /* per image */
    const REF_T *x = v[n->in[0]] + b * xs;
    switch (n->op) {
    case ECM_OP_CONV2D:
    case ECM_OP_DWCONV2D: {
        const int dw = n->op == ECM_OP_DWCONV2D, co = Y->c, mult = dw && n->mult > 0 ? n->mult : 1;
        for (int oy = 0; oy < Y->h; oy++)
            for (int ox = 0; ox < Y->w; ox++) {
                REF_T *yp = y + ((size_t)oy * Y->w + ox) * co;   /* [co] */
                for (int ky = 0; ky < n->kh; ky++) {
                    int iy = oy * n->sh + ky - n->pt;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < n->kw; kx++) {
                        int ix = ox * n->sw + kx - n->pl;
                        if (ix < 0 || ix >= W) continue;
                        const REF_T *xp = x + ((size_t)iy * W + ix) * C;                        /* [C] */
                        const REF_T *kp = w[0] + ((size_t)ky * n->kw + kx) * C * (dw ? mult : co);  /* HWIO */
                        if (dw) {
                            for (int c = 0; c < C; c++)
                                for (int m = 0; m < mult; m++) yp[c * mult + m] += xp[c] * kp[c * mult + m];
                        } else {
                            for (int ci = 0; ci < C; ci++) REF(axpy)(co, xp[ci], kp + (size_t)ci * co, yp);
                        }
                    }
                }
                for (int c = 0; c < co; c++) yp[c] = REF(act)(n->act, yp[c] + (w[1] ? w[1][c] : 0));
            }
        if (n->act == ECM_ACT_SOFTMAX) REF(softmax)(y, (size_t)Y->h * Y->w, co);
        break;
    }
    case ECM_OP_DENSE: {
        const int co = Y->c;
        for (size_t p = 0; p < (size_t)H * W; p++) {
            REF_T *yp = y + p * co;
            for (int c = 0; c < co; c++) {
                REF_T s = w[1] ? w[1][c] : 0;
                for (int ci = 0; ci < C; ci++) s += x[p * C + ci] * w[0][(size_t)ci * co + c];
                yp[c] = REF(act)(n->act, s);
            }
        }
        if (n->act == ECM_ACT_SOFTMAX) REF(softmax)(y, (size_t)H * W, co);
        break;
    }
    case ECM_OP_BATCHNORM:
        for (size_t j = 0; j < ys; j++) {
            int c = (int)(j % C);
            y[j] = (x[j] - w[2][c]) / REF_SQRT(w[3][c] + n->f0) * (w[0] ? w[0][c] : 1) + (w[1] ? w[1][c] : 0);
        }
        break;
    case ECM_OP_ACTIVATION:
        for (size_t j = 0; j < ys; j++) y[j] = REF(act)(n->act, x[j]);
        if (n->act == ECM_ACT_SOFTMAX) REF(softmax)(y, (size_t)Y->h * Y->w, Y->c);
        break;
    case ECM_OP_IDENTITY:
    case ECM_OP_RESHAPE: memcpy(y, x, ys * sizeof *y); break;
    case ECM_OP_RESCALE:
        for (size_t j = 0; j < ys; j++) y[j] = x[j] * n->f0 + n->f1;
        break;
    case ECM_OP_NORMALIZE:
        for (size_t j = 0; j < ys; j++) {
            REF_T sd = REF_SQRT(w[1][j % C]);
            y[j] = (x[j] - w[0][j % C]) / (sd > (REF_T)1e-7f ? sd : (REF_T)1e-7f);
        }
        break;
    case ECM_OP_ZEROPAD:
        for (int yy = 0; yy < H; yy++)
            memcpy(y + ((size_t)(yy + n->pt) * Y->w + n->pl) * C, x + (size_t)yy * W * C, (size_t)W * C * sizeof *y);
        break;
    case ECM_OP_GAP:
        for (size_t j = 0; j < xs; j++) y[j % C] += x[j];
        for (int c = 0; c < C; c++) y[c] /= (REF_T)H * W;
        break;
    case ECM_OP_ADD:
        memcpy(y, x, ys * sizeof *y);
        for (int k = 1; k < n->n_in; k++) {
            const REF_T *xk = v[n->in[k]] + b * ys;
            for (size_t j = 0; j < ys; j++) y[j] += xk[j];
        }
        break;
    case ECM_OP_MUL: {
        /* same shapes, or one of the two a (1, 1, C) gate broadcast over pixels */
        const cv_value *X2 = &g->values[n->in[1]];
        const size_t x2s = (size_t)X2->h * X2->w * X2->c;
        const REF_T *x2 = v[n->in[1]] + b * x2s;
        if (x2s == ys && xs == ys) {
            for (size_t j = 0; j < ys; j++) y[j] = x[j] * x2[j];
        } else if (x2s < ys) {
            for (size_t j = 0; j < ys; j++) y[j] = x[j] * x2[j % X2->c];
        } else {
            for (size_t j = 0; j < ys; j++) y[j] = x[j % C] * x2[j];
        }
        break;
    }
    default: return cv_fail(e, "reference forward: op %d at %s is not interpreted", n->op, n->name);
    }
    return 0;
}

int REF_FORWARD(cv_graph *g, int batch, const float *input, const REF_HOOKS *hooks, REF_T *output, cv_err *e)
{
    static const REF_HOOKS none = { NULL, NULL, NULL, -1 };
    if (!hooks) hooks = &none;
    const int last = hooks->last_node < 0 || hooks->last_node >= g->n_nodes ? g->n_nodes - 1 : hooks->last_node;
    int rc = -1;
    REF_T **v = calloc((size_t)g->n_values, sizeof *v);
    int *last_use = malloc((size_t)g->n_values * sizeof *last_use);
    REF_T *w[4] = { 0 };
    if (!v || !last_use) {
        cv_fail(e, "reference forward: out of memory");
        goto out;
    }
    for (int i = 0; i < g->n_values; i++) last_use[i] = -1;
    for (int i = 0; i <= last; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) last_use[g->nodes[i].in[k]] = i;
    const cv_value *iv = &g->values[g->input_value];
    size_t in_n = (size_t)batch * iv->h * iv->w * iv->c;
    if (!(v[g->input_value] = malloc(in_n * sizeof(REF_T)))) {
        cv_fail(e, "reference forward: out of memory");
        goto out;
    }
    for (size_t i = 0; i < in_n; i++) v[g->input_value][i] = input[i];

    for (int i = 0; i <= last; i++) {
        const cv_node *n = &g->nodes[i];
        const cv_value *Y = &g->values[n->out];
        if (hooks->before && hooks->before(hooks->ctx, g, i, v, batch, e) < 0) goto out;
        size_t ys = (size_t)Y->h * Y->w * Y->c;
        REF_T *y = calloc((size_t)batch * ys + 1, sizeof *y);
        if (!y) {
            cv_fail(e, "reference forward: out of memory");
            goto out;
        }
        free(v[n->out]);
        v[n->out] = y;
        for (int k = 0; k < 4; k++) {
            free(w[k]);
            w[k] = NULL;
        }
        for (int k = 0; k < n->n_w && k < 4; k++)
            if (n->w[k] >= 0 && !(w[k] = REF(tensor)(g, n->w[k], e))) goto out;
        for (int b = 0; b < batch; b++)
            if (REF(node)(g, n, v, (size_t)b, w, y + (size_t)b * ys, e) < 0) goto out;
        if (hooks->after && hooks->after(hooks->ctx, g, i, v, batch, e) < 0) goto out;
        for (int k = 0; k < n->n_in; k++)
            if (last_use[n->in[k]] == i && n->in[k] != g->output_value) {
                free(v[n->in[k]]);
                v[n->in[k]] = NULL;
            }
    }
    if (output && v[g->output_value]) {
        const cv_value *ov = &g->values[g->output_value];
        memcpy(output, v[g->output_value], (size_t)batch * ov->h * ov->w * ov->c * sizeof *output);
    }
    rc = 0;
out:
    for (int k = 0; k < 4; k++) free(w[k]);
    if (v)
        for (int i = 0; i < g->n_values; i++) free(v[i]);
    free(v);
    free(last_use);
    return rc;
}
