/* cam.h - the CAM methods (docs/semantics.md section 6): from a layer's activation A
 * and the gradient G of the class score with respect to it, the raw map, then the
 * app's normalization (section 4).
 *
 * Self-contained: no session, no graph; A and G are float32 NHWC [hw, K] (one
 * image), the map is [hw]. The raw maps follow jacobgil/pytorch-grad-cam:
 *   gradcam    w_k = mean_i G_ik                                cam_i = sum_k w_k A_ik
 *   gradcampp  a_ik = G^2 / (2 G^2 + (sum_i A_ik) G^3 + 1e-6), 0 where G = 0;
 *              w_k = sum_i relu(G_ik) a_ik                      cam_i = sum_k w_k A_ik
 *   xgradcam   w_k = sum_i G_ik A_ik / (sum_i A_ik + 1e-7)      cam_i = sum_k w_k A_ik
 *   hirescam   cam_i = sum_k G_ik A_ik
 *   layercam   cam_i = sum_k relu(G_ik) A_ik
 *   eigencam   X = A with its columns centred, v its first right singular vector,
 *              cam = X v with the sign making sum(A v) >= 0, i.e. mean(A) . v >= 0
 *              (the app's sum(X v) >= 0 is void: 0 for centred X, its sign
 *              rounding noise; see cam.c) (G unused)
 * Which layer suits which method: gradcam, gradcampp, hirescam and layercam are
 * well-conditioned anywhere. xgradcam divides by sum_i A_ik, which for a raw conv
 * output (the app's default target top_conv, before its BN) is a sum of mixed
 * signs that can be ~0 for some k: tiny weight-file changes flip the map. Use it
 * at a post-activation layer (top_activation, block outputs after swish, where
 * A >= -0.28). eigencam's v is only defined up to the gap between the first two
 * singular values; at top_conv they are often close. ec_cam_eigen_info reports
 * both so a caller can tell. */
#ifndef EFFCAM_CAM_H
#define EFFCAM_CAM_H

#include <stddef.h>

#include "../effcam.h"

typedef enum {
    EC_CAM_GRADCAM = 0,
    EC_CAM_GRADCAMPP = 1,
    EC_CAM_XGRADCAM = 2,
    EC_CAM_HIRESCAM = 3,
    EC_CAM_LAYERCAM = 4,
    EC_CAM_EIGENCAM = 5,
    EC_CAM_N_METHODS = 6
} ec_cam_method;

/* "gradcam", "gradcampp" (also "gradcam++"), "xgradcam", "hirescam", "layercam",
 * "eigencam", case-insensitive; EC_ERR_ARG naming the valid ones otherwise. */
ec_status ec_cam_method_parse(const char *name, ec_cam_method *m);
const char *ec_cam_method_name(ec_cam_method m);   /* "?" when out of range */
int ec_cam_method_needs_grad(ec_cam_method m);      /* 0 for eigencam only */

/* EigenCAM's conditioning: the first two singular values of the centred A, and
 * the eigen-solver's relative residual. sigma2 / sigma1 near 1 means the map is
 * ill-defined (any mix of the two vectors is as good). */
typedef struct {
    double sigma1, sigma2;
    double residual;
    int n;                      /* size of the Gram matrix solved: min(hw, K) */
} ec_cam_eigen_info;

/* Largest Gram matrix eigencam solves (n = min(hw, K)): one n x n double matrix
 * (8 n^2 bytes: 1 MiB at n = 361, V2-S stage 5 at 300 px; 32 MiB at the cap). */
#define EC_CAM_EIGEN_MAX_N 2048

/* cam[hw] = the raw map of method m from A[hw, K] and G[hw, K] (G may be NULL
 * for eigencam). info (may be NULL) is filled for eigencam. Errors: EC_ERR_ARG
 * (bad sizes, NULL), EC_ERR_LIMIT (eigencam with min(hw, K) over
 * EC_CAM_EIGEN_MAX_N, or its eigen-solver did not converge: no map is returned
 * rather than a wrong one), EC_ERR_NOMEM. */
ec_status ec_cam_raw(ec_cam_method m, const float *A, const float *G, size_t hw, int K, float *cam,
                     ec_cam_eigen_info *info);

/* The app's normalization, in place: relu, then divided by its max if that
 * exceeds 1e-10 (else |cam|, normalized the same way if its max does). */
void ec_cam_normalize(float *cam, size_t hw);

/* ec_cam_raw then ec_cam_normalize. */
ec_status ec_cam_compute(ec_cam_method m, const float *A, const float *G, size_t hw, int K, float *cam,
                         ec_cam_eigen_info *info);

/* The same with the caller's workspace ws of ec_cam_work_doubles(hw, K) doubles
 * (enough for every method), so a session's predicts allocate nothing; ws NULL:
 * allocated per call. */
size_t ec_cam_work_doubles(size_t hw, int K);
ec_status ec_cam_raw_ws(ec_cam_method m, const float *A, const float *G, size_t hw, int K, float *cam,
                        ec_cam_eigen_info *info, double *ws);
ec_status ec_cam_compute_ws(ec_cam_method m, const float *A, const float *G, size_t hw, int K, float *cam,
                            ec_cam_eigen_info *info, double *ws);

#endif
