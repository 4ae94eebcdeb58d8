/* The in-process kernel table and the path from a specialization to a launched kernel:
 * table hit (hot path) -> cache -> NVRTC -> module load, then cuLaunchKernelEx. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "internal.h"

static uint64_t spec_hash(const kj_spec *spec)
{
    return XXH3_64bits(spec, sizeof *spec);
}

static const kiln__kernel *table_find(kiln_ctx *ctx, const kj_spec *spec, uint64_t hash)
{
    kiln__kernel *k =
        atomic_load_explicit(&ctx->buckets[hash % KILN__TABLE_BUCKETS], memory_order_acquire);
    for (; k != NULL; k = atomic_load_explicit(&k->next, memory_order_acquire))
        if (k->hash == hash && memcmp(&k->spec, spec, sizeof *spec) == 0)
            return k;
    return NULL;
}

static void describe_spec(const kj_spec *spec, char *out, size_t size)
{
    const kj_template *t = &kj_templates[spec->template_id];
    int used = snprintf(out, size, "%s", t->name);
    for (uint32_t i = 0; i < spec->num_params && used > 0 && (size_t)used < size; i++)
        used += snprintf(out + used, size - (size_t)used, " %s=%lld", t->params[i],
                         (long long)spec->values[i]);
}

/* Get spec's cubin from the cache or compile it (storing it). On success *cubin is a
 * malloc'd copy. */
static int obtain_cubin(kiln_ctx *ctx, const kj_spec *spec, uint8_t key[16], void **cubin,
                        size_t *size, bool *was_cached, kiln__err *err)
{
    kiln__str key_text = {0};
    kj_output built = {0};
    int status = kj_key(spec, ctx->arch, key, &key_text, err);
    if (status != KILN_OK)
        goto done;
    kc_outcome outcome;
    int timeout = ctx->opts.jit ? ctx->opts.claim_timeout_ms : -1;
    status = kc_acquire(ctx->cache, key, key_text.data, timeout, &outcome, cubin, size, err);
    if (status != KILN_OK)
        goto done;
    *was_cached = outcome == KC_HIT;
    if (outcome == KC_HIT)
        goto done;
    if (!ctx->opts.jit) {
        char what[512], hex[33];
        describe_spec(spec, what, sizeof what);
        kiln__hex16(key, hex);
        status = kiln__err_set(err, KILN_ERR_MISS,
                               "kernel cache miss with KILN_JIT=0: %s (key %s, arch %s)", what,
                               hex, ctx->arch);
        goto done;
    }
    status = kj_compile(spec, ctx->arch, ctx->dump_dir, &built, err);
    if (status != KILN_OK) {
        kc_abandon(ctx->cache, key);
        goto done;
    }
    kiln__str source = {0};
    kj_source(spec, &source, NULL);
    const char *const *opts = kj_options(ctx->arch, NULL);
    kiln__str joined = {0};
    for (int i = 0; opts[i] != NULL; i++)
        kiln__str_printf(&joined, "%s%s", i ? " " : "", opts[i]);
    kc_record rec = {
        .key_text = key_text.data,
        .template_name = kj_templates[spec->template_id].name,
        .arch = ctx->arch,
        .nvrtc_version = kj_nvrtc_version(),
        .options = joined.data ? joined.data : "",
        .source = source.data ? source.data : "",
        .cubin = built.cubin,
        .cubin_size = built.cubin_size,
        .registers = built.registers,
        .spills = built.spills,
        .smem_bytes = built.smem_bytes,
        .compile_ms = built.compile_ms,
    };
    memcpy(rec.key, key, 16);
    kiln__err put_err = {0};
    if (kc_put(ctx->cache, &rec, &put_err) != KILN_OK) /* still usable: warn only */
        kiln__log(KILN__LOG_WARN, "kernel cache: %s", put_err.msg);
    kiln__str_free(&source);
    kiln__str_free(&joined);
    *cubin = built.cubin;
    *size = built.cubin_size;
    built.cubin = NULL;
done:
    kj_output_free(&built);
    kiln__str_free(&key_text);
    return status;
}

int kiln__cubin_ensure(kiln_ctx *ctx, const kj_spec *spec, bool *was_cached, kiln__err *err)
{
    uint8_t key[16];
    void *cubin = NULL;
    size_t size = 0;
    int status = obtain_cubin(ctx, spec, key, &cubin, &size, was_cached, err);
    free(cubin);
    return status;
}

