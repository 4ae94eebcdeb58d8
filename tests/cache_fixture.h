/* Shared fixture of the kernel cache store tests: a fresh directory per test, random
 * entries, raw SQLite access to damage files on purpose. */
#ifndef KILN_TEST_CACHE_FIXTURE_H
#define KILN_TEST_CACHE_FIXTURE_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "../cache/cache.h"
#include "kiln/kiln.h"

#define NUM_RACERS 8


/* ---- fixtures and helpers ---- */

typedef struct fixture {
    char dir[64];
} fixture;

static inline int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static inline int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(fx->dir, sizeof fx->dir, "%s/kiln-cache-test-XXXXXX",
             tmp != NULL && tmp[0] != '\0' && strlen(tmp) < 40 ? tmp : "/tmp");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    /* The tests provoke warnings on purpose; KILN_TEST_LOG=4 shows them. */
    kiln__log_level = getenv("KILN_TEST_LOG") ? atoi(getenv("KILN_TEST_LOG")) : 0;
    *state = fx;
    return 0;
}

static inline int teardown(void **state)
{
    fixture *fx = *state;
    nftw(fx->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static inline void random_bytes(void *out, size_t n)
{
    uint8_t *p = out;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        assert_true(got > 0);
        p += got;
        n -= (size_t)got;
    }
}

static inline uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* An entry with a random key, key text, source and cubin. */
typedef struct entry {
    kc_record rec;
    char key_text[128];
    char template_name[32];
    char *source;
    uint8_t *cubin;
} entry;

static inline void entry_make(entry *e, size_t cubin_size, size_t source_size)
{
    memset(e, 0, sizeof *e);
    uint8_t nonce[16];
    random_bytes(nonce, 16);
    char hex[33];
    kiln__hex16(nonce, hex);
    uint32_t salt;
    random_bytes(&salt, sizeof salt);
    snprintf(e->key_text, sizeof e->key_text, "v1|gemm|tile=%u|nonce=%s", salt % 256, hex);
    /* As the JIT derives it: the canonical XXH3-128 of the key text. */
    XXH128_canonical_t digest;
    XXH128_canonicalFromHash(&digest, XXH3_128bits(e->key_text, strlen(e->key_text)));
    memcpy(e->rec.key, digest.digest, 16);
    snprintf(e->template_name, sizeof e->template_name, "gemm_%u", salt % 7);
    e->cubin = malloc(cubin_size);
    e->source = malloc(source_size + 1);
    assert_non_null(e->cubin);
    assert_non_null(e->source);
    random_bytes(e->cubin, cubin_size);
    random_bytes(e->source, source_size);
    for (size_t i = 0; i < source_size; i++)
        e->source[i] = (char)('a' + (uint8_t)e->source[i] % 26);
    e->source[source_size] = '\0';
    e->rec.key_text = e->key_text;
    e->rec.template_name = e->template_name;
    e->rec.arch = "sm_90a";
    e->rec.nvrtc_version = "12.4";
    e->rec.options = "-O3 --std=c++17";
    e->rec.source = e->source;
    e->rec.cubin = e->cubin;
    e->rec.cubin_size = cubin_size;
    e->rec.registers = (int)(salt % 255);
    e->rec.spills = (int)(salt % 3);
    e->rec.smem_bytes = (int)(salt % 200000);
    e->rec.compile_ms = (double)(salt % 5000) / 3.0;
}

static inline void entry_free(entry *e)
{
    free(e->cubin);
    free(e->source);
}

static inline void put_ok(kc_store *store, const entry *e)
{
    kiln__err err = {0};
    assert_int_equal(kc_put(store, &e->rec, &err), KILN_OK);
    assert_int_equal(err.status, 0);
}

/* Looks only (no claim); returns the outcome and checks a hit byte-exactly against e. */
static inline kc_outcome look(kc_store *store, const entry *e)
{
    kc_outcome outcome = 0;
    void *cubin = (void *)1;
    size_t size = 12345;
    kiln__err err = {0};
    assert_int_equal(kc_acquire(store, e->rec.key, e->key_text, -1, &outcome, &cubin, &size, &err),
                     KILN_OK);
    if (outcome == KC_HIT) {
        assert_non_null(cubin);
        assert_int_equal(size, e->rec.cubin_size);
        assert_memory_equal(cubin, e->cubin, size);
    } else {
        assert_int_equal(outcome, KC_MISS);
        assert_null(cubin);
        assert_int_equal(size, 0);
    }
    free(cubin);
    return outcome;
}

/* Acquires e's key with a claim, waiting up to claim_timeout_ms for another holder: the
 * outcome must be KC_COMPILE (a miss this caller now builds), with no cubin handed out. */
static inline void claim_to_compile(kc_store *store, const entry *e, int claim_timeout_ms)
{
    kc_outcome outcome = 0;
    void *cubin = NULL;
    size_t size = 0;
    assert_int_equal(
        kc_acquire(store, e->rec.key, e->key_text, claim_timeout_ms, &outcome, &cubin, &size, NULL),
        KILN_OK);
    assert_int_equal(outcome, KC_COMPILE);
    assert_null(cubin);
}

static inline kc_store *open_ok(const char *path_list, int64_t max_bytes)
{
    kc_store *store = NULL;
    kiln__err err = {0};
    int status = kc_open(&store, path_list, max_bytes, &err);
    if (status != KILN_OK)
        fprintf(stderr, "kc_open(%s): %s\n", path_list, err.msg);
    assert_int_equal(status, KILN_OK);
    assert_non_null(store);
    return store;
}

static inline sqlite3 *raw_open(const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/kernels.db", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    return db;
}

/* The first column of sql's first row, with ?1 bound to key when key is non-NULL. */
static inline int64_t raw_int(sqlite3 *db, const char *sql, const uint8_t *key)
{
    sqlite3_stmt *stmt = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    if (key != NULL)
        sqlite3_bind_blob(stmt, 1, key, 16, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    int64_t value = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return value;
}

static inline void raw_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "%s: %s\n", sql, msg);
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
}

