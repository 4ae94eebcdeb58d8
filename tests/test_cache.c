/*
 * Kernel cache store: round trips, verification and quarantine, corrupt files, eviction,
 * layered roots, claims across processes and threads, and bad arguments. Every test gets
 * a fresh directory and fresh random data.
 */
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

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
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

static int teardown(void **state)
{
    fixture *fx = *state;
    nftw(fx->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static void random_bytes(void *out, size_t n)
{
    uint8_t *p = out;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        assert_true(got > 0);
        p += got;
        n -= (size_t)got;
    }
}

static uint64_t splitmix64(uint64_t *state)
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

static void entry_make(entry *e, size_t cubin_size, size_t source_size)
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

static void entry_free(entry *e)
{
    free(e->cubin);
    free(e->source);
}

static void put_ok(kc_store *store, const entry *e)
{
    kiln__err err = {0};
    assert_int_equal(kc_put(store, &e->rec, &err), KILN_OK);
    assert_int_equal(err.status, 0);
}

/* Looks only (no claim); returns the outcome and checks a hit byte-exactly against e. */
static kc_outcome look(kc_store *store, const entry *e)
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

static kc_store *open_ok(const char *path_list, int64_t max_bytes)
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

static sqlite3 *raw_open(const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/kernels.db", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    return db;
}

/* The first column of sql's first row, with ?1 bound to key when key is non-NULL. */
static int64_t raw_int(sqlite3 *db, const char *sql, const uint8_t *key)
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

static void raw_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "%s: %s\n", sql, msg);
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
}

/* Flips one random byte of the stored cubin of key, behind the store's back. */
static void raw_flip_cubin_byte(const char *dir, const entry *e)
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
static int count_files(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int count = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        count += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return count;
}

static uint8_t *read_file(const char *path, size_t *size)
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

static void write_file(const char *path, const void *data, size_t size)
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

static int collect_stats(const kc_root_stats *stats, void *user)
{
    stats_seen *seen = user;
    if (seen->roots == 0)
        seen->first = *stats;
    else if (seen->roots == 1)
        seen->second = *stats;
    seen->roots++;
    return 0;
}

static stats_seen stats_of(kc_store *store)
{
    stats_seen seen = {0};
    kiln__err err = {0};
    assert_int_equal(kc_stats(store, collect_stats, &seen, &err), KILN_OK);
    assert_true(seen.roots >= 1);
    return seen;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- round trips ---- */

typedef struct rows_seen {
    int count;
    kc_row last;
    char key_text[128], template_name[32];
} rows_seen;

static int collect_rows(const kc_row *row, void *user)
{
    rows_seen *seen = user;
    seen->count++;
    seen->last = *row;
    snprintf(seen->key_text, sizeof seen->key_text, "%s", row->key_text);
    snprintf(seen->template_name, sizeof seen->template_name, "%s", row->template_name);
    seen->last.key_text = seen->key_text;
    seen->last.template_name = seen->template_name;
    return 0;
}

static void test_round_trip(void **state)
{
    fixture *fx = *state;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/made/on/demand", fx->dir);
    entry e, cold;
    entry_make(&e, 10000 + (size_t)(rand() % 5000), 3000);
    entry_make(&cold, 100, 10);

    kc_store *store = open_ok(dir, 0);
    char file[160];
    snprintf(file, sizeof file, "%s/kernels.db", dir);
    assert_string_equal(kc_writable_path(store), file);
    assert_int_equal(look(store, &cold), KC_MISS);
    int64_t before = (int64_t)time(NULL) * 1000;
    put_ok(store, &e);
    assert_int_equal(look(store, &e), KC_HIT);
    assert_int_equal(look(store, &cold), KC_MISS);

    rows_seen seen = {0};
    assert_int_equal(kc_list(store, collect_rows, &seen, NULL), KILN_OK);
    assert_int_equal(seen.count, 1);
    assert_memory_equal(seen.last.key, e.rec.key, 16);
    assert_string_equal(seen.key_text, e.key_text);
    assert_string_equal(seen.template_name, e.template_name);
    assert_int_equal(seen.last.cubin_bytes, e.rec.cubin_size);
    assert_int_equal(seen.last.source_bytes, strlen(e.source));
    assert_int_equal(seen.last.registers, e.rec.registers);
    assert_int_equal(seen.last.spills, e.rec.spills);
    assert_int_equal(seen.last.smem_bytes, e.rec.smem_bytes);
    assert_true(seen.last.compile_ms == e.rec.compile_ms);
    assert_int_equal(seen.last.hits, 1);
    assert_true(seen.last.created >= before && seen.last.last_used > seen.last.created);
    assert_true(seen.last.writable);
    kc_close(store);

    /* Persistent, WAL on a local file system, every column as stored. */
    store = open_ok(dir, 0);
    assert_int_equal(look(store, &e), KC_HIT);
    kc_close(store);
    sqlite3 *db = raw_open(dir);
    sqlite3_stmt *stmt = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(stmt, 0), "wal");
    sqlite3_finalize(stmt);
    assert_int_equal(raw_int(db, "SELECT value FROM meta WHERE name='schema_version'", NULL),
                     KC_SCHEMA_VERSION);
    assert_int_equal(raw_int(db, "SELECT hits FROM kernels WHERE key = ?1", e.rec.key), 2);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT source, cubin, key_text, arch FROM kernels", -1,
                                        &stmt, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(stmt, 0), e.source);
    assert_int_equal(sqlite3_column_bytes(stmt, 1), e.rec.cubin_size);
    assert_memory_equal(sqlite3_column_blob(stmt, 1), e.cubin, e.rec.cubin_size);
    assert_string_equal((const char *)sqlite3_column_text(stmt, 2), e.key_text);
    assert_string_equal((const char *)sqlite3_column_text(stmt, 3), "sm_90a");
    assert_int_equal(sqlite3_step(stmt), SQLITE_DONE);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    entry_free(&e);
    entry_free(&cold);
}

