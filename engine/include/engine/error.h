/*
 * error.h: the one error type of anm, and the detail struct that parsers and
 * config loaders fill.
 *
 * Every fallible function returns int: ANM_OK (0) on success or a negative
 * anm_err. Third-party conventions (GSL status codes, libpq results, libcurl
 * codes, errno) are converted at the module edge, never passed through.
 */
#ifndef ANM_ENGINE_ERROR_H
#define ANM_ENGINE_ERROR_H

#include <stddef.h>

typedef enum anm_err {
    ANM_OK = 0,
    ANM_ENOMEM = -1,    /* out of memory */
    ANM_EINVAL = -2,    /* invalid argument or usage */
    ANM_EIO = -3,       /* file or socket I/O failed */
    ANM_EPARSE = -4,    /* malformed input (syntax) */
    ANM_ECONFIG = -5,   /* well-formed input that violates the schema */
    ANM_ENOTFOUND = -6, /* a named thing does not exist */
    ANM_ERANGE = -7,    /* a value is out of its bounds */
    ANM_EDB = -8,       /* database error */
    ANM_ENET = -9,      /* network or bus error */
    ANM_ETIMEOUT = -10, /* a deadline passed */
    ANM_EFULL = -11,    /* a bounded queue or journal is full */
    ANM_EPROTO = -12,   /* a peer broke the protocol */
    ANM_EDUP = -13,     /* duplicate identifier */
    ANM_ESTATE = -14,   /* operation not valid in the current state */
    ANM_ENUMERIC = -15, /* numerical failure (singular matrix, no convergence) */
    ANM_EAUTH = -16,    /* authentication or authorisation failed */
    ANM_EAGAIN = -17,   /* try again later (transient) */
    ANM_EINTERNAL = -18 /* a broken invariant: a bug */
} anm_err;

/* A static, lower-case description of err ("invalid argument"); never NULL. */
const char *anm_strerror(int err);

/*
 * Where and why a parser or loader failed. Fields that the failing layer
 * does not know are left empty (string "") or 0 (line, column).
 *   file    the file being read ("" for in-memory input)
 *   line    1-based line, column 1-based column (0: unknown)
 *   path    the key path of the offending entry, e.g.
 *           "zones[1].ders[3].capacity_mw" ("" for syntax errors)
 *   message what is wrong, in the project's log style (lower-case, no period)
 */
typedef struct anm_error_detail {
    char file[256];
    int line;
    int column;
    char path[256];
    char message[512];
} anm_error_detail;

/* Clears d (all strings empty, line and column 0). d may be NULL. */
void anm_error_detail_clear(anm_error_detail *d);

/*
 * Fills d with a location and a printf-style message. file and path may be
 * NULL. d may be NULL (then nothing happens), so callers can pass through an
 * optional detail pointer without checking it.
 */
void anm_error_detail_set(anm_error_detail *d, const char *file, int line, int column,
                          const char *path, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/*
 * Formats d as one line: "file:line:column: path: message", leaving out the
 * parts that are unknown. Returns the length snprintf would have written.
 */
int anm_error_detail_format(const anm_error_detail *d, char *buf, size_t size);

#endif
