#include "driver.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "kiln/kiln.h"

static kiln__driver driver;
static int driver_status = -1; /* -1 unknown, 0 ok, else a kiln_status */
static char driver_failure[512];
static pthread_once_t driver_once = PTHREAD_ONCE_INIT;

typedef CUresult(CUDAAPI *get_proc_fn)(const char *, void **, int, cuuint64_t,
                                       CUdriverProcAddressQueryResult *);

static void load_driver(void)
{
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        snprintf(driver_failure, sizeof driver_failure, "no CUDA driver: dlopen(libcuda.so.1): %s",
                 dlerror());
        driver_status = KILN_ERR_NO_DEVICE;
        return;
    }
    /* cuGetProcAddress picks the variant (_v2, _ptsz...) that matches the API version we
     * were written against, as the runtime does; plain dlsym would find legacy ABIs. */
    void *symbol = dlsym(lib, "cuGetProcAddress_v2");
    get_proc_fn get_proc = NULL;
    memcpy(&get_proc, &symbol, sizeof symbol); /* POSIX: dlsym results may be functions */
    if (get_proc == NULL) {
        snprintf(driver_failure, sizeof driver_failure,
                 "CUDA driver too old: libcuda.so.1 has no cuGetProcAddress_v2 (need >= 12.0)");
        driver_status = KILN_ERR_NO_DEVICE;
        return;
    }
#define KILN__LOAD(name, args)                                                                 \
    {                                                                                          \
        CUdriverProcAddressQueryResult found;                                                  \
        void *fn = NULL;                                                                       \
        if (get_proc(#name, &fn, 12080, CU_GET_PROC_ADDRESS_DEFAULT, &found) != CUDA_SUCCESS ||  \
            fn == NULL) {                                                                      \
            snprintf(driver_failure, sizeof driver_failure,                                    \
                     "CUDA driver lacks %s (need a 12.8+ driver)", #name);                     \
            driver_status = KILN_ERR_NO_DEVICE;                                                \
            return;                                                                            \
        }                                                                                      \
        memcpy(&driver.name, &fn, sizeof fn);                                                  \
    }
    KILN__DRIVER_FUNCTIONS(KILN__LOAD)
#undef KILN__LOAD
    CUresult rc = driver.cuInit(0);
    if (rc != CUDA_SUCCESS) {
        const char *name = "?";
        driver.cuGetErrorName(rc, &name);
        snprintf(driver_failure, sizeof driver_failure, "cuInit: %s", name);
        driver_status = KILN_ERR_NO_DEVICE;
        return;
    }
    driver_status = KILN_OK;
}

const kiln__driver *kiln__driver_get(kiln__err *err)
{
    pthread_once(&driver_once, load_driver);
    if (driver_status != KILN_OK) {
        kiln__err_set(err, driver_status, "%s", driver_failure);
        return NULL;
    }
    return &driver;
}

int kiln__driver_error(kiln__err *err, const char *call, CUresult rc)
{
    const char *name = "CUDA_ERROR_UNKNOWN", *text = "";
    if (driver_status == KILN_OK) {
        driver.cuGetErrorName(rc, &name);
        driver.cuGetErrorString(rc, &text);
    }
    return kiln__err_set(err, KILN_ERR_DRIVER, "%s: %s (%s)", call, name ? name : "?",
                         text ? text : "");
}
