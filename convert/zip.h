/* zip.h - reads the members of a .keras archive (zip, STORED or DEFLATE).
 * Hostile input: the end-of-central-directory record is searched in the last
 * 64 KiB + 22 bytes, every offset/size is checked against the file, local
 * headers are cross-checked with the central directory, CRC-32 is verified.
 * ZIP64 archives are accepted when the 64-bit fields are present. Encrypted
 * members and methods other than 0 (stored) and 8 (deflate) are refused. */
#ifndef EFFCAM_ZIP_H
#define EFFCAM_ZIP_H

#include "cv.h"

typedef struct cv_zip cv_zip;

int cv_zip_open(const char *path, const cv_limits *lim, cv_zip **out, cv_err *e);
/* Same on an open, readable, regular file; the archive takes fd over (it is
 * closed on failure and by cv_zip_close). For callers that already opened the
 * file to sniff its magic bytes, and for the fuzz target. */
int cv_zip_open_fd(int fd, const cv_limits *lim, cv_zip **out, cv_err *e);
void cv_zip_close(cv_zip *z);

/* 1 if a member with this exact name exists, else 0. */
int cv_zip_has(const cv_zip *z, const char *name);

/* Whole member into a malloc'd, NUL-terminated buffer (for config.json);
 * fails if the uncompressed size exceeds max. CRC checked. */
int cv_zip_read(cv_zip *z, const char *name, size_t max, char **buf, size_t *len, cv_err *e);

/* A cv_source for the member's bytes: STORED members are served in place from
 * the archive (after a streaming CRC check), through a dup of the archive's
 * descriptor so the source may outlive the cv_zip; DEFLATE members are inflated into
 * an unlinked temporary file (bounded by the limits) that the source owns.
 * Close with cv_source_close. */
int cv_zip_source(cv_zip *z, const char *name, cv_source *out, cv_err *e);

#endif
