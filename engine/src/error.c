/* error.c: anm_strerror and the parse/config error detail. */
#include "engine/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *anm_strerror(int err)
{
    switch ((anm_err)err) {
    case ANM_OK: return "success";
    case ANM_ENOMEM: return "out of memory";
    case ANM_EINVAL: return "invalid argument";
    case ANM_EIO: return "input/output error";
    case ANM_EPARSE: return "malformed input";
    case ANM_ECONFIG: return "invalid configuration";
    case ANM_ENOTFOUND: return "not found";
    case ANM_ERANGE: return "value out of range";
    case ANM_EDB: return "database error";
    case ANM_ENET: return "network error";
    case ANM_ETIMEOUT: return "timed out";
    case ANM_EFULL: return "full";
    case ANM_EPROTO: return "protocol error";
    case ANM_EDUP: return "duplicate identifier";
    case ANM_ESTATE: return "invalid state";
    case ANM_ENUMERIC: return "numerical failure";
    case ANM_EAUTH: return "not authorised";
    case ANM_EAGAIN: return "temporarily unavailable";
    case ANM_EINTERNAL: return "internal error";
    }
    return "unknown error";
}

void anm_error_detail_clear(anm_error_detail *d)
{
    if (d == NULL)
        return;
    memset(d, 0, sizeof *d);
}

static void copy_truncated(char *dst, size_t size, const char *src)
{
    if (src == NULL) {
        dst[0] = '\0';
        return;
    }
    size_t n = strlen(src);
    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void anm_error_detail_set(anm_error_detail *d, const char *file, int line, int column,
                          const char *path, const char *fmt, ...)
{
    if (d == NULL)
        return;
    copy_truncated(d->file, sizeof d->file, file);
    copy_truncated(d->path, sizeof d->path, path);
    d->line = line;
    d->column = column;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(d->message, sizeof d->message, fmt, ap);
    va_end(ap);
    if (n < 0)
        d->message[0] = '\0';
}

int anm_error_detail_format(const anm_error_detail *d, char *buf, size_t size)
{
    char location[320] = "";
    int n;
    if (d->file[0] != '\0' && d->line > 0 && d->column > 0)
        n = snprintf(location, sizeof location, "%s:%d:%d: ", d->file, d->line, d->column);
    else if (d->file[0] != '\0' && d->line > 0)
        n = snprintf(location, sizeof location, "%s:%d: ", d->file, d->line);
    else if (d->file[0] != '\0')
        n = snprintf(location, sizeof location, "%s: ", d->file);
    else if (d->line > 0 && d->column > 0)
        n = snprintf(location, sizeof location, "line %d, column %d: ", d->line, d->column);
    else if (d->line > 0)
        n = snprintf(location, sizeof location, "line %d: ", d->line);
    else
        n = 0;
    if (n < 0)
        location[0] = '\0';
    if (d->path[0] != '\0')
        return snprintf(buf, size, "%s%s: %s", location, d->path, d->message);
    return snprintf(buf, size, "%s%s", location, d->message);
}