static void test_put_replaces(void **state)
{
    fixture *fx = *state;
    entry first, second;
    entry_make(&first, 5000, 100);
    entry_make(&second, 7000, 100);
    memcpy(second.rec.key, first.rec.key, 16);
    memcpy(second.key_text, first.key_text, sizeof first.key_text);
    kc_store *store = open_ok(fx->dir, 0);
    put_ok(store, &first);
    assert_int_equal(look(store, &first), KC_HIT);
    put_ok(store, &second);
    assert_int_equal(look(store, &second), KC_HIT);
    assert_int_equal(stats_of(store).first.entries, 1);
    kc_close(store);
    entry_free(&first);
    entry_free(&second);
}

/* ---- verification and quarantine ---- */

static void test_key_text_mismatch(void **state)
{
    fixture *fx = *state;
    entry e;
    entry_make(&e, 4096, 200);
    kc_store *store = open_ok(fx->dir, 0);
    put_ok(store, &e);

    kc_outcome outcome = 0;
    void *cubin = NULL;
    size_t size = 0;
    char other_text[160];
    snprintf(other_text, sizeof other_text, "%s|collides", e.key_text);
    assert_int_equal(kc_acquire(store, e.rec.key, other_text, -1, &outcome, &cubin, &size, NULL),
                     KILN_OK);
    assert_int_equal(outcome, KC_MISS);
    assert_null(cubin);
    stats_seen seen = stats_of(store);
    assert_int_equal(seen.first.quarantined, 1);
    assert_int_equal(seen.first.entries, 0);
    assert_int_equal(look(store, &e), KC_MISS);

    sqlite3 *db = raw_open(fx->dir);
    assert_int_equal(raw_int(db,
                             "SELECT count(*) FROM quarantine WHERE key = ?1 AND key_text = "
                             "(SELECT key_text FROM quarantine) AND reason LIKE '%key text%'",
                             e.rec.key),
                     1);
    sqlite3_close(db);
    kc_close(store);
    entry_free(&e);
}

static void test_flipped_cubin_byte(void **state)
{
    fixture *fx = *state;
    entry e, other;
    entry_make(&e, 9000, 500);
    entry_make(&other, 3000, 500);
    kc_store *store = open_ok(fx->dir, 0);
    put_ok(store, &e);
    put_ok(store, &other);
    assert_int_equal(look(store, &e), KC_HIT);
    raw_flip_cubin_byte(fx->dir, &e);

    assert_int_equal(look(store, &e), KC_MISS);
    assert_int_equal(stats_of(store).first.quarantined, 1);
    assert_int_equal(look(store, &other), KC_HIT);

    /* The key is cold again: claim it, rebuild, and hit. */
    kc_outcome outcome = 0;
    void *cubin = NULL;
    size_t size = 0;
    assert_int_equal(kc_acquire(store, e.rec.key, e.key_text, 5000, &outcome, &cubin, &size, NULL),
                     KILN_OK);
    assert_int_equal(outcome, KC_COMPILE);
    put_ok(store, &e);
    assert_int_equal(look(store, &e), KC_HIT);
    assert_int_equal(stats_of(store).first.quarantined, 1);
    kc_close(store);
    entry_free(&e);
    entry_free(&other);
}

typedef struct bad_seen {
    int count;
    uint8_t keys[8][16];
} bad_seen;

static int collect_bad(const kc_row *row, void *user)
{
    bad_seen *seen = user;
    if (seen->count < 8)
        memcpy(seen->keys[seen->count], row->key, 16);
    seen->count++;
    return 0;
}

static bool bad_seen_has(const bad_seen *seen, const uint8_t key[16])
{
    for (int i = 0; i < seen->count && i < 8; i++) {
        if (memcmp(seen->keys[i], key, 16) == 0)
            return true;
    }
    return false;
}

