/* Context lifetime, device properties and error bookkeeping. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int kiln__ctx_fail(kiln_ctx *ctx, const kiln__err *err)
{
    pthread_mutex_lock(&ctx->err_lock);
    if (ctx->err.status == 0) {
        ctx->err = *err;
        atomic_store_explicit(&ctx->has_error, true, memory_order_relaxed);
    }
    pthread_mutex_unlock(&ctx->err_lock);
    kiln__log(KILN__LOG_DEBUG, "%s", err->msg);
    return err->status;
}

int kiln__ctx_failf(kiln_ctx *ctx, int status, const char *fmt, ...)
{
    kiln__err err = {.status = status};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.msg, sizeof err.msg, fmt, ap);
    va_end(ap);
    return kiln__ctx_fail(ctx, &err);
}

const char *kiln_ctx_errmsg(const kiln_ctx *ctx)
{
    if (ctx == NULL)
        return "kiln_ctx_errmsg: ctx is NULL";
    return ctx->err.msg;
}

kiln_status kiln_device_count(int *count)
{
    if (count == NULL) {
        kiln__err err = {0};
        kiln__err_set(&err, KILN_ERR_INVALID_ARG, "kiln_device_count: count is NULL");
        kiln__set_last_error(&err);
        return KILN_ERR_INVALID_ARG;
    }
    *count = 0;
    const kiln__driver *drv = kiln__driver_get(NULL);
    if (drv != NULL && drv->cuDeviceGetCount(count) != CUDA_SUCCESS)
        *count = 0;
    return KILN_OK;
}

static char *copy_string(const char *s)
{
    return s == NULL ? NULL : strdup(s);
}

static int open_device(kiln_ctx *ctx, kiln__err *err)
{
    const kiln__driver *drv = kiln__driver_get(err);
    if (drv == NULL)
        return err->status;
    ctx->drv = drv;
    int count = 0;
    CUresult rc = drv->cuDeviceGetCount(&count);
    if (rc != CUDA_SUCCESS)
        return kiln__driver_error(err, "cuDeviceGetCount", rc);
    if (ctx->opts.device >= count)
        return kiln__err_set(err, KILN_ERR_NO_DEVICE, "kiln_ctx_create: device %d requested, %d present",
                             ctx->opts.device, count);
    if ((rc = drv->cuDeviceGet(&ctx->device, ctx->opts.device)) != CUDA_SUCCESS)
        return kiln__driver_error(err, "cuDeviceGet", rc);
    if ((rc = drv->cuDevicePrimaryCtxRetain(&ctx->cu_ctx, ctx->device)) != CUDA_SUCCESS)
        return kiln__driver_error(err, "cuDevicePrimaryCtxRetain", rc);
    ctx->has_device = true;
    int major = 0, minor = 0;
    drv->cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, ctx->device);
    drv->cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, ctx->device);
    drv->cuDeviceGetAttribute(&ctx->num_sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, ctx->device);
    drv->cuDeviceGetAttribute(&ctx->max_smem_optin,
                              CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, ctx->device);
    drv->cuDeviceGetName(ctx->device_name, sizeof ctx->device_name, ctx->device);
    drv->cuDriverGetVersion(&ctx->driver_version);
    /* Hopper's arch-specific instructions (wgmma, setmaxnreg) need the "a" target. */
    char arch[16];
    snprintf(arch, sizeof arch, "sm_%d%d%s", major, minor, major == 9 ? "a" : "");
    free(ctx->arch);
    ctx->arch = strdup(arch);
    return ctx->arch ? KILN_OK : kiln__err_set(err, KILN_ERR_OUT_OF_MEMORY, "out of memory");
}

/* A writable root that cannot be opened must not stop a server: warn, and go on with the
 * read-only roots (compiled kernels then live in this process only). */
static int open_cache(kiln_ctx *ctx, kiln__err *err)
{
    kiln__err first = {0};
    int64_t max_bytes = ctx->opts.cache_max_mb << 20;
    if (kc_open(&ctx->cache, ctx->cache_path, max_bytes, &first) == KILN_OK)
        return KILN_OK;
    if (first.status != KILN_ERR_CACHE)
        return kiln__err_set(err, first.status, "%s", first.msg);
    const char *rest = strchr(ctx->cache_path, ':');
    kiln__log(KILN__LOG_WARN, "%s; going on without a writable kernel cache", first.msg);
    return kc_open(&ctx->cache, rest ? rest : ":", max_bytes, err);
}

