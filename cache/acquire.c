/*
 * The hot path: verified lookups through the roots, cross-process single-flight claims,
 * and storing an entry. Every public function here takes store->lock; the claim wait
 * drops it while it sleeps.
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "kiln/kiln.h"

/* Rows are stamped with max(now, newest + 1) so that last_used is strictly increasing
 * within a file and eviction order is exact even for several uses in one millisecond. */
#define NEXT_LAST_USED "max(?9, coalesce((SELECT max(last_used) FROM kernels), 0) + 1)"

typedef enum claim_state {
    CLAIM_TAKEN,   /* this process now holds the claim */
    CLAIM_HELD,    /* another live process (or thread) holds it */
    CLAIM_PRESENT, /* the row has appeared */
} claim_state;

int kc__quarantine_row(kc__root *root, const uint8_t key[16], const char *reason,
                       const int64_t *only_checksum)
{
    sqlite3_stmt *stmt = NULL;
    int rc = kc__begin_immediate(root);
    if (rc == SQLITE_OK)
        rc = kc__prepare(root,
                         "INSERT INTO quarantine(key, key_text, reason, time)"
                         " SELECT key, key_text, ?2, ?3 FROM kernels"
                         " WHERE key = ?1 AND (?4 IS NULL OR cubin_xxh3 = ?4)",
                         &stmt);
    if (rc == SQLITE_OK) {
        sqlite3_bind_blob(stmt, 1, key, 16, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 2, reason, -1, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 3, kc__wall_ms());
        if (only_checksum != NULL)
            sqlite3_bind_int64(stmt, 4, *only_checksum);
        rc = kc__step_done(stmt);
    }
    if (rc == SQLITE_OK && sqlite3_changes(root->db) > 0) {
        rc = kc__prepare(root, "DELETE FROM kernels WHERE key = ?1", &stmt);
        if (rc == SQLITE_OK) {
            sqlite3_bind_blob(stmt, 1, key, 16, SQLITE_STATIC);
            rc = kc__step_done(stmt);
        }
    }
    return kc__end(root, rc);
}

static void bump_last_used(kc__root *root, const uint8_t key[16])
{
    sqlite3_stmt *stmt;
    int rc = kc__begin_immediate(root);
    if (rc == SQLITE_OK)
        rc = kc__prepare(root,
                         "UPDATE kernels SET hits = hits + 1, last_used = " NEXT_LAST_USED
                         " WHERE key = ?1",
                         &stmt);
    if (rc == SQLITE_OK) {
        sqlite3_bind_blob(stmt, 1, key, 16, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 9, kc__wall_ms());
        rc = kc__step_done(stmt);
    }
    rc = kc__end(root, rc);
    if (rc != SQLITE_OK)
        kc__root_failed(root, rc, "recording a hit");
}

/* Why a row read back does not serve key_text, or NULL when it does. */
static const char *row_fault(sqlite3_stmt *stmt, const char *key_text)
{
    const char *stored_text = (const char *)sqlite3_column_text(stmt, 0);
    const void *cubin = sqlite3_column_blob(stmt, 1);
    size_t size = (size_t)sqlite3_column_bytes(stmt, 1);
    uint64_t stored_sum = (uint64_t)sqlite3_column_int64(stmt, 2);
    if (stored_text == NULL || strcmp(stored_text, key_text) != 0)
        return "key text mismatch";
    if (size == 0 || XXH3_64bits(cubin, size) != stored_sum)
        return "cubin checksum mismatch";
    return NULL;
}

/* One root: SQLITE_OK with *cubin set on a verified hit, SQLITE_OK with *cubin NULL on
 * a miss (a bad row is quarantined or skipped), or a failure. */
