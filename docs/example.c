/* example.c - the effcam C API in one page: load a converted model, classify one
 * image with Grad-CAM, print the top class and every class probability, and write
 * the app's heatmap overlay as a PNG.
 *
 *   cc example.c $(pkg-config --cflags --libs effcam) -o example
 *   ./example model.ecm photo.jpg photo.cam.png
 *
 * Output: "top<TAB>INDEX<TAB>LABEL", then one "INDEX<TAB>PROBABILITY<TAB>LABEL" line
 * per class in model order (%.9g prints a float exactly, as `effcam predict --json`).
 */
#include <stdio.h>

#include <effcam.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.ecm IMAGE OVERLAY.png\n", argv[0]);
        return 2;
    }
    ec_model *m = NULL;
    if (ec_model_load(argv[1], &m) != EC_OK) {
        fprintf(stderr, "%s\n", ec_last_error());
        return 2;
    }
    /* The model is read-only and shareable; a session holds one thread's working memory. */
    ec_session_options opt = ec_session_options_default();
    opt.gradcam = 1;
    ec_session *s = NULL;
    ec_result r;
    int rc = 1;
    if (ec_session_new(m, &opt, &s) != EC_OK || ec_session_predict_file(s, argv[2], &r) != EC_OK ||
        ec_session_write_overlay(s, argv[3]) != EC_OK) {
        fprintf(stderr, "%s\n", ec_last_error());   /* one line saying what and where */
    } else {
        printf("top\t%d\t%s\n", r.top_class, ec_model_label(m, r.top_class));
        for (int i = 0; i < r.num_classes; i++)
            printf("%d\t%.9g\t%s\n", i, r.probabilities[i], ec_model_label(m, i));
        rc = 0;
    }
    ec_session_free(s);
    ec_model_free(m);
    return rc;
}