kiln_status kiln_ctx_create(kiln_ctx **out, const kiln_options *opts)
{
    kiln__err err = {0};
    kiln_ctx *ctx = NULL;
    kiln_options defaults;
    if (out == NULL) {
        kiln__err_set(&err, KILN_ERR_INVALID_ARG, "kiln_ctx_create: out is NULL");
        goto fail;
    }
    *out = NULL;
    if (opts == NULL) {
        if (kiln_options_init(&defaults) != KILN_OK)
            return KILN_ERR_ENV; /* kiln_last_errmsg already names the variable */
        opts = &defaults;
    }
    if (opts->device < KILN_DEVICE_NONE || opts->num_sms < 0 || opts->cache_max_mb < 0 ||
        opts->log_level < 0 || opts->log_level > 4 || opts->arch == NULL) {
        kiln__err_set(&err, KILN_ERR_INVALID_ARG,
                      "kiln_ctx_create: options out of range (device %d, num_sms %d, "
                      "cache_max_mb %lld, log_level %d, arch %s)",
                      opts->device, opts->num_sms, (long long)opts->cache_max_mb,
                      opts->log_level, opts->arch ? opts->arch : "NULL");
        goto fail;
    }
    if (strcmp(opts->arch, "sm_90a") != 0) {
        kiln__err_set(&err, KILN_ERR_UNSUPPORTED,
                      "kiln_ctx_create: arch \"%s\" is not supported (kiln targets sm_90a)",
                      opts->arch);
        goto fail;
    }
    ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL) {
        kiln__err_set(&err, KILN_ERR_OUT_OF_MEMORY, "kiln_ctx_create: out of memory");
        goto fail;
    }
    pthread_mutex_init(&ctx->load_lock, NULL);
    pthread_mutex_init(&ctx->err_lock, NULL);
    ctx->opts = *opts;
    ctx->cache_path = copy_string(opts->cache_path ? opts->cache_path : "");
    ctx->arch = copy_string(opts->arch);
    ctx->dump_dir = copy_string(opts->dump_dir && opts->dump_dir[0] ? opts->dump_dir : NULL);
    if (ctx->cache_path == NULL || ctx->arch == NULL) {
        kiln__err_set(&err, KILN_ERR_OUT_OF_MEMORY, "kiln_ctx_create: out of memory");
        goto fail;
    }
    kiln__log_level = opts->log_level;
    ctx->num_sms = 132; /* an H200's, for compile-only heuristics */
    if (opts->device != KILN_DEVICE_NONE && open_device(ctx, &err) != KILN_OK)
        goto fail;
    if (ctx->has_device && strcmp(ctx->arch, "sm_90a") != 0) {
        kiln__err_set(&err, KILN_ERR_UNSUPPORTED,
                      "kiln_ctx_create: device %d (%s) is %s; kiln supports sm_90a (Hopper)",
                      opts->device, ctx->device_name, ctx->arch);
        goto fail;
    }
    if (opts->num_sms > 0)
        ctx->num_sms = opts->num_sms < ctx->num_sms || !ctx->has_device ? opts->num_sms
                                                                        : ctx->num_sms;
    if (open_cache(ctx, &err) != KILN_OK)
        goto fail;
    ctx->opts.cache_path = ctx->cache_path;
    ctx->opts.arch = ctx->arch;
    ctx->opts.dump_dir = ctx->dump_dir;
    *out = ctx;
    return KILN_OK;
fail:
    kiln__set_last_error(&err);
    kiln_ctx_destroy(ctx);
    return (kiln_status)err.status;
}

void kiln_ctx_destroy(kiln_ctx *ctx)
{
    if (ctx == NULL)
        return;
    for (int b = 0; b < KILN__TABLE_BUCKETS; b++) {
        kiln__kernel *k = atomic_load(&ctx->buckets[b]);
        while (k != NULL) {
            kiln__kernel *next = atomic_load(&k->next);
            if (k->module != NULL)
                ctx->drv->cuModuleUnload(k->module);
            free(k);
            k = next;
        }
    }
    if (ctx->has_device)
        ctx->drv->cuDevicePrimaryCtxRelease(ctx->device);
    kc_close(ctx->cache);
    pthread_mutex_destroy(&ctx->load_lock);
    pthread_mutex_destroy(&ctx->err_lock);
    free(ctx->cache_path);
    free(ctx->arch);
    free(ctx->dump_dir);
    free(ctx);
}

kiln_status kiln_ctx_get_info(kiln_ctx *ctx, kiln_ctx_info *out)
{
    if (ctx == NULL || out == NULL) {
        kiln__err err = {0};
        kiln__err_set(&err, KILN_ERR_INVALID_ARG, "kiln_ctx_get_info: %s is NULL",
                      ctx == NULL ? "ctx" : "out");
        if (ctx != NULL)
            return (kiln_status)kiln__ctx_fail(ctx, &err);
        kiln__set_last_error(&err);
        return KILN_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof *out);
    out->has_device = ctx->has_device;
    out->device = ctx->has_device ? ctx->opts.device : KILN_DEVICE_NONE;
    snprintf(out->device_name, sizeof out->device_name, "%s",
             ctx->has_device ? ctx->device_name : "no GPU");
    snprintf(out->arch, sizeof out->arch, "%s", ctx->arch);
    out->num_sms = ctx->num_sms;
    out->max_smem_per_block = ctx->has_device ? ctx->max_smem_optin : 232448;
    const kiln__driver *drv = kiln__driver_get(NULL);
    if (drv != NULL)
        drv->cuDriverGetVersion(&out->driver_version);
    kj_nvrtc_version_numbers(&out->nvrtc_major, &out->nvrtc_minor);
    return kiln__ctx_ok(ctx);
}
