/*
 * Maintenance: listing, statistics, verification, pruning and clearing. These read
 * whole tables and hold store->lock throughout; callbacks must not call into the store.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "kiln/kiln.h"

#define ROW_COLUMNS                                                                                \
    "key, key_text, template_name, arch, cubin_bytes, source_bytes, registers, spills,"            \
    " smem_bytes, compile_ms, created, last_used, hits"

static void read_row(sqlite3_stmt *stmt, const kc__root *root, kc_row *row)
{
    memset(row, 0, sizeof *row);
    const void *key = sqlite3_column_blob(stmt, 0);
    int key_bytes = sqlite3_column_bytes(stmt, 0);
    if (key != NULL)
        memcpy(row->key, key, key_bytes < 16 ? (size_t)key_bytes : 16);
    row->root = root->dir;
    row->key_text = (const char *)sqlite3_column_text(stmt, 1);
    row->template_name = (const char *)sqlite3_column_text(stmt, 2);
    row->arch = (const char *)sqlite3_column_text(stmt, 3);
    row->cubin_bytes = sqlite3_column_int64(stmt, 4);
    row->source_bytes = sqlite3_column_int64(stmt, 5);
    row->registers = sqlite3_column_int(stmt, 6);
    row->spills = sqlite3_column_int(stmt, 7);
    row->smem_bytes = sqlite3_column_int(stmt, 8);
    row->compile_ms = sqlite3_column_double(stmt, 9);
    row->created = sqlite3_column_int64(stmt, 10);
    row->last_used = sqlite3_column_int64(stmt, 11);
    row->hits = sqlite3_column_int64(stmt, 12);
    row->writable = root->writable;
    if (row->key_text == NULL)
        row->key_text = "";
    if (row->template_name == NULL)
        row->template_name = "";
    if (row->arch == NULL)
        row->arch = "";
}

/* A failed statement in a maintenance call: recover (or skip) the root and report. */
static int admin_failed(kc__root *root, int rc, const char *what, kiln__err *err)
{
    int status = kiln__err_set(err, rc == SQLITE_NOMEM ? KILN_ERR_OUT_OF_MEMORY : KILN_ERR_CACHE,
                               "%s: %s: %s%s", what, root->path, sqlite3_errstr(rc),
                               !kc__is_corrupt(rc) ? ""
                               : root->writable    ? " (moved aside and recreated)"
                                                   : " (skipped from now on)");
    kc__root_failed(root, rc, what);
    return status;
}