static int root_lookup(kc__root *root, const uint8_t key[16], const char *key_text, void **cubin,
                       size_t *cubin_size)
{
    sqlite3_stmt *stmt;
    int rc =
        kc__prepare(root, "SELECT key_text, cubin, cubin_xxh3 FROM kernels WHERE key = ?1", &stmt);
    if (rc == SQLITE_OK) {
        sqlite3_bind_blob(stmt, 1, key, 16, SQLITE_STATIC);
        rc = sqlite3_step(stmt);
    }
    const char *fault = NULL;
    int64_t stored_sum = 0;
    if (rc == SQLITE_ROW) {
        rc = SQLITE_OK;
        fault = row_fault(stmt, key_text);
        stored_sum = sqlite3_column_int64(stmt, 2);
        if (fault == NULL) {
            size_t size = (size_t)sqlite3_column_bytes(stmt, 1);
            *cubin = malloc(size);
            if (*cubin == NULL)
                rc = SQLITE_NOMEM;
            else
                memcpy(*cubin, sqlite3_column_blob(stmt, 1), size);
            *cubin_size = *cubin ? size : 0;
        }
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(stmt);
    if (fault != NULL) {
        char hex[33];
        kiln__hex16(key, hex);
        int qrc = root->writable ? kc__quarantine_row(root, key, fault, &stored_sum) : SQLITE_OK;
        kiln__log(KILN__LOG_WARN, "cache %s: entry %s: %s; %s", root->path, hex, fault,
                  !root->writable    ? "skipped"
                  : qrc == SQLITE_OK ? "quarantined"
                                     : "left in place");
        if (qrc != SQLITE_OK)
            kc__root_failed(root, qrc, "quarantining an entry");
    } else if (rc == SQLITE_OK && *cubin != NULL && root->writable) {
        bump_last_used(root, key);
    }
    return rc;
}

static bool ro_skipped(const kc_store *store, const uint8_t key[16])
{
    for (size_t i = 0; i < store->num_ro_skip; i++) {
        if (memcmp(store->ro_skip[i], key, 16) == 0)
            return true;
    }
    return false;
}

/* Every root in order. Failures count as misses; only an allocation failure is
 * returned (as a kiln_status). */
static int lookup_all(kc_store *store, const uint8_t key[16], const char *key_text, void **cubin,
                      size_t *cubin_size)
{
    for (size_t i = 0; i < store->num_roots && *cubin == NULL; i++) {
        kc__root *root = &store->roots[i];
        if (root->db == NULL || (!root->writable && ro_skipped(store, key)))
            continue;
        int rc = root_lookup(root, key, key_text, cubin, cubin_size);
        if (rc == SQLITE_NOMEM)
            return KILN_ERR_OUT_OF_MEMORY;
        if (rc != SQLITE_OK)
            kc__root_failed(root, rc, "looking up an entry");
    }
    return KILN_OK;
}

static bool claim_is_stale(const kc_store *store, int64_t pid, const char *host, int64_t time,
                           int claim_timeout_ms)
{
    if (kc__wall_ms() - time > claim_timeout_ms)
        return true;
    if (host == NULL || strcmp(host, store->host) != 0)
        return false;
    return pid <= 0 || (kill((pid_t)pid, 0) == -1 && errno == ESRCH);
}

/* The check-and-claim, in one BEGIN IMMEDIATE transaction. */
static int try_claim(kc_store *store, const uint8_t key[16], int claim_timeout_ms,
                     claim_state *state)
{
    kc__root *root = store->rw;
    sqlite3_stmt *stmt = NULL;
    *state = CLAIM_HELD;
    int rc = kc__begin_immediate(root);
    if (rc == SQLITE_OK)
        rc = kc__prepare(root,
                         "SELECT 1, 0, '', 0 FROM kernels WHERE key = ?1 UNION ALL"
                         " SELECT 0, pid, host, time FROM claims WHERE key = ?1",
                         &stmt);
    bool claim = true;
    if (rc == SQLITE_OK) {
        sqlite3_bind_blob(stmt, 1, key, 16, SQLITE_STATIC);
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
            if (sqlite3_column_int(stmt, 0) == 1) {
                *state = CLAIM_PRESENT;
                claim = false;
            } else if (!claim_is_stale(store, sqlite3_column_int64(stmt, 1),
                                       (const char *)sqlite3_column_text(stmt, 2),
                                       sqlite3_column_int64(stmt, 3), claim_timeout_ms)) {
                claim = false;
            }
        }
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_finalize(stmt);
    }
    if (rc == SQLITE_OK && claim)
        rc = kc__prepare(root,
                         "INSERT OR REPLACE INTO claims(key, pid, host, time)"
                         " VALUES(?1, ?2, ?3, ?4)",
                         &stmt);
    if (rc == SQLITE_OK && claim) {
        sqlite3_bind_blob(stmt, 1, key, 16, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 2, store->pid);
        sqlite3_bind_text(stmt, 3, store->host, -1, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 4, kc__wall_ms());
        rc = kc__step_done(stmt);
        if (rc == SQLITE_OK)
            *state = CLAIM_TAKEN;
    }
    return kc__end(root, rc);
}