static void test_verify(void **state)
{
    fixture *fx = *state;
    enum { N = 6 };
    entry e[N];
    kc_store *store = open_ok(fx->dir, 0);
    for (int i = 0; i < N; i++) {
        entry_make(&e[i], 2000 + 1000 * (size_t)i, 300);
        put_ok(store, &e[i]);
    }
    raw_flip_cubin_byte(fx->dir, &e[1]);
    raw_flip_cubin_byte(fx->dir, &e[4]);

    bad_seen seen = {0};
    int64_t checked = -1, bad = -1;
    kiln__err err = {0};
    assert_int_equal(kc_verify(store, collect_bad, &seen, &checked, &bad, &err), KILN_OK);
    assert_int_equal(checked, N);
    assert_int_equal(bad, 2);
    assert_int_equal(seen.count, 2);
    assert_true(bad_seen_has(&seen, e[1].rec.key));
    assert_true(bad_seen_has(&seen, e[4].rec.key));
    stats_seen stats = stats_of(store);
    assert_int_equal(stats.first.entries, N - 2);
    assert_int_equal(stats.first.quarantined, 2);
    assert_int_equal(look(store, &e[1]), KC_MISS);
    assert_int_equal(look(store, &e[0]), KC_HIT);

    assert_int_equal(kc_verify(store, NULL, NULL, &checked, &bad, NULL), KILN_OK);
    assert_int_equal(checked, N - 2);
    assert_int_equal(bad, 0);
    kc_close(store);
    for (int i = 0; i < N; i++)
        entry_free(&e[i]);
}

static void test_quarantine_call(void **state)
{
    fixture *fx = *state;
    entry e;
    entry_make(&e, 3000, 100);
    kc_store *store = open_ok(fx->dir, 0);
    put_ok(store, &e);
    kc_quarantine(store, e.rec.key, "driver refused the cubin");
    assert_int_equal(look(store, &e), KC_MISS);
    sqlite3 *db = raw_open(fx->dir);
    assert_int_equal(raw_int(db,
                             "SELECT count(*) FROM quarantine WHERE key = ?1 AND"
                             " reason = 'driver refused the cubin'",
                             e.rec.key),
                     1);
    sqlite3_close(db);
    kc_close(store);
    entry_free(&e);
}

/* ---- corrupt files ---- */

static void fill_and_close(const char *dir, entry *e, int n)
{
    kc_store *store = open_ok(dir, 0);
    for (int i = 0; i < n; i++) {
        entry_make(&e[i], 20000, 2000);
        put_ok(store, &e[i]);
    }
    kc_close(store);
}

/* After a bad file was found: it was moved aside, old entries miss, new ones work. */
static void check_recovered(kc_store *store, const char *dir, entry *old, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(look(store, &old[i]), KC_MISS);
    assert_int_equal(count_files(dir, "kernels.db.corrupt-"), 1);
    entry fresh;
    entry_make(&fresh, 5000, 100);
    put_ok(store, &fresh);
    assert_int_equal(look(store, &fresh), KC_HIT);
    assert_int_equal(stats_of(store).first.entries, 1);
    entry_free(&fresh);
}

static void test_truncated_file(void **state)
{
    fixture *fx = *state;
    const off_t sizes[2] = {0 /* half */, 100};
    for (int k = 0; k < 2; k++) {
        char dir[128];
        snprintf(dir, sizeof dir, "%s/t%d", fx->dir, k);
        entry e[5];
        fill_and_close(dir, e, 5);
        char path[160];
        snprintf(path, sizeof path, "%s/kernels.db", dir);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_true(st.st_size > 5 * 20000);
        assert_int_equal(truncate(path, sizes[k] ? sizes[k] : st.st_size / 2), 0);

        kc_store *store = open_ok(dir, 0);
        assert_int_equal(count_files(dir, "kernels.db.corrupt-"), 1); /* found at open */
        check_recovered(store, dir, e, 5);
        kc_close(store);
        for (int i = 0; i < 5; i++)
            entry_free(&e[i]);
    }
}

static void test_garbage_file(void **state)
{
    fixture *fx = *state;
    char path[160], aside[400];
    snprintf(path, sizeof path, "%s/kernels.db", fx->dir);
    uint8_t garbage[8192];
    random_bytes(garbage, sizeof garbage);
    write_file(path, garbage, sizeof garbage);

    kc_store *store = open_ok(fx->dir, 0);
    assert_int_equal(count_files(fx->dir, "kernels.db.corrupt-"), 1); /* found at open */
    check_recovered(store, fx->dir, NULL, 0);
    kc_close(store);
    /* The bad file is kept, byte for byte, for a post-mortem. */
    DIR *d = opendir(fx->dir);
    assert_non_null(d);
    aside[0] = '\0';
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (strncmp(de->d_name, "kernels.db.corrupt-", 19) == 0)
            snprintf(aside, sizeof aside, "%s/%s", fx->dir, de->d_name);
    }
    closedir(d);
    size_t size = 0;
    uint8_t *kept = read_file(aside, &size);
    assert_int_equal(size, sizeof garbage);
    assert_memory_equal(kept, garbage, size);
    free(kept);
}

