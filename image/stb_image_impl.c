/* stb_image_impl.c - the one translation unit that compiles stb_image
 * (third-party, from the system's libstb-dev), configured for hostile input:
 *   - formats the app never sees as photos are compiled out;
 *   - dimensions above 2^24 are refused by stb itself;
 *   - every allocation stb makes goes through a per-thread cap that the
 *     caller (image/decode.c) sets from the header-declared size before
 *     decoding, so a small file cannot make stb allocate gigabytes (a PNG
 *     whose zlib stream inflates far beyond its IHDR, say);
 *   - failure reasons are stb's longer "user" messages, and live in a
 *     thread-local (STBI_THREAD_LOCAL, checked below). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Largest single allocation stb may make on this thread; SIZE_MAX = no cap. */
_Thread_local size_t ec_stbi_alloc_cap = SIZE_MAX;
/* Set when the cap refused an allocation (so "outofmem" means a limit). */
_Thread_local int ec_stbi_cap_hit;

static void *ec_stbi_malloc(size_t n)
{
    if (n > ec_stbi_alloc_cap) { ec_stbi_cap_hit = 1; return NULL; }
    /* Zeroed: stb_image 2.27 reads a JPEG Huffman table that the file never
     * defined (DHT missing) straight from its malloc'd decoder state, so a
     * corrupt JPEG decoded garbage from earlier allocations and could trip
     * stb's STBI_ASSERT (an abort) in stbi__jpeg_huff_decode, found by
     * fuzz_image. With zeroed state the undefined table decodes nothing and
     * stb reports a corrupt JPEG. */
    return calloc(1, n ? n : 1);
}

static void *ec_stbi_realloc(void *p, size_t n)
{
    if (n > ec_stbi_alloc_cap) { ec_stbi_cap_hit = 1; return NULL; }
    return realloc(p, n);
}

#define STBI_MALLOC(n) ec_stbi_malloc(n)
#define STBI_REALLOC(p, n) ec_stbi_realloc(p, n)
#define STBI_FREE(p) free(p)

#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_NO_PSD
#define STBI_NO_PIC
#define STBI_NO_PNM          /* image/decode.c parses PNM itself, with PIL's maxval scaling */
#define STBI_NO_JPEG         /* image/jpeg.c: libjpeg-turbo, PIL's own decoder */
/* PNG stays compiled: the library decodes PNG with image/pngdec.c, and the
 * tests check that against stb_image's independent decoder */
#define STBI_FAILURE_USERMSG
#define STBI_MAX_DIMENSIONS (1 << 24)
#include <stb/stb_image.h>

/* stbi_failure_reason() must not be a process-wide global: sessions decode
 * on several threads at once. */
#ifndef STBI_THREAD_LOCAL
#error "stb_image's failure reason would be a global: need a C11 compiler with thread-locals"
#endif
