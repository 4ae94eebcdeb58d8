/*
 * Kernel cache store: round trips, verification and quarantine, corrupt files, eviction and
 * layered roots. Every test gets a fresh directory and fresh random data.
 */
#include "cache_fixture.h"

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
    claim_to_compile(store, &e, 5000);
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

/* A bad row that cannot be quarantined (here a trigger refuses the insert; in the field a
 * damaged schema did) is compiled over at once: the claim wait does not poll it until the
 * claim timeout, an hour here, which would run the test past its own timeout. */
static void test_unquarantinable_row(void **state)
{
    fixture *fx = *state;
    entry e;
    entry_make(&e, 3000, 100);
    kc_store *store = open_ok(fx->dir, 0);
    put_ok(store, &e);
    sqlite3 *db = raw_open(fx->dir);
    raw_exec(db, "CREATE TRIGGER refuse BEFORE INSERT ON quarantine"
                 " BEGIN SELECT RAISE(ABORT, 'refused'); END");
    sqlite3_close(db);
    raw_flip_cubin_byte(fx->dir, &e);

    claim_to_compile(store, &e, 3600 * 1000);
    put_ok(store, &e); /* replaces the bad row */
    assert_int_equal(look(store, &e), KC_HIT);
    assert_int_equal(stats_of(store).first.quarantined, 0);
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

/* Damage PRAGMA quick_check misses: the key index no longer holds the rows (its root page
 * swapped with an empty index's), so lookups miss them and deletes by key cannot remove
 * them. kc_verify finds it and moves the file aside. */
static void test_index_damage(void **state)
{
    fixture *fx = *state;
    entry e[3];
    fill_and_close(fx->dir, e, 3);
    sqlite3 *db = raw_open(fx->dir);
    raw_exec(db, "CREATE TABLE spare(key BLOB PRIMARY KEY NOT NULL)");
    const char *root_of = "SELECT rootpage FROM sqlite_master WHERE name = ";
    char sql[512];
    snprintf(sql, sizeof sql, "%s'sqlite_autoindex_kernels_1'", root_of);
    int64_t kernels_index = raw_int(db, sql, NULL);
    snprintf(sql, sizeof sql, "%s'sqlite_autoindex_spare_1'", root_of);
    int64_t spare_index = raw_int(db, sql, NULL);
    snprintf(sql, sizeof sql,
             "PRAGMA writable_schema = ON; UPDATE sqlite_master SET rootpage = CASE name"
             " WHEN 'sqlite_autoindex_kernels_1' THEN %lld ELSE %lld END"
             " WHERE name IN ('sqlite_autoindex_kernels_1', 'sqlite_autoindex_spare_1')",
             (long long)spare_index, (long long)kernels_index);
    raw_exec(db, sql);
    sqlite3_close(db);

    kc_store *store = open_ok(fx->dir, 0);
    assert_int_equal(look(store, &e[0]), KC_MISS);
    int64_t checked = -1, bad = -1;
    kiln__err err = {0};
    assert_int_equal(kc_verify(store, NULL, NULL, &checked, &bad, &err), KILN_ERR_CACHE);
    assert_non_null(strstr(err.msg, "moved aside"));
    check_recovered(store, fx->dir, e, 3);
    kc_close(store);
    for (int i = 0; i < 3; i++)
        entry_free(&e[i]);
}

/* A file damage_sql changed is moved aside as another schema; the new file works. */
static void check_old_schema_replaced(const char *dir, const char *damage_sql)
{
    entry e;
    fill_and_close(dir, &e, 1);
    sqlite3 *db = raw_open(dir);
    raw_exec(db, damage_sql);
    sqlite3_close(db);

    kc_store *store = open_ok(dir, 0);
    assert_int_equal(count_files(dir, "kernels.db.old-schema-"), 1);
    assert_int_equal(look(store, &e), KC_MISS);
    put_ok(store, &e);
    assert_int_equal(look(store, &e), KC_HIT);
    kc_quarantine(store, e.rec.key, "the new file's quarantine works");
    assert_int_equal(stats_of(store).first.quarantined, 1);
    kc_close(store);
    db = raw_open(dir);
    assert_int_equal(raw_int(db, "SELECT value FROM meta WHERE name='schema_version'", NULL),
                     KC_SCHEMA_VERSION);
    sqlite3_close(db);
    entry_free(&e);
}

static void test_schema_mismatch(void **state)
{
    fixture *fx = *state;
    check_old_schema_replaced(fx->dir, "UPDATE meta SET value = 99 WHERE name = 'schema_version'");
}

/* The right version with altered tables (a flipped byte in the schema text did this). */
static void test_damaged_schema(void **state)
{
    fixture *fx = *state;
    check_old_schema_replaced(fx->dir, "ALTER TABLE quarantine RENAME COLUMN key_text TO text");
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
        double start = now_ms();
        claim_to_compile(store, &cold, 5000);
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
        cmocka_unit_test_setup_teardown(test_unquarantinable_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_after_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_damage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evict_lru, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_and_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layered_roots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_writable_root, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