/* Damage found by a later statement, not at open: the kernels table's root page. */
static void test_corrupt_after_open(void **state)
{
    fixture *fx = *state;
    entry e[3];
    fill_and_close(fx->dir, e, 3);
    sqlite3 *db = raw_open(fx->dir);
    int64_t page = raw_int(db, "SELECT rootpage FROM sqlite_master WHERE name = 'kernels'", NULL);
    int64_t page_size = raw_int(db, "PRAGMA page_size", NULL);
    sqlite3_close(db);

    kc_store *store = open_ok(fx->dir, 0);
    assert_int_equal(count_files(fx->dir, "kernels.db.corrupt-"), 0);
    char path[160];
    snprintf(path, sizeof path, "%s/kernels.db", fx->dir);
    uint8_t *garbage = malloc((size_t)page_size);
    assert_non_null(garbage);
    random_bytes(garbage, (size_t)page_size);
    garbage[0] = 0x42; /* not a valid b-tree page type */
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, garbage, (size_t)page_size, (off_t)((page - 1) * page_size)),
                     page_size);
    close(fd);
    free(garbage);

    check_recovered(store, fx->dir, e, 3);
    kc_close(store);
    for (int i = 0; i < 3; i++)
        entry_free(&e[i]);
}

static void test_schema_mismatch(void **state)
{
    fixture *fx = *state;
    entry e[1];
    fill_and_close(fx->dir, e, 1);
    sqlite3 *db = raw_open(fx->dir);
    raw_exec(db, "UPDATE meta SET value = 99 WHERE name = 'schema_version'");
    sqlite3_close(db);

    kc_store *store = open_ok(fx->dir, 0);
    assert_int_equal(count_files(fx->dir, "kernels.db.old-schema-"), 1);
    assert_int_equal(look(store, &e[0]), KC_MISS);
    put_ok(store, &e[0]);
    assert_int_equal(look(store, &e[0]), KC_HIT);
    kc_close(store);
    db = raw_open(fx->dir);
    assert_int_equal(raw_int(db, "SELECT value FROM meta WHERE name='schema_version'", NULL),
                     KC_SCHEMA_VERSION);
    sqlite3_close(db);
    entry_free(&e[0]);
}

/* ---- size bound ---- */

static void test_evict_lru(void **state)
{
    fixture *fx = *state;
    enum { N = 5, CUBIN = 4000, SOURCE = 1000 };
    const int64_t each = CUBIN + SOURCE, bound = 3 * each + each / 2;
    entry e[N];
    kc_store *store = open_ok(fx->dir, bound);
    for (int i = 0; i < N; i++)
        entry_make(&e[i], CUBIN, SOURCE);
    put_ok(store, &e[0]);
    put_ok(store, &e[1]);
    put_ok(store, &e[2]);
    assert_int_equal(look(store, &e[0]), KC_HIT); /* order by use: 1, 2, 0 */
    put_ok(store, &e[3]);                         /* evicts 1 */
    assert_int_equal(stats_of(store).first.entries, 3);
    put_ok(store, &e[4]); /* evicts 2 */

    stats_seen stats = stats_of(store);
    assert_int_equal(stats.first.entries, 3);
    assert_int_equal(stats.first.bytes, 3 * each);
    assert_true(stats.first.bytes <= bound);
    assert_int_equal(look(store, &e[1]), KC_MISS);
    assert_int_equal(look(store, &e[2]), KC_MISS);
    assert_int_equal(look(store, &e[0]), KC_HIT);
    assert_int_equal(look(store, &e[3]), KC_HIT);
    assert_int_equal(look(store, &e[4]), KC_HIT);
    kc_close(store);

    /* An entry larger than the bound is kept alone rather than refused. */
    entry big;
    entry_make(&big, (size_t)bound * 2, 10);
    store = open_ok(fx->dir, bound);
    put_ok(store, &big);
    assert_int_equal(look(store, &big), KC_HIT);
    assert_int_equal(stats_of(store).first.entries, 1);
    kc_close(store);
    entry_free(&big);
    for (int i = 0; i < N; i++)
        entry_free(&e[i]);
}

