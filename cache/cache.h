/*
 * The kernel cache store: SQLite files holding compiled cubins under a 128-bit key.
 * Knows nothing of CUDA. One kc_store is a layered list of roots: the first is writable
 * (created if missing), the rest are opened read-only and skipped if missing.
 *
 * Failure is a miss, never a crash: an unreadable or corrupt file is moved aside
 * ("<file>.corrupt-<unix time>") and recreated with a warning; a row whose key text or
 * checksum does not match is quarantined (moved to the quarantine table) and reported as
 * a miss.
 *
 * Thread-safety: every function may be called from many threads on one kc_store; the
 * store serialises its own SQLite handles (one connection per root, behind a mutex).
 * Several processes may use one file at once.
 *
 * Arguments: every pointer argument is required (NULL gives KILN_ERR_INVALID_ARG and a
 * message in err, or a logged warning for the void functions) unless its comment says
 * it may be NULL; err may always be NULL. Callbacks run with the store locked and must
 * not call back into it; a callback returning nonzero stops the walk (the call still
 * returns KILN_OK).
 *
 * Times (created, last_used, claim times) are Unix milliseconds; last_used is kept
 * strictly increasing within one file so that eviction order is exact.
 */
#ifndef KILN_CACHE_H
#define KILN_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../src/base/base.h"

#define KC_SCHEMA_VERSION 1

typedef struct kc_store kc_store;

/* What a compile produced, to be stored under key. Strings must be non-NULL. */
typedef struct kc_record {
    uint8_t key[16];           /* XXH3-128 of key_text, canonical (big-endian) bytes */
    const char *key_text;      /* the canonical record the key hashes; verified on hits */
    const char *template_name;
    const char *arch;
    const char *nvrtc_version;
    const char *options;
    const char *source;        /* the generated translation unit */
    const void *cubin;
    size_t cubin_size;
    int registers, spills, smem_bytes;
    double compile_ms;
} kc_record;

/* One row, as listed. Strings owned by the store, valid during a callback only. */
typedef struct kc_row {
    uint8_t key[16];
    const char *root;
    const char *key_text;
    const char *template_name;
    const char *arch;
    int64_t cubin_bytes, source_bytes;
    int registers, spills, smem_bytes;
    double compile_ms;
    int64_t created, last_used, hits; /* Unix ms, Unix ms, count */
    bool writable;                    /* the row lives in the writable root */
} kc_row;

typedef struct kc_root_stats {
    const char *path;
    bool writable;
    int64_t entries, bytes, file_bytes, quarantined; /* bytes: cubins + sources;
                                                        file_bytes: the file and its WAL */
} kc_root_stats;

/* path_list: "rw:ro1:ro2", each a directory holding the file "kernels.db" (the
 * writable directory is created, with parents, if missing); an empty first element
 * means no writable root. max_bytes
 * bounds the writable root (0 = unbounded); after a put, least-recently-used rows are
 * evicted until the bound holds. Read-only roots that are missing are skipped quietly;
 * unreadable, corrupt or other-schema ones are skipped with a warning. A writable file
 * of another schema version is moved aside ("<file>.old-schema-<unix time>") and
 * recreated. Errors: KILN_ERR_INVALID_ARG (out or path_list NULL, max_bytes < 0),
 * KILN_ERR_CACHE (the writable root cannot be created or opened even after moving a
 * corrupt file aside), KILN_ERR_OUT_OF_MEMORY. On failure *out is NULL. */
int kc_open(kc_store **out, const char *path_list, int64_t max_bytes, kiln__err *err);
void kc_close(kc_store *store);

/* The outcome of kc_acquire. */
typedef enum kc_outcome {
    KC_HIT = 1,     /* *cubin / *cubin_size hold a verified copy (caller frees) */
    KC_COMPILE = 2, /* caller holds the claim (or the wait timed out): compile, then
                       kc_put (which releases the claim) or kc_abandon */
    KC_MISS = 3,    /* not present; returned only when claim_timeout_ms < 0 (look only) */
} kc_outcome;

