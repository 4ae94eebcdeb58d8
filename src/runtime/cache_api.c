/* The public cache functions: thin wrappers over the store that fill public structs. */
#include "internal.h"

typedef struct visit {
    kiln_cache_entry_fn entry_fn;
    kiln_cache_stats_fn stats_fn;
    void *user;
} visit;

static int visit_row(const kc_row *row, void *user)
{
    const visit *v = user;
    char key[33];
    kiln__hex16(row->key, key);
    kiln_cache_entry e = {
        .key = key, .root = row->root, .template_name = row->template_name, .arch = row->arch,
        .key_text = row->key_text, .cubin_bytes = row->cubin_bytes,
        .source_bytes = row->source_bytes, .registers = row->registers, .spills = row->spills,
        .smem_bytes = row->smem_bytes, .compile_ms = row->compile_ms, .created = row->created / 1000,
        .last_used = row->last_used / 1000, .hits = row->hits, .writable = row->writable,
    };
    return v->entry_fn ? v->entry_fn(&e, v->user) : 0;
}

static int visit_stats(const kc_root_stats *s, void *user)
{
    const visit *v = user;
    kiln_cache_stats out = {
        .root = s->path, .writable = s->writable, .entries = s->entries, .bytes = s->bytes,
        .file_bytes = s->file_bytes, .quarantined = s->quarantined,
    };
    return v->stats_fn(&out, v->user);
}

static int check_ctx(kiln_ctx *ctx, bool args_ok, const char *op)
{
    if (ctx == NULL) {
        kiln__err err = {0};
        kiln__err_set(&err, KILN_ERR_INVALID_ARG, "%s: ctx is NULL", op);
        kiln__set_last_error(&err);
        return KILN_ERR_INVALID_ARG;
    }
    if (!args_ok)
        return kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG, "%s: the callback is NULL", op);
    return KILN_OK;
}

static kiln_status finish(kiln_ctx *ctx, int status, const kiln__err *err)
{
    return status == KILN_OK ? kiln__ctx_ok(ctx) : (kiln_status)kiln__ctx_fail(ctx, err);
}

kiln_status kiln_cache_list(kiln_ctx *ctx, kiln_cache_entry_fn fn, void *user)
{
    int status = check_ctx(ctx, fn != NULL, "kiln_cache_list");
    if (status != KILN_OK)
        return (kiln_status)status;
    visit v = {.entry_fn = fn, .user = user};
    kiln__err err = {0};
    return finish(ctx, kc_list(ctx->cache, visit_row, &v, &err), &err);
}

kiln_status kiln_cache_stats_each(kiln_ctx *ctx, kiln_cache_stats_fn fn, void *user)
{
    int status = check_ctx(ctx, fn != NULL, "kiln_cache_stats_each");
    if (status != KILN_OK)
        return (kiln_status)status;
    visit v = {.stats_fn = fn, .user = user};
    kiln__err err = {0};
    return finish(ctx, kc_stats(ctx->cache, visit_stats, &v, &err), &err);
}

kiln_status kiln_cache_verify(kiln_ctx *ctx, kiln_cache_entry_fn fn, void *user, int64_t *checked,
                              int64_t *bad)
{
    int64_t checked_local = 0, bad_local = 0;
    int status = check_ctx(ctx, true, "kiln_cache_verify");
    if (status != KILN_OK)
        return (kiln_status)status;
    visit v = {.entry_fn = fn, .user = user};
    kiln__err err = {0};
    status = kc_verify(ctx->cache, visit_row, &v, &checked_local, &bad_local, &err);
    if (checked != NULL)
        *checked = checked_local;
    if (bad != NULL)
        *bad = bad_local;
    return finish(ctx, status, &err);
}

kiln_status kiln_cache_prune(kiln_ctx *ctx, int64_t max_bytes, int64_t *removed)
{
    int status = check_ctx(ctx, true, "kiln_cache_prune");
    if (status != KILN_OK)
        return (kiln_status)status;
    if (max_bytes < 0)
        return (kiln_status)kiln__ctx_failf(ctx, KILN_ERR_INVALID_ARG,
                                            "kiln_cache_prune: max_bytes %lld < 0",
                                            (long long)max_bytes);
    int64_t removed_local = 0;
    kiln__err err = {0};
    status = kc_prune(ctx->cache, max_bytes, &removed_local, &err);
    if (removed != NULL)
        *removed = removed_local;
    return finish(ctx, status, &err);
}

kiln_status kiln_cache_clear(kiln_ctx *ctx, int64_t *removed)
{
    int status = check_ctx(ctx, true, "kiln_cache_clear");
    if (status != KILN_OK)
        return (kiln_status)status;
    int64_t removed_local = 0;
    kiln__err err = {0};
    status = kc_clear(ctx->cache, &removed_local, &err);
    if (removed != NULL)
        *removed = removed_local;
    return finish(ctx, status, &err);
}