static void test_prune_and_clear(void **state)
{
    fixture *fx = *state;
    enum { N = 5 };
    entry e[N];
    kc_store *store = open_ok(fx->dir, 0);
    for (int i = 0; i < N; i++) {
        entry_make(&e[i], 3000, 1000);
        put_ok(store, &e[i]);
    }
    assert_int_equal(look(store, &e[0]), KC_HIT); /* now the most recent */
    int64_t removed = -1;
    kiln__err err = {0};
    assert_int_equal(kc_prune(store, 2 * 4000 + 100, &removed, &err), KILN_OK);
    assert_int_equal(removed, 3);
    assert_int_equal(look(store, &e[0]), KC_HIT);
    assert_int_equal(look(store, &e[4]), KC_HIT);
    for (int i = 1; i < 4; i++)
        assert_int_equal(look(store, &e[i]), KC_MISS);
    assert_int_equal(kc_prune(store, -1, &removed, &err), KILN_ERR_INVALID_ARG);

    put_ok(store, &e[1]);
    kc_quarantine(store, e[1].rec.key, "test");
    put_ok(store, &e[2]);
    assert_int_equal(stats_of(store).first.quarantined, 1);
    kiln__err_clear(&err);
    assert_int_equal(kc_clear(store, &removed, &err), KILN_OK);
    assert_int_equal(removed, 3);
    stats_seen stats = stats_of(store);
    assert_int_equal(stats.first.entries, 0);
    assert_int_equal(stats.first.quarantined, 0);
    assert_int_equal(stats.first.bytes, 0);
    rows_seen rows = {0};
    assert_int_equal(kc_list(store, collect_rows, &rows, NULL), KILN_OK);
    assert_int_equal(rows.count, 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(look(store, &e[i]), KC_MISS);
    kc_close(store);
    for (int i = 0; i < N; i++)
        entry_free(&e[i]);
}

/* ---- layered roots ---- */

static int count_writable(const kc_row *row, void *user)
{
    int *counts = user;
    counts[row->writable ? 0 : 1]++;
    return 0;
}

static void test_layered_roots(void **state)
{
    fixture *fx = *state;
    char rw[128], ro[128], ro_file[160], list[400];
    snprintf(rw, sizeof rw, "%s/rw", fx->dir);
    snprintf(ro, sizeof ro, "%s/ro", fx->dir);
    snprintf(ro_file, sizeof ro_file, "%s/kernels.db", ro);
    snprintf(list, sizeof list, "%s:%s:%s/missing", rw, ro, fx->dir);
    entry shared, bad, local;
    entry_make(&shared, 6000, 400);
    entry_make(&bad, 6000, 400);
    entry_make(&local, 7000, 400);
    kc_store *store = open_ok(ro, 0);
    put_ok(store, &shared);
    put_ok(store, &bad);
    kc_close(store);
    raw_flip_cubin_byte(ro, &bad);
    size_t before_size = 0, after_size = 0;
    uint8_t *before = read_file(ro_file, &before_size);

    store = open_ok(list, 0);
    assert_int_equal(look(store, &shared), KC_HIT);
    assert_int_equal(look(store, &bad), KC_MISS); /* skipped, not quarantined */
    put_ok(store, &local);
    assert_int_equal(look(store, &local), KC_HIT);
    int counts[2] = {0, 0};
    assert_int_equal(kc_list(store, count_writable, counts, NULL), KILN_OK);
    assert_int_equal(counts[0], 1);
    assert_int_equal(counts[1], 2);
    stats_seen stats = stats_of(store);
    assert_int_equal(stats.roots, 2);
    assert_true(stats.first.writable);
    assert_int_equal(stats.first.entries, 1);
    assert_false(stats.second.writable);
    assert_int_equal(stats.second.entries, 2);
    assert_int_equal(stats.second.quarantined, 0);
    kiln__err err = {0};
    int64_t removed = 0;
    assert_int_equal(kc_clear(store, &removed, &err), KILN_OK);
    assert_int_equal(removed, 1);
    assert_int_equal(look(store, &shared), KC_HIT); /* clear touches the writable root only */
    kc_quarantine(store, shared.rec.key, "driver refused it");
    assert_int_equal(look(store, &shared), KC_MISS);
    kc_close(store);

    uint8_t *after = read_file(ro_file, &after_size);
    assert_int_equal(after_size, before_size);
    assert_memory_equal(after, before, before_size);
    free(before);
    free(after);
    entry_free(&shared);
    entry_free(&bad);
    entry_free(&local);
}

static void test_no_writable_root(void **state)
{
    fixture *fx = *state;
    char ro[128], list[200];
    snprintf(ro, sizeof ro, "%s/ro", fx->dir);
    snprintf(list, sizeof list, ":%s", ro);
    entry stored, cold;
    entry_make(&stored, 3000, 100);
    entry_make(&cold, 3000, 100);
    kc_store *store = open_ok(ro, 0);
    put_ok(store, &stored);
    kc_close(store);

    const char *lists[2] = {list, ""};
    for (int k = 0; k < 2; k++) {
        store = open_ok(lists[k], 0);
        assert_null(kc_writable_path(store));
        assert_int_equal(look(store, &stored), k == 0 ? KC_HIT : KC_MISS);
        kc_outcome outcome = 0;
        void *cubin = NULL;
        size_t size = 0;
        double start = now_ms();
        assert_int_equal(
            kc_acquire(store, cold.rec.key, cold.key_text, 5000, &outcome, &cubin, &size, NULL),
            KILN_OK);
        assert_int_equal(outcome, KC_COMPILE);
        assert_true(now_ms() - start < 1000);
        put_ok(store, &cold); /* a no-op */
        assert_int_equal(look(store, &cold), KC_MISS);
        int64_t checked = -1, bad = -1, removed = -1;
        assert_int_equal(kc_verify(store, NULL, NULL, &checked, &bad, NULL), KILN_OK);
        assert_int_equal(checked, 0);
        assert_int_equal(kc_prune(store, 0, &removed, NULL), KILN_OK);
        assert_int_equal(removed, 0);
        kc_close(store);
    }
    entry_free(&stored);
    entry_free(&cold);
}

/* ---- claims ---- */

static pid_t dead_pid(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return pid;
}

/* A process that lives until *release is closed. */
static pid_t live_pid(int *release)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char byte;
        close(fds[1]);
        while (read(fds[0], &byte, 1) < 0 && errno == EINTR) {
        }
        _exit(0);
    }
    close(fds[0]);
    *release = fds[1];
    return pid;
}

