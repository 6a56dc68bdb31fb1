/* cam.c - the CAM methods (cam.h): per-channel weights or element-wise products
 * of A and G, EigenCAM's first principal component, the app's normalization.
 *
 * Every sum runs in double: the maps are sums over K (up to 1280) or hw (up to
 * 22500 at the stem) of terms of mixed sign, and the app's normalization divides
 * by the maximum, so cancellation in float would show directly in the map. */
#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cam.h"
#include "error.h"

/* ---- names -------------------------------------------------------------------- */

static const char *const cam_names[EC_CAM_N_METHODS] = {
    "gradcam", "gradcampp", "xgradcam", "hirescam", "layercam", "eigencam",
};

static int name_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == *b;
}

ec_status ec_cam_method_parse(const char *name, ec_cam_method *m)
{
    if (!name || !m) return ec_fail(EC_ERR_ARG, "cam method: no name");
    for (int i = 0; i < EC_CAM_N_METHODS; i++)
        if (name_eq(name, cam_names[i])) {
            *m = (ec_cam_method)i;
            return EC_OK;
        }
    if (name_eq(name, "gradcam++")) {       /* the paper's spelling */
        *m = EC_CAM_GRADCAMPP;
        return EC_OK;
    }
    return ec_fail(EC_ERR_ARG, "unknown cam method '%.40s' (gradcam, gradcampp, xgradcam, hirescam, layercam, eigencam)",
                   name);
}

const char *ec_cam_method_name(ec_cam_method m)
{
    return (int)m >= 0 && m < EC_CAM_N_METHODS ? cam_names[m] : "?";
}

int ec_cam_method_needs_grad(ec_cam_method m) { return m != EC_CAM_EIGENCAM; }

/* ---- normalization (docs/semantics.md section 4) ------------------------------------- */

void ec_cam_normalize(float *cam, size_t hw)
{
    float mx = 0.0f;
    for (size_t i = 0; i < hw; i++) {
        cam[i] = cam[i] > 0.0f ? cam[i] : 0.0f;   /* relu; NaN -> 0 */
        if (cam[i] > mx) mx = cam[i];
    }
    if (mx > 1e-10f) {
        for (size_t i = 0; i < hw; i++) cam[i] /= mx;
        return;
    }
    /* The app's fallback: |cam| normalized the same way. After the relu |cam| ==
     * cam, so this changes nothing; kept literal, like engine/gradcam.c. */
    float ma = 0.0f;
    for (size_t i = 0; i < hw; i++) {
        cam[i] = fabsf(cam[i]);
        if (cam[i] > ma) ma = cam[i];
    }
    if (ma > 1e-10f)
        for (size_t i = 0; i < hw; i++) cam[i] /= ma;
}

/* ---- the gradient methods ---------------------------------------------------------- */

/* cam[i] = sum_k w[k] A[i, k] */
static void cam_weighted(const float *A, size_t hw, int K, const double *w, float *cam)
{
    for (size_t i = 0; i < hw; i++) {
        const float *a = A + i * (size_t)K;   /* [K] */
        double s = 0.0;
        for (int k = 0; k < K; k++) s += w[k] * a[k];
        cam[i] = (float)s;
    }
}

/* Channel weights of gradcam, gradcampp, xgradcam into w[K]; sa[K] scratch. */
static void cam_weights(ec_cam_method m, const float *A, const float *G, size_t hw, int K, double *w, double *sa)
{
    memset(w, 0, (size_t)K * sizeof *w);
    if (m != EC_CAM_GRADCAM) {                /* sum_i A_ik, both other methods' denominators */
        memset(sa, 0, (size_t)K * sizeof *sa);
        for (size_t i = 0; i < hw; i++)
            for (int k = 0; k < K; k++) sa[k] += A[i * (size_t)K + k];
    }
    for (size_t i = 0; i < hw; i++) {
        const float *a = A + i * (size_t)K, *g = G + i * (size_t)K;   /* [K] each */
        for (int k = 0; k < K; k++) {
            const double gk = g[k];
            switch (m) {
            case EC_CAM_GRADCAM:
                w[k] += gk;
                break;
            case EC_CAM_GRADCAMPP: {
                /* Eq. 19 of Chattopadhyay et al. as pytorch-grad-cam writes it;
                 * a = 0 where G = 0 (0 / 1e-6 would be 0 anyway; kept literal) */
                if (gk == 0.0) break;
                const double g2 = gk * gk, g3 = g2 * gk;
                const double aij = g2 / (2.0 * g2 + sa[k] * g3 + 1e-6);
                if (gk > 0.0) w[k] += gk * aij;
                break;
            }
            default:                          /* xgradcam */
                w[k] += gk * a[k];
                break;
            }
        }
    }
    for (int k = 0; k < K; k++) {
        if (m == EC_CAM_GRADCAM) w[k] /= (double)hw;
        else if (m == EC_CAM_XGRADCAM) w[k] /= sa[k] + 1e-7;
    }
}

