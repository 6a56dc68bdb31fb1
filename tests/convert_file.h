/* convert_file.h - a Keras file converted to .ecm in-process, the
 * converter's message kept (tests only). */
#ifndef EFFCAM_TEST_CONVERT_FILE_H
#define EFFCAM_TEST_CONVERT_FILE_H

#include <stdio.h>

#include "convert/cv.h"

/* src (.keras or .h5) -> dst (.ecm), float16 weights when f16; 0 or the
 * converter's status with its message in err. */
static inline int t_convert_keras(const char *src, const char *dst, int f16, char *err, size_t cap)
{
    cv_options opt = { f16, NULL, cv_limits_default() };
    cv_graph g;
    cv_keras *k = NULL;
    cv_err e = { "" };
    int rc = cv_keras_open(src, &opt, &g, &k, &e);
    if (rc == 0) {
        rc = cv_ecm_write(&g, dst, &e);
        cv_graph_free(&g);
        cv_keras_close(k);
    }
    if (rc) snprintf(err, cap, "%s", e.msg);
    return rc;
}

#endif