static void raw_claim(const char *dir, const uint8_t key[16], int64_t pid, int64_t age_ms)
{
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - age_ms;
    sqlite3 *db = raw_open(dir);
    sqlite3_stmt *stmt = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO claims VALUES(?1, ?2, ?3, ?4)",
                                        -1, &stmt, NULL),
                     SQLITE_OK);
    sqlite3_bind_blob(stmt, 1, key, 16, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, pid);
    sqlite3_bind_text(stmt, 3, host, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 4, time_ms);
    assert_int_equal(sqlite3_step(stmt), SQLITE_DONE);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

static int64_t claim_pid(const char *dir, const uint8_t key[16])
{
    sqlite3 *db = raw_open(dir);
    int64_t pid = raw_int(db, "SELECT coalesce((SELECT pid FROM claims WHERE key = ?1), 0)", key);
    sqlite3_close(db);
    return pid;
}

static kc_outcome acquire_timed(kc_store *store, const entry *e, int timeout_ms, double *ms)
{
    kc_outcome outcome = 0;
    void *cubin = NULL;
    size_t size = 0;
    double start = now_ms();
    assert_int_equal(
        kc_acquire(store, e->rec.key, e->key_text, timeout_ms, &outcome, &cubin, &size, NULL),
        KILN_OK);
    *ms = now_ms() - start;
    free(cubin);
    return outcome;
}

static void test_claims(void **state)
{
    fixture *fx = *state;
    entry dead, live, old, mine;
    entry_make(&dead, 1000, 10);
    entry_make(&live, 1000, 10);
    entry_make(&old, 1000, 10);
    entry_make(&mine, 1000, 10);
    kc_store *store = open_ok(fx->dir, 0);
    double ms = 0;
    int release = -1;
    pid_t other = live_pid(&release);

    /* A dead pid's claim is taken over at once. */
    raw_claim(fx->dir, dead.rec.key, dead_pid(), 0);
    assert_int_equal(acquire_timed(store, &dead, 10000, &ms), KC_COMPILE);
    assert_true(ms < 2000);
    assert_int_equal(claim_pid(fx->dir, dead.rec.key), getpid());
    put_ok(store, &dead); /* releases it */
    assert_int_equal(claim_pid(fx->dir, dead.rec.key), 0);

    /* A live claim that does not age out while we wait (stamped ahead, as by a host whose
     * clock runs fast) makes us wait for the timeout, then compile without claiming. */
    raw_claim(fx->dir, live.rec.key, other, -10000);
    assert_int_equal(acquire_timed(store, &live, 300, &ms), KC_COMPILE);
    assert_true(ms >= 300);
    assert_int_equal(claim_pid(fx->dir, live.rec.key), other);

    /* A live claim older than the timeout is taken over. */
    raw_claim(fx->dir, old.rec.key, other, 60000);
    assert_int_equal(acquire_timed(store, &old, 5000, &ms), KC_COMPILE);
    assert_true(ms < 2000);
    assert_int_equal(claim_pid(fx->dir, old.rec.key), getpid());
    kc_abandon(store, old.rec.key);
    assert_int_equal(claim_pid(fx->dir, old.rec.key), 0);

    /* Our own claim from another thread is live: a second acquire waits it out. */
    assert_int_equal(acquire_timed(store, &mine, 5000, &ms), KC_COMPILE);
    assert_int_equal(acquire_timed(store, &mine, 200, &ms), KC_COMPILE);
    assert_true(ms >= 200);
    /* A look-only acquire never claims. */
    assert_int_equal(look(store, &live), KC_MISS);
    kc_abandon(store, mine.rec.key);
    assert_int_equal(claim_pid(fx->dir, mine.rec.key), 0);
    kc_close(store);
    close(release);
    int status = 0;
    assert_int_equal(waitpid(other, &status, 0), other);
    entry_free(&dead);
    entry_free(&live);
    entry_free(&old);
    entry_free(&mine);
}

/* The cubin a racer "compiles" for key: deterministic, so all racers agree. */
static size_t derived_cubin(const uint8_t key[16], uint8_t *out, size_t cap)
{
    uint64_t seed;
    memcpy(&seed, key, sizeof seed);
    size_t size = 3000 + key[8] * 8u;
    for (size_t i = 0; i < size && i < cap; i += 8) {
        uint64_t word = splitmix64(&seed);
        memcpy(out + i, &word, size - i < 8 ? size - i : 8);
    }
    return size;
}

enum { RACER_COMPILED = 10, RACER_HIT = 11 };

