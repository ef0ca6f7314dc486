#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *
slh_strerror(enum slh_err code)
{
    switch (code) {
    case SLH_OK:
        return "no error";
    case SLH_ENOMEM:
        return "out of memory";
    case SLH_EINVAL:
        return "invalid value";
    case SLH_ECONFIG:
        return "configuration error";
    case SLH_EIO:
        return "input/output error";
    case SLH_EPARSE:
        return "body is not valid JSON or form data";
    case SLH_EEVENT:
        return "body is not an event";
    case SLH_EAUTH:
        return "SecretKey missing or wrong";
    case SLH_ESERVER:
        return "ServerId not allowed";
    case SLH_ESTORE:
        return "events could not be stored";
    case SLH_EDELIVER:
        return "delivery failed";
    case SLH_ENOTFOUND:
        return "not found";
    }
    return "unknown error";
}

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