/* Flips one random byte of the stored cubin of key, behind the store's back. */
static inline void raw_flip_cubin_byte(const char *dir, const entry *e)
{
    sqlite3 *db = raw_open(dir);
    uint8_t *copy = malloc(e->rec.cubin_size);
    assert_non_null(copy);
    memcpy(copy, e->cubin, e->rec.cubin_size);
    uint32_t where;
    random_bytes(&where, sizeof where);
    copy[where % e->rec.cubin_size] ^= (uint8_t)(1u + where % 255u);
    sqlite3_stmt *stmt = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(db, "UPDATE kernels SET cubin = ?2 WHERE key = ?1", -1, &stmt, NULL),
        SQLITE_OK);
    sqlite3_bind_blob(stmt, 1, e->rec.key, 16, SQLITE_STATIC);
    sqlite3_bind_blob(stmt, 2, copy, (int)e->rec.cubin_size, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(stmt), SQLITE_DONE);
    assert_int_equal(sqlite3_changes(db), 1);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    free(copy);
}

/* Files in dir whose name starts with prefix. */
static inline int count_files(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int count = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        count += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return count;
}

static inline uint8_t *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc((size_t)len + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *size = (size_t)len;
    return data;
}

static inline void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    fclose(f);
}

typedef struct stats_seen {
    int roots;
    kc_root_stats first, second;
} stats_seen;

static inline int collect_stats(const kc_root_stats *stats, void *user)
{
    stats_seen *seen = user;
    if (seen->roots == 0)
        seen->first = *stats;
    else if (seen->roots == 1)
        seen->second = *stats;
    seen->roots++;
    return 0;
}

static inline stats_seen stats_of(kc_store *store)
{
    stats_seen seen = {0};
    kiln__err err = {0};
    assert_int_equal(kc_stats(store, collect_stats, &seen, &err), KILN_OK);
    assert_true(seen.roots >= 1);
    return seen;
}

static inline void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}


#endif