/* One racing process: waits for the start, acquires, maybe compiles, reads back. */
static int racer(const char *dir, int index, int start_fd, const entry *e)
{
    char byte;
    while (read(start_fd, &byte, 1) < 0 && errno == EINTR) {
    }
    kc_store *store = NULL;
    if (kc_open(&store, dir, 0, NULL) != KILN_OK)
        return 2;
    uint8_t expect[8192];
    size_t expect_size = derived_cubin(e->rec.key, expect, sizeof expect);
    kc_outcome outcome = 0;
    void *cubin = NULL;
    size_t size = 0;
    int code = 3;
    if (kc_acquire(store, e->rec.key, e->key_text, 20000, &outcome, &cubin, &size, NULL) != KILN_OK)
        return 4;
    if (outcome == KC_COMPILE) {
        sleep_ms(200);
        kc_record rec = e->rec;
        rec.cubin = expect;
        rec.cubin_size = expect_size;
        code = kc_put(store, &rec, NULL) == KILN_OK ? RACER_COMPILED : 5;
    } else if (outcome == KC_HIT) {
        code = size == expect_size && memcmp(cubin, expect, size) == 0 ? RACER_HIT : 6;
    }
    free(cubin);
    cubin = NULL;
    if (kc_acquire(store, e->rec.key, e->key_text, -1, &outcome, &cubin, &size, NULL) != KILN_OK ||
        outcome != KC_HIT)
        code = 7;
    char path[256];
    snprintf(path, sizeof path, "%s/racer-%d.bin", dir, index);
    FILE *f = fopen(path, "wb");
    if (f == NULL || (cubin != NULL && fwrite(cubin, 1, size, f) != size))
        code = 8;
    if (f != NULL)
        fclose(f);
    free(cubin);
    kc_close(store);
    return code;
}

static void test_processes_race_one_key(void **state)
{
    fixture *fx = *state;
    entry e;
    entry_make(&e, 16, 16);
    int start[2];
    assert_int_equal(pipe(start), 0);
    pid_t pids[NUM_RACERS];
    for (int i = 0; i < NUM_RACERS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(start[1]);
            _exit(racer(fx->dir, i, start[0], &e));
        }
    }
    close(start[0]);
    close(start[1]); /* every racer's read returns at once */
    int compiled = 0, hits = 0;
    for (int i = 0; i < NUM_RACERS; i++) {
        int status = 0;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        compiled += WEXITSTATUS(status) == RACER_COMPILED;
        hits += WEXITSTATUS(status) == RACER_HIT;
        if (WEXITSTATUS(status) != RACER_COMPILED && WEXITSTATUS(status) != RACER_HIT)
            fprintf(stderr, "racer %d exited %d\n", i, WEXITSTATUS(status));
    }
    assert_int_equal(compiled, 1);
    assert_int_equal(hits, NUM_RACERS - 1);

    uint8_t expect[8192];
    size_t expect_size = derived_cubin(e.rec.key, expect, sizeof expect);
    for (int i = 0; i < NUM_RACERS; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/racer-%d.bin", fx->dir, i);
        size_t size = 0;
        uint8_t *got = read_file(path, &size);
        assert_int_equal(size, expect_size);
        assert_memory_equal(got, expect, size);
        free(got);
    }
    sqlite3 *db = raw_open(fx->dir);
    sqlite3_stmt *stmt = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(stmt, 0), "ok");
    sqlite3_finalize(stmt);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM kernels", NULL), 1);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM claims", NULL), 0);
    assert_int_equal(raw_int(db, "SELECT hits FROM kernels", NULL), 2 * NUM_RACERS - 1);
    sqlite3_close(db);
    entry_free(&e);
}

typedef struct thread_race {
    kc_store *store;
    const entry *e;
    pthread_mutex_t lock;
    int compiled, hits, failures;
} thread_race;

static void *thread_racer(void *arg)
{
    thread_race *race = arg;
    kc_outcome outcome = 0;
    void *cubin = NULL;
    size_t size = 0;
    int status = kc_acquire(race->store, race->e->rec.key, race->e->key_text, 20000, &outcome,
                            &cubin, &size, NULL);
    bool compiled = false, hit = false;
    if (status == KILN_OK && outcome == KC_COMPILE) {
        sleep_ms(100);
        compiled = kc_put(race->store, &race->e->rec, NULL) == KILN_OK;
    } else if (status == KILN_OK && outcome == KC_HIT) {
        hit = size == race->e->rec.cubin_size && memcmp(cubin, race->e->cubin, size) == 0;
    }
    free(cubin);
    pthread_mutex_lock(&race->lock);
    race->compiled += compiled;
    race->hits += hit;
    race->failures += !compiled && !hit;
    pthread_mutex_unlock(&race->lock);
    return NULL;
}

static void test_threads_race_one_key(void **state)
{
    fixture *fx = *state;
    entry e;
    entry_make(&e, 5000, 500);
    thread_race race = {.store = open_ok(fx->dir, 0), .e = &e};
    pthread_mutex_init(&race.lock, NULL);
    pthread_t threads[NUM_RACERS];
    for (int i = 0; i < NUM_RACERS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, thread_racer, &race), 0);
    for (int i = 0; i < NUM_RACERS; i++)
        pthread_join(threads[i], NULL);
    assert_int_equal(race.compiled, 1);
    assert_int_equal(race.hits, NUM_RACERS - 1);
    assert_int_equal(race.failures, 0);
    pthread_mutex_destroy(&race.lock);
    kc_close(race.store);
    entry_free(&e);
}

/* ---- bad arguments ---- */

static int never_called(const kc_row *row, void *user)
{
    (void)row;
    ++*(int *)user;
    return 0;
}

static int never_called_stats(const kc_root_stats *stats, void *user)
{
    (void)stats;
    ++*(int *)user;
    return 0;
}

