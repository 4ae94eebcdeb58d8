/*
 * What the cache's files share: the store and root structs, and the helpers that open,
 * recover and query one root's SQLite file. Everything here runs with store->lock held.
 */
#ifndef KILN_CACHE_INTERNAL_H
#define KILN_CACHE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <sys/types.h>

#include "cache.h"

#define KC__BUSY_TIMEOUT_MS 10000
#define KC__POLL_MS 10
/* sqlite3 return code, outside SQLite's range, for "a file of another schema version". */
#define KC__SCHEMA_MISMATCH (-1)

typedef struct kc__root {
    char *dir;
    char *path;  /* dir + "/kernels.db" */
    sqlite3 *db; /* NULL: missing, unusable or given up on */
    bool writable;
    bool network; /* on a network file system: rollback journal instead of WAL */
    dev_t dev;    /* the file this connection opened, to tell whether another process */
    ino_t ino;    /* has already moved it aside */
} kc__root;

struct kc_store {
    pthread_mutex_t lock;
    kc__root *roots;
    size_t num_roots;
    kc__root *rw; /* &roots[0] when there is a writable root, else NULL */
    int64_t max_bytes;
    int64_t pid;
    char host[256];
    /* Keys quarantined by kc_quarantine that read-only roots must no longer serve. */
    uint8_t (*ro_skip)[16];
    size_t num_ro_skip, cap_ro_skip;
};

void kc__sleep_ms(int ms);
/* Wall-clock milliseconds since the Unix epoch (claims, created, last_used). */
int64_t kc__wall_ms(void);

/* A failed sqlite3 call: a corrupt writable file is moved aside and recreated, a corrupt
 * read-only one is closed and skipped; other failures are logged. `what` names the
 * operation for the log. */
void kc__root_failed(kc__root *root, int rc, const char *what);
bool kc__is_corrupt(int rc);

/* Statement helpers; each returns an sqlite3 result code. */
int kc__prepare(kc__root *root, const char *sql, sqlite3_stmt **stmt);
int kc__exec(kc__root *root, const char *sql);
int kc__begin_immediate(kc__root *root);
/* Commits when rc is SQLITE_OK, else rolls back; returns the first failure. */
int kc__end(kc__root *root, int rc);
/* Steps a statement that returns no rows, then finalizes it. */
int kc__step_done(sqlite3_stmt *stmt);

/* Moves the row with key from kernels to quarantine in one transaction. When
 * only_checksum is non-NULL the row moves only if it still holds that checksum (another
 * process may have replaced it meanwhile). */
int kc__quarantine_row(kc__root *root, const uint8_t key[16], const char *reason,
                       const int64_t *only_checksum);
/* Deletes least-recently-used rows, never pinned_key (may be NULL), until the
 * root holds at most max_bytes of cubin and source. */
int kc__evict(kc__root *root, int64_t max_bytes, const uint8_t *pinned_key, int64_t *removed);

#endif
