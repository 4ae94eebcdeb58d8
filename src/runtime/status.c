/* Status names, versions and the thread-local message for failures without a context. */
#include <string.h>

#include "internal.h"

const char *kiln_status_str(kiln_status status)
{
    switch (status) {
    case KILN_OK: return "KILN_OK";
    case KILN_ERR_INVALID_ARG: return "KILN_ERR_INVALID_ARG";
    case KILN_ERR_UNSUPPORTED: return "KILN_ERR_UNSUPPORTED";
    case KILN_ERR_NO_DEVICE: return "KILN_ERR_NO_DEVICE";
    case KILN_ERR_DRIVER: return "KILN_ERR_DRIVER";
    case KILN_ERR_COMPILE: return "KILN_ERR_COMPILE";
    case KILN_ERR_MISS: return "KILN_ERR_MISS";
    case KILN_ERR_CACHE: return "KILN_ERR_CACHE";
    case KILN_ERR_OUT_OF_MEMORY: return "KILN_ERR_OUT_OF_MEMORY";
    case KILN_ERR_ENV: return "KILN_ERR_ENV";
    case KILN_ERR_IO: return "KILN_ERR_IO";
    case KILN_ERR_INTERNAL: return "KILN_ERR_INTERNAL";
    }
    return "KILN_ERR_UNKNOWN_STATUS";
}

unsigned kiln_version_number(void)
{
    return KILN_VERSION_NUMBER;
}

#define KILN__STR2(x) #x
#define KILN__STR(x) KILN__STR2(x)
const char *kiln_version_string(void)
{
    return KILN__STR(KILN_VERSION_MAJOR) "." KILN__STR(KILN_VERSION_MINOR) "." KILN__STR(
        KILN_VERSION_PATCH);
}

static _Thread_local char last_error[4096];

void kiln__set_last_error(const kiln__err *err)
{
    size_t len = strlen(err->msg);
    if (len >= sizeof last_error)
        len = sizeof last_error - 1;
    memcpy(last_error, err->msg, len);
    last_error[len] = '\0';
}

const char *kiln_last_errmsg(void)
{
    return last_error;
}