/* Called with the lock held and a miss in every root: returns with the lock held. */
static int wait_for_claim(kc_store *store, const uint8_t key[16], const char *key_text,
                          int claim_timeout_ms, kc_outcome *outcome, void **cubin,
                          size_t *cubin_size)
{
    double deadline = kiln__now_ms() + claim_timeout_ms;
    claim_state state = CLAIM_HELD;
    bool refused = false; /* the last lookup missed a row the claim had seen */
    for (;;) {
        int rc = try_claim(store, key, claim_timeout_ms, &state);
        if (rc != SQLITE_OK) {
            kc__root_failed(store->rw, rc, "claiming a key");
            break;
        }
        /* A row seen again after the lookup refused it: one it could not quarantine (the
         * log says why), which every poll would see until the deadline. Compile now;
         * storing the result replaces the row. */
        if (state == CLAIM_TAKEN || (state == CLAIM_PRESENT && refused))
            break;
        if (kiln__now_ms() >= deadline) {
            kiln__log(KILN__LOG_INFO, "cache: no claim on a key after %d ms; compiling anyway",
                      claim_timeout_ms);
            break;
        }
        /* Another process holds the claim: poll. A row that appeared between the lookup
         * and the claim: read it at once. */
        if (state == CLAIM_HELD) {
            pthread_mutex_unlock(&store->lock);
            kc__sleep_ms(KC__POLL_MS);
            pthread_mutex_lock(&store->lock);
        }
        int status = lookup_all(store, key, key_text, cubin, cubin_size);
        if (status != KILN_OK || *cubin != NULL) {
            *outcome = KC_HIT;
            return status;
        }
        refused = state == CLAIM_PRESENT;
        if (store->rw->db == NULL)
            break;
    }
    *outcome = KC_COMPILE;
    return KILN_OK;
}

int kc_acquire(kc_store *store, const uint8_t key[16], const char *key_text, int claim_timeout_ms,
               kc_outcome *outcome, void **cubin, size_t *cubin_size, kiln__err *err)
{
    if (cubin != NULL)
        *cubin = NULL;
    if (cubin_size != NULL)
        *cubin_size = 0;
    if (store == NULL || key == NULL || key_text == NULL || outcome == NULL || cubin == NULL ||
        cubin_size == NULL)
        return kiln__err_set(err, KILN_ERR_INVALID_ARG, "kc_acquire: %s is NULL",
                             store == NULL      ? "store"
                             : key == NULL      ? "key"
                             : key_text == NULL ? "key_text"
                             : outcome == NULL  ? "outcome"
                             : cubin == NULL    ? "cubin"
                                                : "cubin_size");
    *outcome = KC_MISS;
    pthread_mutex_lock(&store->lock);
    int status = lookup_all(store, key, key_text, cubin, cubin_size);
    if (status != KILN_OK || *cubin != NULL)
        *outcome = KC_HIT;
    else if (claim_timeout_ms < 0)
        *outcome = KC_MISS;
    else if (store->rw == NULL || store->rw->db == NULL)
        *outcome = KC_COMPILE;
    else
        status = wait_for_claim(store, key, key_text, claim_timeout_ms, outcome, cubin, cubin_size);
    pthread_mutex_unlock(&store->lock);
    if (status != KILN_OK) {
        free(*cubin);
        *cubin = NULL;
        *cubin_size = 0;
        *outcome = KC_MISS;
        return kiln__err_set(err, status, "kc_acquire: out of memory copying a cubin");
    }
    return KILN_OK;
}