#define EXPECT_INVALID(call)                                                                       \
    do {                                                                                           \
        kiln__err err_ = {0};                                                                      \
        kiln__err *err = &err_;                                                                    \
        assert_int_equal((call), KILN_ERR_INVALID_ARG);                                            \
        assert_int_equal(err_.status, KILN_ERR_INVALID_ARG);                                       \
        assert_true(strlen(err_.msg) > 0);                                                         \
    } while (0)

static void test_null_arguments(void **state)
{
    fixture *fx = *state;
    entry e;
    entry_make(&e, 2000, 100);
    kc_store *store = (kc_store *)&e;
    EXPECT_INVALID(kc_open(NULL, fx->dir, 0, err));
    EXPECT_INVALID(kc_open(&store, NULL, 0, err));
    assert_null(store);
    EXPECT_INVALID(kc_open(&store, fx->dir, -1, err));
    assert_null(store);
    kc_close(NULL);

    store = open_ok(fx->dir, 0);
    kc_outcome outcome = 0;
    void *cubin = NULL;
    size_t size = 0;
    EXPECT_INVALID(kc_acquire(NULL, e.rec.key, e.key_text, 0, &outcome, &cubin, &size, err));
    EXPECT_INVALID(kc_acquire(store, NULL, e.key_text, 0, &outcome, &cubin, &size, err));
    EXPECT_INVALID(kc_acquire(store, e.rec.key, NULL, 0, &outcome, &cubin, &size, err));
    EXPECT_INVALID(kc_acquire(store, e.rec.key, e.key_text, 0, NULL, &cubin, &size, err));
    EXPECT_INVALID(kc_acquire(store, e.rec.key, e.key_text, 0, &outcome, NULL, &size, err));
    EXPECT_INVALID(kc_acquire(store, e.rec.key, e.key_text, 0, &outcome, &cubin, NULL, err));
    assert_int_equal(kc_acquire(NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL), KILN_ERR_INVALID_ARG);

    EXPECT_INVALID(kc_put(NULL, &e.rec, err));
    EXPECT_INVALID(kc_put(store, NULL, err));
    const char **strings[] = {&e.rec.key_text,      &e.rec.template_name, &e.rec.arch,
                              &e.rec.nvrtc_version, &e.rec.options,       &e.rec.source};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        const char *saved = *strings[i];
        *strings[i] = NULL;
        EXPECT_INVALID(kc_put(store, &e.rec, err));
        *strings[i] = saved;
    }
    e.rec.cubin = NULL;
    EXPECT_INVALID(kc_put(store, &e.rec, err));
    e.rec.cubin = e.cubin;
    e.rec.cubin_size = 0;
    EXPECT_INVALID(kc_put(store, &e.rec, err));
    e.rec.cubin_size = 2000;
    assert_int_equal(stats_of(store).first.entries, 0);

    kc_abandon(NULL, e.rec.key);
    kc_abandon(store, NULL);
    kc_quarantine(NULL, e.rec.key, "x");
    kc_quarantine(store, NULL, "x");
    kc_quarantine(store, e.rec.key, NULL);

    int calls = 0;
    EXPECT_INVALID(kc_list(NULL, never_called, &calls, err));
    EXPECT_INVALID(kc_list(store, NULL, &calls, err));
    EXPECT_INVALID(kc_stats(NULL, never_called_stats, &calls, err));
    EXPECT_INVALID(kc_stats(store, NULL, &calls, err));
    int64_t checked = -1, bad = -1, removed = -1;
    EXPECT_INVALID(kc_verify(NULL, never_called, &calls, &checked, &bad, err));
    assert_int_equal(checked, 0);
    assert_int_equal(bad, 0);
    EXPECT_INVALID(kc_prune(NULL, 0, &removed, err));
    assert_int_equal(removed, 0);
    EXPECT_INVALID(kc_clear(NULL, &removed, err));
    assert_null(kc_writable_path(NULL));
    assert_int_equal(calls, 0);

    /* Optional pointers may be NULL, and the store still works after all of the above. */
    assert_int_equal(kc_verify(store, NULL, NULL, NULL, NULL, NULL), KILN_OK);
    assert_int_equal(kc_prune(store, 0, NULL, NULL), KILN_OK);
    assert_int_equal(kc_clear(store, NULL, NULL), KILN_OK);
    put_ok(store, &e);
    assert_int_equal(look(store, &e), KC_HIT);
    kc_close(store);

    /* A writable root that cannot be created. */
    char blocked[160];
    snprintf(blocked, sizeof blocked, "%s/file", fx->dir);
    write_file(blocked, "x", 1);
    strcat(blocked, "/sub");
    kiln__err err = {0};
    store = (kc_store *)&e;
    assert_int_equal(kc_open(&store, blocked, 0, &err), KILN_ERR_CACHE);
    assert_null(store);
    assert_true(strlen(err.msg) > 0);
    entry_free(&e);
}

int main(void)
{
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_replaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_text_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_cubin_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quarantine_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_after_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evict_lru, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_and_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layered_roots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_writable_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_processes_race_one_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_race_one_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