/* Lists one root; *stop is set when fn asks to stop. */
static int list_root(kc__root *root, kc_row_fn fn, void *user, bool *stop)
{
    sqlite3_stmt *stmt;
    int rc =
        kc__prepare(root, "SELECT " ROW_COLUMNS " FROM kernels ORDER BY last_used DESC", &stmt);
    while (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        kc_row row;
        read_row(stmt, root, &row);
        rc = SQLITE_OK;
        if (fn(&row, user) != 0) {
            *stop = true;
            break;
        }
    }
    sqlite3_finalize(stmt);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int kc_list(kc_store *store, kc_row_fn fn, void *user, kiln__err *err)
{
    if (store == NULL || fn == NULL)
        return kiln__err_set(err, KILN_ERR_INVALID_ARG, "kc_list: %s is NULL",
                             store == NULL ? "store" : "fn");
    int status = KILN_OK;
    bool stop = false;
    pthread_mutex_lock(&store->lock);
    for (size_t i = 0; i < store->num_roots && !stop && status == KILN_OK; i++) {
        kc__root *root = &store->roots[i];
        int rc = root->db ? list_root(root, fn, user, &stop) : SQLITE_OK;
        if (rc != SQLITE_OK)
            status = admin_failed(root, rc, "kc_list", err);
    }
    pthread_mutex_unlock(&store->lock);
    return status;
}

static int64_t file_size(const char *path, const char *suffix)
{
    char name[4096];
    struct stat st;
    snprintf(name, sizeof name, "%s%s", path, suffix);
    return stat(name, &st) == 0 ? (int64_t)st.st_size : 0;
}

static int stat_root(kc__root *root, kc_root_stats *stats)
{
    sqlite3_stmt *stmt;
    memset(stats, 0, sizeof *stats);
    stats->path = root->path;
    stats->writable = root->writable;
    stats->file_bytes = file_size(root->path, "") + file_size(root->path, "-wal");
    int rc = kc__prepare(root,
                         "SELECT (SELECT count(*) FROM kernels),"
                         " (SELECT coalesce(sum(cubin_bytes + source_bytes), 0) FROM kernels),"
                         " (SELECT count(*) FROM quarantine)",
                         &stmt);
    if (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        stats->entries = sqlite3_column_int64(stmt, 0);
        stats->bytes = sqlite3_column_int64(stmt, 1);
        stats->quarantined = sqlite3_column_int64(stmt, 2);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(stmt);
    return rc;
}

int kc_stats(kc_store *store, kc_stats_fn fn, void *user, kiln__err *err)
{
    if (store == NULL || fn == NULL)
        return kiln__err_set(err, KILN_ERR_INVALID_ARG, "kc_stats: %s is NULL",
                             store == NULL ? "store" : "fn");
    int status = KILN_OK;
    pthread_mutex_lock(&store->lock);
    for (size_t i = 0; i < store->num_roots && status == KILN_OK; i++) {
        kc__root *root = &store->roots[i];
        kc_root_stats stats;
        if (root->db == NULL)
            continue;
        int rc = stat_root(root, &stats);
        if (rc != SQLITE_OK)
            status = admin_failed(root, rc, "kc_stats", err);
        else if (fn(&stats, user) != 0)
            break;
    }
    pthread_mutex_unlock(&store->lock);
    return status;
}

typedef struct bad_list {
    struct bad_entry {
        uint8_t key[16];
        const char *reason; /* static */
    } * items;
    size_t count, cap;
} bad_list;

static bool bad_list_add(bad_list *list, const kc_row *row, const char *reason)
{
    if (list->count == list->cap) {
        size_t cap = list->cap ? 2 * list->cap : 16;
        struct bad_entry *grown = realloc(list->items, cap * sizeof *grown);
        if (grown == NULL)
            return false;
        list->items = grown;
        list->cap = cap;
    }
    memcpy(list->items[list->count].key, row->key, 16);
    list->items[list->count++].reason = reason;
    return true;
}

static const char *verify_fault(sqlite3_stmt *stmt, const kc_row *row)
{
    const void *cubin = sqlite3_column_blob(stmt, 13);
    int64_t size = sqlite3_column_bytes(stmt, 13);
    if (sqlite3_column_bytes(stmt, 0) != 16)
        return "key is not 16 bytes";
    if (row->key_text[0] == '\0')
        return "empty key text";
    /* Keys are the canonical XXH3-128 of their key text (see cache.h). */
    XXH128_canonical_t digest;
    XXH128_canonicalFromHash(&digest, XXH3_128bits(row->key_text, strlen(row->key_text)));
    if (memcmp(digest.digest, row->key, 16) != 0)
        return "key does not match its key text";
    if (size == 0 || size != row->cubin_bytes)
        return "cubin size mismatch";
    if (XXH3_64bits(cubin, (size_t)size) != (uint64_t)sqlite3_column_int64(stmt, 14))
        return "cubin checksum mismatch";
    return NULL;
}

/* Checks every row, reporting and collecting the bad ones. */
static int verify_rows(kc__root *root, kc_row_fn bad_fn, void *user, int64_t *checked,
                       bad_list *bad)
{
    sqlite3_stmt *stmt;
    int rc = kc__prepare(root, "SELECT " ROW_COLUMNS ", cubin, cubin_xxh3 FROM kernels", &stmt);
    while (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        kc_row row;
        read_row(stmt, root, &row);
        rc = SQLITE_OK;
        ++*checked;
        const char *fault = verify_fault(stmt, &row);
        if (fault == NULL)
            continue;
        if (!bad_list_add(bad, &row, fault))
            rc = SQLITE_NOMEM;
        else if (bad_fn != NULL && bad_fn(&row, user) != 0)
            break;
    }
    sqlite3_finalize(stmt);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* SQLITE_OK, or SQLITE_CORRUPT for any problem PRAGMA integrity_check finds. Not
 * quick_check: it skips comparing the indexes with their tables, and a row missing from the
 * key index is one that lookups miss and deletes by key cannot remove (a damaged file
 * showed it, its entry reported bad by every verify and never quarantined). */
static int integrity_check(kc__root *root)
{
    sqlite3_stmt *stmt;
    int rc = kc__prepare(root, "PRAGMA integrity_check(1)", &stmt);
    if (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *result = (const char *)sqlite3_column_text(stmt, 0);
        rc = result != NULL && strcmp(result, "ok") == 0 ? SQLITE_OK : SQLITE_CORRUPT;
    }
    sqlite3_finalize(stmt);
    return rc;
}

int kc_verify(kc_store *store, kc_row_fn bad_fn, void *user, int64_t *checked, int64_t *bad,
              kiln__err *err)
{
    int64_t num_checked = 0;
    bad_list list = {0};
    if (checked != NULL)
        *checked = 0;
    if (bad != NULL)
        *bad = 0;
    if (store == NULL)
        return kiln__err_set(err, KILN_ERR_INVALID_ARG, "kc_verify: store is NULL");
    int status = KILN_OK;
    pthread_mutex_lock(&store->lock);
    kc__root *root = store->rw;
    int rc = root && root->db ? integrity_check(root) : SQLITE_OK;
    if (rc == SQLITE_OK && root && root->db)
        rc = verify_rows(root, bad_fn, user, &num_checked, &list);
    for (size_t i = 0; i < list.count && rc == SQLITE_OK; i++) {
        char hex[33];
        kiln__hex16(list.items[i].key, hex);
        kiln__log(KILN__LOG_WARN, "cache %s: entry %s: %s; quarantined", root->path, hex,
                  list.items[i].reason);
        rc = kc__quarantine_row(root, list.items[i].key, list.items[i].reason, NULL);
    }
    if (rc != SQLITE_OK)
        status = admin_failed(root, rc, "kc_verify", err);
    pthread_mutex_unlock(&store->lock);
    if (checked != NULL)
        *checked = num_checked;
    if (bad != NULL)
        *bad = (int64_t)list.count;
    free(list.items);
    return status;
}

int kc_prune(kc_store *store, int64_t max_bytes, int64_t *removed, kiln__err *err)
{
    if (removed != NULL)
        *removed = 0;
    if (store == NULL)
        return kiln__err_set(err, KILN_ERR_INVALID_ARG, "kc_prune: store is NULL");
    if (max_bytes < 0)
        return kiln__err_set(err, KILN_ERR_INVALID_ARG, "kc_prune: max_bytes %lld < 0",
                             (long long)max_bytes);
    int status = KILN_OK;
    pthread_mutex_lock(&store->lock);
    kc__root *root = store->rw;
    if (root != NULL && root->db != NULL) {
        int rc = kc__evict(root, max_bytes, NULL, removed);
        if (rc != SQLITE_OK)
            status = admin_failed(root, rc, "kc_prune", err);
    }
    pthread_mutex_unlock(&store->lock);
    return status;
}

int kc_clear(kc_store *store, int64_t *removed, kiln__err *err)
{
    if (removed != NULL)
        *removed = 0;
    if (store == NULL)
        return kiln__err_set(err, KILN_ERR_INVALID_ARG, "kc_clear: store is NULL");
    int status = KILN_OK;
    pthread_mutex_lock(&store->lock);
    kc__root *root = store->rw;
    if (root != NULL && root->db != NULL) {
        int64_t count = 0;
        int rc = kc__begin_immediate(root);
        if (rc == SQLITE_OK)
            rc = kc__exec(root, "DELETE FROM kernels");
        if (rc == SQLITE_OK) {
            count = sqlite3_changes(root->db);
            rc = kc__exec(root, "DELETE FROM quarantine");
        }
        rc = kc__end(root, rc);
        if (rc != SQLITE_OK)
            status = admin_failed(root, rc, "kc_clear", err);
        else if (removed != NULL)
            *removed = count;
    }
    pthread_mutex_unlock(&store->lock);
    return status;
}