/* ---- EigenCAM: the top eigenpair of a symmetric matrix -------------------------------
 * pytorch-grad-cam takes numpy's SVD of the centred X (hw x K) and projects on
 * VT[0]. Only the first singular pair is needed, so: the Gram matrix of the
 * smaller side (X^T X, K x K, or X X^T, hw x hw) in double; Householder
 * reduction to tridiagonal T; the largest two eigenvalues of T by Sturm-count
 * bisection (robust, to full precision); the top eigenvector by inverse
 * iteration on mu I - T with mu just above lambda1 (positive definite, so the
 * tridiagonal solve needs no pivoting); back through the reflectors. A direct
 * method: O(n^3) once, no convergence that depends on the spectral gap (a
 * power iteration needs ~1 / log(s1 / s2) steps, unbounded as they meet). The
 * residual |S u - lambda u| is checked on T (the reflections are orthogonal). */

/* Number of eigenvalues of T (d[n], e[n - 1]) below x. A zero pivot is nudged
 * to -pivmin (counts as negative), the standard guard. */
static int sturm_count(const double *d, const double *e, int n, double x, double pivmin)
{
    int cnt = 0;
    double q = d[0] - x;
    if (fabs(q) < pivmin) q = -pivmin;
    cnt += q < 0.0;
    for (int i = 1; i < n; i++) {
        q = d[i] - x - e[i - 1] * e[i - 1] / q;
        if (fabs(q) < pivmin) q = -pivmin;
        cnt += q < 0.0;
    }
    return cnt;
}