static int load_module(kiln_ctx *ctx, kiln__kernel *k, const void *cubin, kiln__err *err)
{
    const kiln__driver *drv = ctx->drv;
    const kj_template *t = &kj_templates[k->spec.template_id];
    CUresult rc = drv->cuCtxSetCurrent(ctx->cu_ctx);
    if (rc == CUDA_SUCCESS)
        rc = drv->cuModuleLoadData(&k->module, cubin);
    if (rc != CUDA_SUCCESS)
        return kiln__driver_error(err, "cuModuleLoadData", rc);
    rc = drv->cuModuleGetFunction(&k->fn, k->module, t->entry);
    if (rc != CUDA_SUCCESS)
        return kiln__driver_error(err, "cuModuleGetFunction", rc);
    int static_smem = 0;
    drv->cuFuncGetAttribute(&static_smem, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, k->fn);
    drv->cuFuncGetAttribute(&k->registers, CU_FUNC_ATTRIBUTE_NUM_REGS, k->fn);
    k->static_smem = static_smem;
    /* Allow every launch up to the device's opt-in limit; the launch passes the size. */
    rc = drv->cuFuncSetAttribute(k->fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                 ctx->max_smem_optin - static_smem);
    if (rc != CUDA_SUCCESS)
        return kiln__driver_error(err, "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)", rc);
    return KILN_OK;
}

/* Cache or compile, then load; a cubin the driver refuses is quarantined and rebuilt once. */
static int build_kernel(kiln_ctx *ctx, kiln__kernel *k, kiln__err *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        uint8_t key[16];
        void *cubin = NULL;
        size_t size = 0;
        bool was_cached = false;
        int status = obtain_cubin(ctx, &k->spec, key, &cubin, &size, &was_cached, err);
        if (status != KILN_OK)
            return status;
        kiln__err load_err = {0};
        status = load_module(ctx, k, cubin, &load_err);
        free(cubin);
        if (status == KILN_OK)
            return KILN_OK;
        if (k->module != NULL)
            ctx->drv->cuModuleUnload(k->module);
        k->module = NULL;
        if (!was_cached || attempt == 1)
            return kiln__err_set(err, load_err.status, "%s", load_err.msg);
        kiln__log(KILN__LOG_WARN, "kernel cache: quarantining an entry the driver refused: %s",
                  load_err.msg);
        kc_quarantine(ctx->cache, key, load_err.msg);
    }
    return KILN_ERR_INTERNAL;
}

int kiln__kernel_get(kiln_ctx *ctx, const kj_spec *spec, const kiln__kernel **out)
{
    uint64_t hash = spec_hash(spec);
    const kiln__kernel *hit = table_find(ctx, spec, hash);
    if (hit != NULL) {
        *out = hit;
        return KILN_OK;
    }
    kiln__err err = {0};
    int status = KILN_OK;
    pthread_mutex_lock(&ctx->load_lock);
    hit = table_find(ctx, spec, hash); /* another thread may have loaded it meanwhile */
    if (hit == NULL) {
        kiln__kernel *k = calloc(1, sizeof *k);
        if (k == NULL) {
            status = kiln__err_set(&err, KILN_ERR_OUT_OF_MEMORY, "kernel table: out of memory");
        } else {
            k->spec = *spec;
            k->hash = hash;
            k->pdl = kj_templates[spec->template_id].waits_on_grid;
            status = build_kernel(ctx, k, &err);
            if (status == KILN_OK) {
                kiln__kernel *_Atomic *bucket = &ctx->buckets[hash % KILN__TABLE_BUCKETS];
                atomic_store_explicit(&k->next, atomic_load(bucket), memory_order_relaxed);
                atomic_store_explicit(bucket, k, memory_order_release);
                hit = k;
            } else {
                free(k);
            }
        }
    }
    pthread_mutex_unlock(&ctx->load_lock);
    if (status != KILN_OK)
        return kiln__ctx_fail(ctx, &err);
    *out = hit;
    return KILN_OK;
}

int kiln__launch(kiln_ctx *ctx, const kiln__kernel *kernel, const kiln__launch_cfg *cfg,
                 void **params, kiln_stream stream)
{
    CUlaunchAttribute attrs[2];
    unsigned num_attrs = 0;
    if (kernel->pdl && ctx->opts.pdl) {
        attrs[num_attrs].id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
        attrs[num_attrs].value.programmaticStreamSerializationAllowed = 1;
        num_attrs++;
    }
    if (cfg->cluster_x > 1) {
        attrs[num_attrs].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
        attrs[num_attrs].value.clusterDim.x = cfg->cluster_x;
        attrs[num_attrs].value.clusterDim.y = 1;
        attrs[num_attrs].value.clusterDim.z = 1;
        num_attrs++;
    }
    CUlaunchConfig lc = {
        .gridDimX = cfg->grid[0], .gridDimY = cfg->grid[1], .gridDimZ = cfg->grid[2],
        .blockDimX = cfg->block[0], .blockDimY = cfg->block[1], .blockDimZ = cfg->block[2],
        .sharedMemBytes = cfg->smem_bytes, .hStream = (CUstream)stream,
        .attrs = attrs, .numAttrs = num_attrs,
    };
    /* The module lives in the device's primary context; a thread that has never touched
     * CUDA has no current context. Reading it is a thread-local load. */
    CUcontext current = NULL;
    ctx->drv->cuCtxGetCurrent(&current);
    if (current != ctx->cu_ctx)
        ctx->drv->cuCtxSetCurrent(ctx->cu_ctx);
    CUresult rc = ctx->drv->cuLaunchKernelEx(&lc, kernel->fn, params, NULL);
    if (rc != CUDA_SUCCESS) {
        kiln__err err = {0};
        char call[256];
        snprintf(call, sizeof call, "cuLaunchKernelEx(%s)",
                 kj_templates[kernel->spec.template_id].entry);
        kiln__driver_error(&err, call, rc);
        return kiln__ctx_fail(ctx, &err);
    }
    return KILN_OK;
}