/* Look the key up in every root, in order. On a hit, the key text is compared with
 * key_text and the cubin's XXH3-64 with the stored checksum; a mismatch quarantines the
 * row (in the writable root; in a read-only root it is skipped) and counts as a miss.
 * A hit bumps last_used and hits (writable root only; failures to do so are ignored).
 *
 * On a miss with claim_timeout_ms >= 0: single-flight across processes. If no live
 * claim exists for the key, insert one (pid, host, time) and return KC_COMPILE. If
 * another live process holds it, poll until its row appears (KC_HIT), its claim goes
 * away (claim again), or claim_timeout_ms passes (KC_COMPILE without a claim). A claim
 * whose pid is dead on this host, or older than claim_timeout_ms, is taken over.
 * A claim held by another thread of this process counts as live: threads wait too.
 * With no writable root, a miss returns KC_COMPILE at once, without a claim. SQLite
 * failures (including a corrupt file, which is moved aside) count as misses.
 * Returns a kiln_status: KILN_OK, KILN_ERR_INVALID_ARG, KILN_ERR_OUT_OF_MEMORY (copying
 * the cubin). On anything but KC_HIT, *cubin is NULL and *cubin_size 0. */
int kc_acquire(kc_store *store, const uint8_t key[16], const char *key_text,
               int claim_timeout_ms, kc_outcome *outcome, void **cubin, size_t *cubin_size,
               kiln__err *err);

/* Store one entry in one transaction and drop this process's claim on the key. An entry
 * that already exists with the same key is replaced (its hits restart at 0). Then enforce
 * max_bytes; eviction never removes the entry just stored, and its failure is only
 * logged. A corrupt file is moved aside, recreated and the put retried once. With no
 * writable root this does nothing and returns KILN_OK. The cubin must be non-empty.
 * Returns KILN_OK, KILN_ERR_INVALID_ARG, KILN_ERR_CACHE. */
int kc_put(kc_store *store, const kc_record *rec, kiln__err *err);

/* Drop this process's claim on key (a compile failed). */
void kc_abandon(kc_store *store, const uint8_t key[16]);

/* Move the row with this key to the quarantine table (reason is kept), e.g. when the
 * driver refused to load its cubin. Next kc_acquire is a miss: read-only roots, which
 * cannot be changed, stop serving the key for the life of this kc_store. */
void kc_quarantine(kc_store *store, const uint8_t key[16], const char *reason);

typedef int (*kc_row_fn)(const kc_row *row, void *user);
typedef int (*kc_stats_fn)(const kc_root_stats *stats, void *user);

/* Every row of every usable root, the writable root first, each root's rows by
 * descending last_used. Returns KILN_OK, KILN_ERR_INVALID_ARG, KILN_ERR_CACHE. */
int kc_list(kc_store *store, kc_row_fn fn, void *user, kiln__err *err);
/* One call per usable root, in order. Returns as kc_list. */
int kc_stats(kc_store *store, kc_stats_fn fn, void *user, kiln__err *err);
/* Check every row of the writable root; quarantine and report the bad ones. A row is bad
 * when its key is not 16 bytes, its key text is empty, or its cubin is empty or does not
 * match the stored size or checksum. First runs PRAGMA quick_check: a damaged file is
 * moved aside and recreated (KILN_ERR_CACHE). bad_fn, checked and bad may be NULL.
 * Returns KILN_OK, KILN_ERR_INVALID_ARG, KILN_ERR_CACHE, KILN_ERR_OUT_OF_MEMORY. */
int kc_verify(kc_store *store, kc_row_fn bad_fn, void *user, int64_t *checked, int64_t *bad,
              kiln__err *err);
/* Evict least-recently-used rows of the writable root until it holds at most max_bytes
 * (>= 0; 0 empties it). removed may be NULL. Returns KILN_OK, KILN_ERR_INVALID_ARG,
 * KILN_ERR_CACHE. */
int kc_prune(kc_store *store, int64_t max_bytes, int64_t *removed, kiln__err *err);
/* Delete every row and the quarantine of the writable root (claims stay); *removed gets
 * the number of rows. removed may be NULL. Returns as kc_prune. */
int kc_clear(kc_store *store, int64_t *removed, kiln__err *err);

/* The path of the writable root's file, or NULL. */
const char *kc_writable_path(const kc_store *store);

#endif
