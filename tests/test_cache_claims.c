/*
 * Kernel cache store: claims across processes and threads (single-flight compiles, stale
 * claims), and bad arguments to every function.
 */
#include "cache_fixture.h"

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
        cmocka_unit_test_setup_teardown(test_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_processes_race_one_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_race_one_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