/* Clusters of this kernel that fit on the device at once: asked once per kernel. */
static int max_active_clusters(kiln_ctx *ctx, const kiln__kernel *kernel,
                               const kiln__launch_cfg *launch)
{
    kiln__kernel *k = (kiln__kernel *)kernel; /* the cached figure is the only thing written */
    int clusters = atomic_load_explicit(&k->max_active_clusters, memory_order_relaxed);
    if (clusters > 0)
        return clusters;
    CUlaunchAttribute attr = {.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION};
    attr.value.clusterDim.x = launch->cluster_x;
    attr.value.clusterDim.y = attr.value.clusterDim.z = 1;
    CUlaunchConfig query = {
        .gridDimX = launch->cluster_x, .gridDimY = 1, .gridDimZ = 1,
        .blockDimX = launch->block[0], .blockDimY = 1, .blockDimZ = 1,
        .sharedMemBytes = launch->smem_bytes, .attrs = &attr, .numAttrs = 1,
    };
    CUresult rc = ctx->drv->cuOccupancyMaxActiveClusters(&clusters, kernel->fn, &query);
    if (rc != CUDA_SUCCESS || clusters <= 0) {
        kiln__err err = {0};
        char call[96];
        snprintf(call, sizeof call, "cuOccupancyMaxActiveClusters(%s)",
                 kj_templates[kernel->spec.template_id].entry);
        kiln__driver_error(&err, call, rc != CUDA_SUCCESS ? rc : CUDA_ERROR_INVALID_CLUSTER_SIZE);
        return -kiln__ctx_fail(ctx, &err);
    }
    atomic_store_explicit(&k->max_active_clusters, clusters, memory_order_relaxed);
    return clusters;
}

int64_t kiln__persistent_ctas(int64_t units, int64_t slots, bool even_rounds)
{
    if (units <= slots)
        return units;
    if (!even_rounds)
        return slots;
    /* The same rounds on as few CTAs (clusters) as hold them: a 4096 x 4096 problem's 512
     * tiles on 128 SMs, not 132 (four rounds either way). At the power cap the SMs then run
     * faster: stop 35 (profiler, two rounds, us): 4096x4096x7168 178.1 / 178.5 -> 176.9 /
     * 176.7, 4096x7168x16384 682.9 / 683.4 -> 675.6 / 676.0, 4096x7168x2048 96.2 / 96.3 ->
     * 95.3 / 95.2, 4096x2112x7168 (374 tiles on 125) 99.3 / 99.8 -> 98.0 / 97.9, the clock
     * 10-13 MHz higher. */
    int64_t rounds = (units + slots - 1) / slots;
    return (units + rounds - 1) / rounds;
}

int kiln__launch_persistent(kiln_ctx *ctx, const kj_spec *spec, unsigned threads,
                            unsigned smem_bytes, unsigned cluster_x, int64_t units,
                            bool even_rounds, void **params, kiln_stream stream)
{
    const kiln__kernel *kernel;
    int status = kiln__kernel_get(ctx, spec, &kernel);
    if (status != KILN_OK)
        return status;
    kiln__launch_cfg launch = {
        .grid = {1, 1, 1},
        .block = {threads, 1, 1},
        .smem_bytes = smem_bytes,
        .cluster_x = cluster_x,
    };
    int64_t slots = ctx->num_sms; /* KILN_NUM_SMS */
    if (cluster_x > 1) {
        int clusters = max_active_clusters(ctx, kernel, &launch);
        if (clusters < 0)
            return -clusters;
        slots = ctx->num_sms / (int)cluster_x;
        slots = clusters < slots ? clusters : slots > 0 ? slots : 1;
    }
    launch.grid[0] = (cluster_x > 1 ? cluster_x : 1) *
                     (unsigned)kiln__persistent_ctas(units, slots, even_rounds);
    return kiln__launch(ctx, kernel, &launch, params, stream);
}
