/* hdf5.h - a hand-written reader for the HDF5 files h5py/Keras write.
 *
 * Supported: superblock 0/1 (and 2/3 with v2 object headers "OHDR"), user blocks
 * (signature at 0, 512, 1024, ...), v1 object headers with continuation messages,
 * symbol-table groups (v1 B-tree type 0 + local heap + SNOD), compact link storage
 * (link messages in the header), datasets with contiguous, compact or chunked
 * (v1 B-tree type 1, deflate filter only) layouts, float16/32/64 little-endian data
 * (and little-endian integers, converted to float),
 * attributes (message v1/v2/v3) holding fixed-length strings, arrays of them,
 * and variable-length strings stored in global heap collections. Checksums of
 * version 2 structures (superblock 2/3, object header chunks) are verified.
 * Refused with a message: dense link storage (fractal heaps), soft/external
 * links, external storage, virtual datasets, other filters, big-endian data,
 * datasets whose data was never written (undefined address, missing chunks).
 * Hostile input: every address/size/count is checked against the source size,
 * header walks are bounded, recursion is depth-limited, allocations are bounded
 * by the limits. */
#ifndef EFFCAM_HDF5_H
#define EFFCAM_HDF5_H

#include "cv.h"

typedef struct cv_h5 cv_h5;
typedef uint64_t cv_h5_obj;       /* object header address */

#define CV_H5_MAX_RANK 8

typedef struct {
    int rank;
    uint64_t dims[CV_H5_MAX_RANK];
    uint64_t nelem;
    int elem_size;                /* bytes per element: 2, 4, 8 (float16/32/64), 1-8 (integers) */
    int is_int;                   /* 1: integer data (Keras counters), read_f32 converts */
} cv_h5_dataset_info;

/* src must outlive the cv_h5. */
int cv_h5_open(const cv_source *src, const cv_limits *lim, cv_h5 **out, cv_err *e);
void cv_h5_close(cv_h5 *h);

cv_h5_obj cv_h5_root(const cv_h5 *h);

/* Child of a group by name ("a/b/c" paths are walked one link at a time).
 * Returns 1 found, 0 not found, -1 error (corrupt file). */
int cv_h5_find(cv_h5 *h, cv_h5_obj group, const char *path, cv_h5_obj *out, cv_err *e);

/* Calls cb for each link of a group in name order (symbol tables) or creation
 * order (compact links). cb returns 0 to go on, non-zero to stop (returned). */
int cv_h5_list(cv_h5 *h, cv_h5_obj group,
               int (*cb)(void *ctx, const char *name, cv_h5_obj obj), void *ctx, cv_err *e);

/* 1 if obj is a group, 0 if a dataset, -1 on error. */
int cv_h5_is_group(cv_h5 *h, cv_h5_obj obj, cv_err *e);

/* A string attribute, scalar or 1-D array, fixed-length or variable-length:
 * *out is a malloc'd array of *n malloc'd NUL-terminated strings (trailing NULs
 * and spaces of fixed-length strings trimmed as h5py does for NULLTERM/NULLPAD).
 * Returns 1 found, 0 absent, -1 error. Free with cv_h5_strings_free. */
int cv_h5_attr_strings(cv_h5 *h, cv_h5_obj obj, const char *name, char ***out, int *n, cv_err *e);
void cv_h5_strings_free(char **s, int n);

/* Calls cb with the name of each attribute of obj (compact storage, header
 * order). cb returns 0 to go on, non-zero to stop (returned). For tools and the
 * fuzz target: cb may call back into the reader. */
int cv_h5_attr_names(cv_h5 *h, cv_h5_obj obj, int (*cb)(void *ctx, const char *name), void *ctx, cv_err *e);

int cv_h5_dataset_info_get(cv_h5 *h, cv_h5_obj ds, cv_h5_dataset_info *out, cv_err *e);
/* Reads the whole dataset as float32 (float16, float64 and little-endian integers
 * converted; float64 beyond float range saturates to infinity); n must equal nelem. */
int cv_h5_dataset_read_f32(cv_h5 *h, cv_h5_obj ds, float *dst, uint64_t n, cv_err *e);

/* Jenkins' lookup3 hash (initial value 0): the checksum HDF5 stores after its
 * version 2 structures. For tools and tests that write such files. */
uint32_t cv_h5_lookup3(const void *data, size_t n);

#endif