static int drop_claim(kc_store *store, const uint8_t key[16])
{
    sqlite3_stmt *stmt;
    int rc = kc__prepare(store->rw, "DELETE FROM claims WHERE key = ?1 AND pid = ?2 AND host = ?3",
                         &stmt);
    if (rc == SQLITE_OK) {
        sqlite3_bind_blob(stmt, 1, key, 16, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 2, store->pid);
        sqlite3_bind_text(stmt, 3, store->host, -1, SQLITE_STATIC);
        rc = kc__step_done(stmt);
    }
    return rc;
}

static int put_row(kc_store *store, const kc_record *rec)
{
    kc__root *root = store->rw;
    sqlite3_stmt *stmt = NULL;
    int rc = kc__begin_immediate(root);
    if (rc == SQLITE_OK)
        rc = kc__prepare(root,
                         "INSERT OR REPLACE INTO kernels(key, cubin_bytes, source_bytes,"
                         " cubin_xxh3, registers, spills, smem_bytes, compile_ms, created,"
                         " last_used, hits, key_text, template_name, arch, nvrtc_version,"
                         " options, source, cubin)"
                         " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, " NEXT_LAST_USED ", 0,"
                         " ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                         &stmt);
    if (rc == SQLITE_OK) {
        size_t source_bytes = strlen(rec->source);
        sqlite3_bind_blob(stmt, 1, rec->key, 16, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 2, (sqlite3_int64)rec->cubin_size);
        sqlite3_bind_int64(stmt, 3, (sqlite3_int64)source_bytes);
        sqlite3_bind_int64(stmt, 4, (sqlite3_int64)XXH3_64bits(rec->cubin, rec->cubin_size));
        sqlite3_bind_int(stmt, 5, rec->registers);
        sqlite3_bind_int(stmt, 6, rec->spills);
        sqlite3_bind_int(stmt, 7, rec->smem_bytes);
        sqlite3_bind_double(stmt, 8, rec->compile_ms);
        sqlite3_bind_int64(stmt, 9, kc__wall_ms());
        sqlite3_bind_text(stmt, 10, rec->key_text, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 11, rec->template_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 12, rec->arch, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 13, rec->nvrtc_version, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 14, rec->options, -1, SQLITE_STATIC);
        sqlite3_bind_text64(stmt, 15, rec->source, source_bytes, SQLITE_STATIC, SQLITE_UTF8);
        sqlite3_bind_blob64(stmt, 16, rec->cubin, rec->cubin_size, SQLITE_STATIC);
        rc = kc__step_done(stmt);
    }
    if (rc == SQLITE_OK)
        rc = drop_claim(store, rec->key);
    return kc__end(root, rc);
}

static const char *record_fault(const kc_record *rec)
{
    if (rec->key_text == NULL)
        return "key_text is NULL";
    if (rec->template_name == NULL)
        return "template_name is NULL";
    if (rec->arch == NULL)
        return "arch is NULL";
    if (rec->nvrtc_version == NULL)
        return "nvrtc_version is NULL";
    if (rec->options == NULL)
        return "options is NULL";
    if (rec->source == NULL)
        return "source is NULL";
    if (rec->cubin == NULL || rec->cubin_size == 0)
        return "the cubin is NULL or empty";
    return NULL;
}

int kc_put(kc_store *store, const kc_record *rec, kiln__err *err)
{
    if (store == NULL || rec == NULL)
        return kiln__err_set(err, KILN_ERR_INVALID_ARG, "kc_put: %s is NULL",
                             store == NULL ? "store" : "rec");
    const char *fault = record_fault(rec);
    if (fault != NULL)
        return kiln__err_set(err, KILN_ERR_INVALID_ARG, "kc_put: %s", fault);
    if (store->rw == NULL)
        return KILN_OK;
    int status = KILN_OK;
    pthread_mutex_lock(&store->lock);
    kc__root *root = store->rw;
    int rc = root->db ? put_row(store, rec) : SQLITE_CANTOPEN;
    if (kc__is_corrupt(rc)) {
        kc__root_failed(root, rc, "storing an entry");
        rc = root->db ? put_row(store, rec) : SQLITE_CANTOPEN;
    }
    if (rc != SQLITE_OK) {
        status = kiln__err_set(err, KILN_ERR_CACHE, "kc_put: cannot store in %s: %s", root->path,
                               root->db ? sqlite3_errstr(rc) : "no usable writable cache");
        kc__root_failed(root, rc, "storing an entry");
    } else if (store->max_bytes > 0) {
        rc = kc__evict(root, store->max_bytes, rec->key, NULL);
        if (rc != SQLITE_OK)
            kc__root_failed(root, rc, "evicting entries");
    }
    pthread_mutex_unlock(&store->lock);
    return status;
}

int kc__evict(kc__root *root, int64_t max_bytes, const uint8_t *pinned_key, int64_t *removed)
{
    /* Keep the most recently used rows whose running total, with the pinned row, fits:
     * the same set as deleting by ascending last_used until the total fits. */
    sqlite3_stmt *stmt = NULL;
    int64_t count = 0;
    int rc = kc__begin_immediate(root);
    if (rc == SQLITE_OK)
        rc = kc__prepare(root,
                         "DELETE FROM kernels WHERE key IN (SELECT key FROM ("
                         " SELECT key, sum(cubin_bytes + source_bytes) OVER ("
                         "  ORDER BY last_used DESC, key DESC"
                         "  ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running"
                         " FROM kernels WHERE ?1 IS NULL OR key != ?1)"
                         " WHERE running + coalesce((SELECT cubin_bytes + source_bytes"
                         "  FROM kernels WHERE key = ?1), 0) > ?2)",
                         &stmt);
    if (rc == SQLITE_OK) {
        if (pinned_key != NULL)
            sqlite3_bind_blob(stmt, 1, pinned_key, 16, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 2, max_bytes);
        rc = kc__step_done(stmt);
        count = sqlite3_changes(root->db);
    }
    rc = kc__end(root, rc);
    if (removed != NULL)
        *removed = rc == SQLITE_OK ? count : 0;
    return rc;
}

void kc_abandon(kc_store *store, const uint8_t key[16])
{
    if (store == NULL || key == NULL) {
        kiln__log(KILN__LOG_WARN, "kc_abandon: %s is NULL", store == NULL ? "store" : "key");
        return;
    }
    pthread_mutex_lock(&store->lock);
    if (store->rw != NULL && store->rw->db != NULL) {
        int rc = kc__begin_immediate(store->rw);
        rc = kc__end(store->rw, rc == SQLITE_OK ? drop_claim(store, key) : rc);
        if (rc != SQLITE_OK)
            kc__root_failed(store->rw, rc, "dropping a claim");
    }
    pthread_mutex_unlock(&store->lock);
}

static void add_ro_skip(kc_store *store, const uint8_t key[16])
{
    if (ro_skipped(store, key))
        return;
    if (store->num_ro_skip == store->cap_ro_skip) {
        size_t cap = store->cap_ro_skip ? 2 * store->cap_ro_skip : 8;
        void *grown = realloc(store->ro_skip, cap * sizeof *store->ro_skip);
        if (grown == NULL) {
            kiln__log(KILN__LOG_WARN, "kc_quarantine: out of memory");
            return;
        }
        store->ro_skip = grown;
        store->cap_ro_skip = cap;
    }
    memcpy(store->ro_skip[store->num_ro_skip++], key, 16);
}

void kc_quarantine(kc_store *store, const uint8_t key[16], const char *reason)
{
    if (store == NULL || key == NULL || reason == NULL) {
        kiln__log(KILN__LOG_WARN, "kc_quarantine: %s is NULL",
                  store == NULL ? "store"
                  : key == NULL ? "key"
                                : "reason");
        return;
    }
    pthread_mutex_lock(&store->lock);
    if (store->rw != NULL && store->rw->db != NULL) {
        int rc = kc__quarantine_row(store->rw, key, reason, NULL);
        if (rc != SQLITE_OK)
            kc__root_failed(store->rw, rc, "quarantining an entry");
    }
    add_ro_skip(store, key);
    pthread_mutex_unlock(&store->lock);
}
