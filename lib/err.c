#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum slh_err
slh_error_set(struct slh_error *err, enum slh_err code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || err->code != SLH_OK)
        return code;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return code;
}

void
slh_error_clear(struct slh_error *err)
{
    if (err == NULL)
        return;
    err->code = SLH_OK;
    err->text[0] = '\0';
}
