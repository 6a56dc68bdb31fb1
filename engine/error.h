/* error.h - the engine's error plumbing: every failure sets one line of
 * detail for the calling thread (ec_last_error) and returns a status. */
#ifndef EFFCAM_ERROR_H
#define EFFCAM_ERROR_H

#include "../effcam.h"

/* Formats the message into the thread's last-error buffer and returns st. */
ec_status ec_fail(ec_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