/* The j-th largest eigenvalue of T (j = 1, 2, ...) by bisection in [lo, hi]. */
static double tri_eig_desc(const double *d, const double *e, int n, int j, double lo, double hi, double pivmin)
{
    for (int it = 0; it < 200; it++) {
        const double mid = 0.5 * (lo + hi);
        if (mid <= lo || mid >= hi) break;     /* adjacent doubles */
        if (sturm_count(d, e, n, mid, pivmin) <= n - j) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* S: (n, n) row-major, symmetric, destroyed (it ends holding the reflectors).
 * u: (n) the unit eigenvector of the largest eigenvalue *lam1; *lam2 the second
 * (= *lam1 for n == 1); *res the relative residual. work: 4n doubles.
 * Returns 0, or -1 when inverse iteration left a residual above 1e-8. */
static int eig_top(double *S, int n, double *u, double *lam1, double *lam2, double *res, double *work)
{
    double *d = work, *e = work + n, *w = work + 2 * (size_t)n, *y = work + 3 * (size_t)n;
    /* Householder: step k zeroes column k below the subdiagonal with
     * H = I - 2 v v^T (|v| = 1, v over rows k+1 .. n-1), S <- H S H on the
     * trailing block; v is stored in column k below the diagonal (free now). */
    for (int k = 0; k + 2 < n; k++) {
        double nrm = 0.0;
        for (int i = k + 1; i < n; i++) nrm += S[(size_t)i * n + k] * S[(size_t)i * n + k];
        nrm = sqrt(nrm);
        d[k] = S[(size_t)k * n + k];
        if (nrm == 0.0) {                      /* already tridiagonal here: H = I (v = 0) */
            e[k] = 0.0;
            continue;
        }
        const double x0 = S[(size_t)(k + 1) * n + k];
        const double alpha = x0 >= 0.0 ? -nrm : nrm;   /* the sign that avoids cancellation in x0 - alpha */
        S[(size_t)(k + 1) * n + k] = x0 - alpha;
        double vn = 0.0;
        for (int i = k + 1; i < n; i++) vn += S[(size_t)i * n + k] * S[(size_t)i * n + k];
        vn = sqrt(vn);
        for (int i = k + 1; i < n; i++) S[(size_t)i * n + k] /= vn;
        e[k] = alpha;
        /* w = S v, c = v.w, q = w - c v; S -= 2 (v q^T + q v^T) */
        double c = 0.0;
        for (int i = k + 1; i < n; i++) {
            double s = 0.0;
            for (int j = k + 1; j < n; j++) s += S[(size_t)i * n + j] * S[(size_t)j * n + k];
            w[i] = s;
            c += S[(size_t)i * n + k] * s;
        }
        for (int i = k + 1; i < n; i++) w[i] -= c * S[(size_t)i * n + k];
        for (int i = k + 1; i < n; i++) {
            const double vi = S[(size_t)i * n + k], qi = w[i];
            for (int j = k + 1; j < n; j++) S[(size_t)i * n + j] -= 2.0 * (vi * w[j] + qi * S[(size_t)j * n + k]);
        }
    }
    if (n >= 2) {
        d[n - 2] = S[(size_t)(n - 2) * n + n - 2];
        e[n - 2] = S[(size_t)(n - 1) * n + n - 2];
    }
    d[n - 1] = S[(size_t)(n - 1) * n + n - 1];

    /* Gershgorin bounds, then the top two eigenvalues */
    double lo = INFINITY, hi = -INFINITY, emax = 0.0;
    for (int i = 0; i < n; i++) {
        const double r = (i > 0 ? fabs(e[i - 1]) : 0.0) + (i + 1 < n ? fabs(e[i]) : 0.0);
        lo = fmin(lo, d[i] - r);
        hi = fmax(hi, d[i] + r);
        if (i + 1 < n) emax = fmax(emax, e[i] * e[i]);
    }
    const double tnorm = fmax(fabs(lo), fabs(hi));
    if (tnorm == 0.0) {                        /* S = 0 (a constant A): every vector is an eigenvector */
        memset(u, 0, (size_t)n * sizeof *u);
        u[0] = 1.0;
        *lam1 = *lam2 = *res = 0.0;
        return 0;
    }
    const double pivmin = DBL_MIN * fmax(1.0, emax);
    const double slack = 2.0 * DBL_EPSILON * tnorm + pivmin;
    lo -= slack;
    hi += slack;
    *lam1 = tri_eig_desc(d, e, n, 1, lo, hi, pivmin);
    *lam2 = n > 1 ? tri_eig_desc(d, e, n, 2, lo, hi, pivmin) : *lam1;

    /* inverse iteration: (mu I - T) y' = y with mu = lambda1 + delta, delta a
     * hair above the eigenvalue's uncertainty, so mu I - T is positive definite
     * and each step shrinks the other components by delta / (gap + delta) */
    const double delta = 1e-12 * tnorm + 4.0 * slack + DBL_MIN;
    const double mu = *lam1 + delta;
    for (int i = 0; i < n; i++) y[i] = 1.0 + 0.1 * (i % 7);   /* not orthogonal to anything simple */
    double *cp = w;                            /* the elimination's multipliers */
    for (int it = 0; it < 30; it++) {
        /* Thomas algorithm on diag mu - d, off-diagonal -e: pivots stay > 0 */
        double piv = mu - d[0];
        cp[0] = -(n > 1 ? e[0] : 0.0) / piv;
        y[0] /= piv;
        for (int i = 1; i < n; i++) {
            piv = (mu - d[i]) + e[i - 1] * cp[i - 1];
            cp[i] = i + 1 < n ? -e[i] / piv : 0.0;
            y[i] = (y[i] + e[i - 1] * y[i - 1]) / piv;
        }
        for (int i = n - 2; i >= 0; i--) y[i] -= cp[i] * y[i + 1];
        double nn = 0.0;
        for (int i = 0; i < n; i++) nn += y[i] * y[i];
        nn = sqrt(nn);
        if (!(nn > 0.0) || !isfinite(nn)) return -1;
        for (int i = 0; i < n; i++) y[i] /= nn;
        /* residual |T y - lambda1 y| relative to |T| */
        double r2 = 0.0;
        for (int i = 0; i < n; i++) {
            double t = d[i] * y[i] - *lam1 * y[i];
            if (i > 0) t += e[i - 1] * y[i - 1];
            if (i + 1 < n) t += e[i] * y[i + 1];
            r2 += t * t;
        }
        *res = sqrt(r2) / fmax(tnorm, DBL_MIN);
        if (*res <= 1e-13 && it >= 1) break;   /* two steps at least: the first may sit on a cluster */
    }
    if (!(*res <= 1e-8)) return -1;
    /* u = H_0 H_1 ... H_{n-3} y: the last reflection applies first */
    memcpy(u, y, (size_t)n * sizeof *u);
    for (int k = n - 3; k >= 0; k--) {
        double s = 0.0;
        for (int i = k + 1; i < n; i++) s += S[(size_t)i * n + k] * u[i];
        for (int i = k + 1; i < n; i++) u[i] -= 2.0 * s * S[(size_t)i * n + k];
    }
    return 0;
}

static double finite0(float v) { return isnan(v) ? 0.0 : (double)v; }   /* pytorch-grad-cam zeroes NaN */

/* EigenCAM's workspace: S [nn * nn], mean [K], u [nn], work [4 nn], row [K] */
static size_t cam_eigen_doubles(size_t hw, int K)
{
    const size_t nn = hw < (size_t)K ? hw : (size_t)K;
    return nn * nn + 5 * nn + 2 * (size_t)K;
}

static ec_status cam_eigen(const float *A, size_t hw, int K, float *cam, ec_cam_eigen_info *info, double *ws)
{
    const size_t nn = hw < (size_t)K ? hw : (size_t)K;
    if (nn > EC_CAM_EIGEN_MAX_N)
        return ec_fail(EC_ERR_LIMIT, "eigencam: min(h*w, channels) = %zu exceeds %d", nn, EC_CAM_EIGEN_MAX_N);
    const int n = (int)nn, by_channel = (size_t)K <= hw;   /* X^T X (K x K) or X X^T (hw x hw) */
    double *own = ws ? NULL : malloc(cam_eigen_doubles(hw, K) * sizeof *own), *base = ws ? ws : own;
    ec_status st = EC_OK;
    if (!base) return ec_fail(EC_ERR_NOMEM, "eigencam: out of memory (%zu x %zu doubles)", nn, nn);
    double *S = base, *mean = S + nn * nn, *u = mean + K, *work = u + nn, *row = work + 4 * nn;
    memset(mean, 0, (size_t)K * sizeof *mean);
    for (size_t i = 0; i < hw; i++)
        for (int k = 0; k < K; k++) mean[k] += finite0(A[i * (size_t)K + k]);
    for (int k = 0; k < K; k++) mean[k] /= (double)hw;
    memset(S, 0, nn * nn * sizeof *S);
    if (by_channel) {
        /* S = X^T X: a rank-1 update per pixel, upper triangle, then mirrored */
        for (size_t i = 0; i < hw; i++) {
            for (int k = 0; k < K; k++) row[k] = finite0(A[i * (size_t)K + k]) - mean[k];
            for (int a = 0; a < n; a++) {
                const double ra = row[a];
                double *sa = S + (size_t)a * n;
                for (int b = a; b < n; b++) sa[b] += ra * row[b];
            }
        }
    } else {
        /* S = X X^T: centred rows dotted pairwise (row i kept centred in `row`) */
        for (int i = 0; i < n; i++) {
            for (int k = 0; k < K; k++) row[k] = finite0(A[(size_t)i * K + k]) - mean[k];
            for (int j = i; j < n; j++) {
                const float *aj = A + (size_t)j * K;
                double s = 0.0;
                for (int k = 0; k < K; k++) s += row[k] * (finite0(aj[k]) - mean[k]);
                S[(size_t)i * n + j] = s;
            }
        }
    }
    for (int a = 0; a < n; a++)
        for (int b = 0; b < a; b++) S[(size_t)a * n + b] = S[(size_t)b * n + a];

    double lam1, lam2, res = 0.0;
    if (eig_top(S, n, u, &lam1, &lam2, &res, work)) {
        st = ec_fail(EC_ERR_LIMIT, "eigencam: the eigen-solver did not converge (n %d, residual %.3g)", n, res);
        goto done;
    }
    if (info) {
        info->sigma1 = sqrt(fmax(lam1, 0.0));
        info->sigma2 = sqrt(fmax(lam2, 0.0));
        info->residual = res;
        info->n = n;
    }
    /* p = X v: directly with v = u (K side), or sigma1 u (hw side: X X^T u = s^2 u
     * and X v = s u for the matching right vector) */
    if (by_channel) {
        for (size_t i = 0; i < hw; i++) {
            double s = 0.0;
            for (int k = 0; k < K; k++) s += (finite0(A[i * (size_t)K + k]) - mean[k]) * u[k];
            cam[i] = (float)s;
        }
    } else {
        const double sig = sqrt(fmax(lam1, 0.0));
        for (size_t i = 0; i < hw; i++) cam[i] = (float)(sig * u[i]);
    }
    /* The sign. Read literally, "sum(p) >= 0" cannot decide it: X's columns are centred, so
     * sum_i p_i = sum_k v_k sum_i X_ik = 0 exactly: that sum is rounding noise
     * and picks a random sign. The fixtures' maps show it: over every case of
     * every model their sign agrees with any rule computed from A about half
     * the time, and Keras's own fp16-weight run flips it in about half the
     * cases (tests/test_explain.c compares EigenCAM up to sign). A rule that
     * does not depend on noise: the uncentred projection non-negative,
     * sum_i (A v)_i = hw mean . v >= 0 (the component points the way the mean
     * activation does). mean . v has the sign of mean . X^T p = sum_i p_i
     * (X_i . mean), since X^T p = s1^2 v on either side. */
    double dir = 0.0;
    for (size_t i = 0; i < hw; i++) {
        double xm = 0.0;
        for (int k = 0; k < K; k++) xm += (finite0(A[i * (size_t)K + k]) - mean[k]) * mean[k];
        dir += (double)cam[i] * xm;
    }
    if (dir < 0.0)
        for (size_t i = 0; i < hw; i++) cam[i] = -cam[i];
done:
    free(own);
    return st;
}

/* ---- entry points --------------------------------------------------------------------- */

size_t ec_cam_work_doubles(size_t hw, int K)
{
    const size_t nn = hw < (size_t)K ? hw : (size_t)K, g = 2 * (size_t)(K > 0 ? K : 0);
    if (nn > EC_CAM_EIGEN_MAX_N) return g;   /* eigencam refuses such a layer anyway */
    const size_t e = cam_eigen_doubles(hw, K);
    return e > g ? e : g;
}

ec_status ec_cam_raw(ec_cam_method m, const float *A, const float *G, size_t hw, int K, float *cam,
                     ec_cam_eigen_info *info)
{
    return ec_cam_raw_ws(m, A, G, hw, K, cam, info, NULL);
}

ec_status ec_cam_raw_ws(ec_cam_method m, const float *A, const float *G, size_t hw, int K, float *cam,
                        ec_cam_eigen_info *info, double *ws)
{
    if ((int)m < 0 || m >= EC_CAM_N_METHODS) return ec_fail(EC_ERR_ARG, "cam: method %d out of range", (int)m);
    if (!A || !cam || (!G && ec_cam_method_needs_grad(m)))
        return ec_fail(EC_ERR_ARG, "cam %s: NULL %s", cam_names[m], !A ? "activation" : !cam ? "output" : "gradient");
    if (hw == 0 || K <= 0 || hw > SIZE_MAX / sizeof(float) / (size_t)K)
        return ec_fail(EC_ERR_ARG, "cam %s: bad size %zu x %d", cam_names[m], hw, K);
    if (m == EC_CAM_EIGENCAM) return cam_eigen(A, hw, K, cam, info, ws);
    if (m == EC_CAM_HIRESCAM || m == EC_CAM_LAYERCAM) {
        for (size_t i = 0; i < hw; i++) {
            const float *a = A + i * (size_t)K, *g = G + i * (size_t)K;   /* [K] each */
            double s = 0.0;
            if (m == EC_CAM_HIRESCAM)
                for (int k = 0; k < K; k++) s += (double)g[k] * a[k];
            else
                for (int k = 0; k < K; k++) s += (g[k] > 0.0f ? (double)g[k] : 0.0) * a[k];
            cam[i] = (float)s;
        }
        return EC_OK;
    }
    double *own = ws ? NULL : malloc(2 * (size_t)K * sizeof *own), *w = ws ? ws : own;   /* w[K], then the sums of A [K] */
    if (!w) return ec_fail(EC_ERR_NOMEM, "cam %s: out of memory", cam_names[m]);
    cam_weights(m, A, G, hw, K, w, w + K);
    cam_weighted(A, hw, K, w, cam);
    free(own);
    return EC_OK;
}

ec_status ec_cam_compute(ec_cam_method m, const float *A, const float *G, size_t hw, int K, float *cam,
                         ec_cam_eigen_info *info)
{
    return ec_cam_compute_ws(m, A, G, hw, K, cam, info, NULL);
}

ec_status ec_cam_compute_ws(ec_cam_method m, const float *A, const float *G, size_t hw, int K, float *cam,
                            ec_cam_eigen_info *info, double *ws)
{
    ec_status st = ec_cam_raw_ws(m, A, G, hw, K, cam, info, ws);
    if (st == EC_OK) ec_cam_normalize(cam, hw);
    return st;
}
