/* The public API without a GPU: options and knobs, compile-only contexts, prewarm through
 * the cache (hit, KILN_JIT=0 miss, checksum failure -> recompile), and every public
 * function with NULL or invalid arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "kiln/kiln.h"

static char cache_dir[256];

static int setup_cache(void **state)
{
    (void)state;
    snprintf(cache_dir, sizeof cache_dir, "/tmp/kiln-test-runtime-XXXXXX");
    assert_non_null(mkdtemp(cache_dir));
    return 0;
}

static int remove_cache(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static kiln_ctx *compile_only_ctx(int jit)
{
    kiln_options opts;
    assert_int_equal(kiln_options_init(&opts), KILN_OK);
    opts.device = KILN_DEVICE_NONE;
    opts.cache_path = cache_dir;
    opts.jit = jit;
    kiln_ctx *ctx = NULL;
    kiln_status status = kiln_ctx_create(&ctx, &opts);
    if (status != KILN_OK)
        fail_msg("kiln_ctx_create: %s", kiln_last_errmsg());
    return ctx;
}

/* KILN_GEMM_PREFILL_K_SPLIT picks the kernel of a prefill shape with few tiles (512x576x7168:
 * 20 tiles, split over clusters of 4 by default), FP8 and BF16, so a cache prewarmed with it
 * on misses with it off, and the knob's default is what the prewarm took. */
static void test_prefill_k_split_knob_picks_kernels(void **state)
{
    (void)state;
    static const char *const lines[] = {"gemm_fp8 m=512 n=576 k=7168",
                                        "gemm_bf16 m=512 n=576 k=7168"};
    for (int i = 0; i < 2; i++) {
        kiln_ctx *ctx = compile_only_ctx(1);
        assert_int_equal(kiln_prewarm(ctx, lines[i], NULL), KILN_OK);
        kiln_ctx_destroy(ctx);

        kiln_options opts;
        assert_int_equal(kiln_options_init(&opts), KILN_OK);
        assert_int_equal(opts.gemm_prefill_k_split, 1);
        opts.device = KILN_DEVICE_NONE;
        opts.cache_path = cache_dir;
        opts.jit = 0;
        for (int split = 1; split >= 0; split--) {
            opts.gemm_prefill_k_split = split;
            assert_int_equal(kiln_ctx_create(&ctx, &opts), KILN_OK);
            int cached = -1;
            if (kiln_prewarm(ctx, lines[i], &cached) != (split ? KILN_OK : KILN_ERR_MISS))
                fail_msg("%s with the split %s: %s", lines[i], split ? "on" : "off",
                         kiln_ctx_errmsg(ctx));
            if (split)
                assert_true(cached >= 1);
            kiln_ctx_destroy(ctx);
        }
    }
}

static void test_status_and_version(void **state)
{
    (void)state;
    assert_int_equal(kiln_version_number(), KILN_VERSION_NUMBER);
    assert_non_null(strchr(kiln_version_string(), '.'));
    for (int s = 0; s <= KILN_ERR_INTERNAL; s++) {
        const char *name = kiln_status_str((kiln_status)s);
        assert_non_null(name);
        assert_memory_equal(name, "KILN_", 5);
        for (int t = 0; t < s; t++)
            assert_string_not_equal(name, kiln_status_str((kiln_status)t));
    }
    assert_string_equal(kiln_status_str((kiln_status)999), "KILN_ERR_UNKNOWN_STATUS");
}

/* Each knob rejects a bad value with KILN_ERR_ENV and a message naming the variable. */
static void test_bad_environment_values(void **state)
{
    (void)state;
    static const struct {
        const char *name, *bad;
    } cases[] = {
        {"KILN_CACHE_MAX_MB", "abc"}, {"KILN_CACHE_MAX_MB", "-5"}, {"KILN_JIT", "maybe"},
        {"KILN_PDL", "2"},            {"KILN_NUM_SMS", "12x"},     {"KILN_NUM_SMS", "-1"},
        {"KILN_LOG", "loud"},         {"KILN_CLAIM_TIMEOUT_MS", "1e3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv(cases[i].name, cases[i].bad, 1);
        kiln_options opts;
        assert_int_equal(kiln_options_init(&opts), KILN_ERR_ENV);
        assert_non_null(strstr(kiln_last_errmsg(), cases[i].name));
        kiln_ctx *ctx = (kiln_ctx *)0x1;
        assert_int_equal(kiln_ctx_create(&ctx, NULL), KILN_ERR_ENV);
        assert_null(ctx);
        unsetenv(cases[i].name);
    }
}

/* explicit > environment > default */
static void test_option_precedence(void **state)
{
    (void)state;
    kiln_options opts;
    unsetenv("KILN_NUM_SMS");
    assert_int_equal(kiln_options_init(&opts), KILN_OK);
    assert_int_equal(opts.num_sms, 0);
    assert_int_equal(opts.jit, 1);
    assert_int_equal(opts.pdl, 1);
    assert_string_equal(opts.arch, "sm_90a");
    setenv("KILN_NUM_SMS", "77", 1);
    setenv("KILN_JIT", "off", 1);
    setenv("KILN_LOG", "debug", 1);
    assert_int_equal(kiln_options_init(&opts), KILN_OK);
    assert_int_equal(opts.num_sms, 77);
    assert_int_equal(opts.jit, 0);
    assert_int_equal(opts.log_level, KILN_LOG_DEBUG);
    unsetenv("KILN_JIT");
    unsetenv("KILN_LOG");
    opts.num_sms = 100; /* explicit wins over the environment */
    opts.device = KILN_DEVICE_NONE;
    opts.cache_path = cache_dir;
    opts.log_level = KILN_LOG_ERROR;
    kiln_ctx *ctx = NULL;
    assert_int_equal(kiln_ctx_create(&ctx, &opts), KILN_OK);
    kiln_ctx_info info;
    assert_int_equal(kiln_ctx_get_info(ctx, &info), KILN_OK);
    assert_int_equal(info.num_sms, 100);
    assert_int_equal(info.has_device, 0);
    assert_string_equal(info.arch, "sm_90a");
    assert_true(info.nvrtc_major >= 12);
    kiln_ctx_destroy(ctx);
    unsetenv("KILN_NUM_SMS");

    for (int i = 0; kiln_knob(i) != NULL; i++)
        assert_memory_equal(kiln_knob(i)->env, "KILN_", 5);
    assert_null(kiln_knob(-1));
}

/* A writable root that cannot be created does not stop a context: it warns and compiles
 * without storing. */
static void test_unusable_cache_root(void **state)
{
    (void)state;
    kiln_options opts;
    assert_int_equal(kiln_options_init(&opts), KILN_OK);
    opts.device = KILN_DEVICE_NONE;
    opts.cache_path = "/proc/no-such-dir/kiln";
    opts.log_level = KILN_LOG_OFF;
    kiln_ctx *ctx = NULL;
    assert_int_equal(kiln_ctx_create(&ctx, &opts), KILN_OK);
    int cached = -1;
    assert_int_equal(kiln_prewarm(ctx, "sf_transpose", &cached), KILN_OK);
    assert_int_equal(cached, 0);
    assert_int_equal(kiln_prewarm(ctx, "sf_transpose", &cached), KILN_OK);
    assert_int_equal(cached, 0); /* nothing could be stored */
    kiln_ctx_destroy(ctx);
}

static void test_unsupported_arch(void **state)
{
    (void)state;
    kiln_options opts;
    assert_int_equal(kiln_options_init(&opts), KILN_OK);
    opts.device = KILN_DEVICE_NONE;
    opts.arch = "sm_80";
    kiln_ctx *ctx = NULL;
    assert_int_equal(kiln_ctx_create(&ctx, &opts), KILN_ERR_UNSUPPORTED);
    assert_non_null(strstr(kiln_last_errmsg(), "sm_80"));
    assert_null(ctx);
}

static int count_entry(const kiln_cache_entry *e, void *user)
{
    assert_int_equal(strlen(e->key), 32);
    (*(int *)user)++;
    return 0;
}

static int cache_entries(kiln_ctx *ctx)
{
    int n = 0;
    assert_int_equal(kiln_cache_list(ctx, count_entry, &n), KILN_OK);
    return n;
}

static void flip_one_cubin_byte(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/kernels.db", cache_dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    /* XOR one byte in the middle of every stored cubin. */
    sqlite3_stmt *read;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT key, cubin FROM kernels", -1, &read, NULL),
                     SQLITE_OK);
    while (sqlite3_step(read) == SQLITE_ROW) {
        int size = sqlite3_column_bytes(read, 1);
        unsigned char *cubin = malloc((size_t)size);
        memcpy(cubin, sqlite3_column_blob(read, 1), (size_t)size);
        cubin[size / 2] ^= 0x40;
        sqlite3_stmt *write;
        assert_int_equal(
            sqlite3_prepare_v2(db, "UPDATE kernels SET cubin = ?1 WHERE key = ?2", -1, &write, NULL),
            SQLITE_OK);
        sqlite3_bind_blob(write, 1, cubin, size, SQLITE_TRANSIENT);
        sqlite3_bind_blob(write, 2, sqlite3_column_blob(read, 0), sqlite3_column_bytes(read, 0),
                          SQLITE_TRANSIENT);
        assert_int_equal(sqlite3_step(write), SQLITE_DONE);
        sqlite3_finalize(write);
        free(cubin);
    }
    sqlite3_finalize(read);
    sqlite3_close(db);
}

static void test_prewarm_cache_and_jit_off(void **state)
{
    (void)state;
    int k = 128 * (1 + rand() % 60);
    char line[128];
    snprintf(line, sizeof line, "quant_fp8_per_token k=%d", k);

    kiln_ctx *ctx = compile_only_ctx(1);
    int cached = -1;
    assert_int_equal(kiln_prewarm(ctx, line, &cached), KILN_OK);
    assert_int_equal(cached, 0);
    assert_int_equal(cache_entries(ctx), 1);
    assert_int_equal(kiln_prewarm(ctx, line, &cached), KILN_OK);
    assert_int_equal(cached, 1);
    kiln_ctx_destroy(ctx);

    /* A fresh context (as a fresh process would) finds it; with JIT off a new shape is a
     * miss, named in the message. */
    ctx = compile_only_ctx(0);
    assert_int_equal(kiln_prewarm(ctx, line, &cached), KILN_OK);
    assert_int_equal(cached, 1);
    snprintf(line, sizeof line, "quant_fp8_per_token k=%d", k + 128);
    assert_int_equal(kiln_prewarm(ctx, line, &cached), KILN_ERR_MISS);
    assert_non_null(strstr(kiln_ctx_errmsg(ctx), "KILN_JIT=0"));
    assert_non_null(strstr(kiln_ctx_errmsg(ctx), "quant_per_token"));
    assert_int_equal(cache_entries(ctx), 1);
    kiln_ctx_destroy(ctx);
}

static void test_flipped_cubin_byte_recompiles(void **state)
{
    (void)state;
    kiln_ctx *ctx = compile_only_ctx(1);
    int cached = -1;
    assert_int_equal(kiln_prewarm(ctx, "quant_fp8_per_block k=1536", &cached), KILN_OK);
    assert_int_equal(cached, 0);
    flip_one_cubin_byte();
    assert_int_equal(kiln_prewarm(ctx, "quant_fp8_per_block k=1536", &cached), KILN_OK);
    assert_int_equal(cached, 0); /* checksum failed: quarantined and compiled again */
    assert_int_equal(kiln_prewarm(ctx, "quant_fp8_per_block k=1536", &cached), KILN_OK);
    assert_int_equal(cached, 1);
    int64_t checked = 0, bad = -1;
    assert_int_equal(kiln_cache_verify(ctx, NULL, NULL, &checked, &bad), KILN_OK);
    assert_int_equal(checked, 1);
    assert_int_equal(bad, 0);
    kiln_ctx_destroy(ctx);
}

static void test_bad_spec_lines(void **state)
{
    (void)state;
    kiln_ctx *ctx = compile_only_ctx(1);
    static const struct {
        const char *line, *named;
    } cases[] = {
        {"no_such_op k=128", "no_such_op"},
        {"quant_fp8_per_token", "k="},
        {"quant_fp8_per_token k=100", "K = 100"},
        /* Values past what a launch accepts: refused by name, before any pick arithmetic. */
        {"quant_fp8_per_block k=4294967296", "K = 4294967296"},
        {"gemm_fp8 m=9223372036854775807 n=4096 k=7168", "M = 9223372036854775807"},
        {"gemm_fp8 m=0 n=4096 k=7168", "M = 0"},
        {"gemm_fp8 m=64 n=4096 k=4611686018427387904", "K = 4611686018427387904"},
        {"gemm_fp8_masked g=4611686018427387904 m=8 n=4096 k=7168", "G = 4611686018427387904"},
        {"gemm_fp8_masked g=32 m=16777217 n=4096 k=7168", "M_max = 16777217"},
        {"gemm_fp8_contig m=8192 n=4096 k=7168 align=128 g=70000", "G = 70000"},
        {"gemm_fp8_contig m=8192 n=4096 k=7168 align=1099511627776", "align = 1099511627776"},
        {"gemm_bf16 m=9223372036854775807 n=512 k=128", "M = 9223372036854775807"},
        {"gemm_bf16 m=64 n=512 k=128 layout=4", "layout=4"},
        {"gemm_bf16_masked g=32 m=4611686018427387904 n=4096 k=7168",
         "M_max = 4611686018427387904"},
        {"gemm_bf16_contig m=4611686018427387904 n=4096 k=7168", "M = 4611686018427387904"},
        {"gemm_bf16_contig m=8192 n=4096 k=7168 align=100", "align = 100"},
        {"quant_fp8_per_token k=12x", "12x"},
        {"quant_fp8_per_token k=128 bogus=1", "bogus"},
        {"quant_fp8_per_token kay", "kay"},
        {"", "unknown operator"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(kiln_prewarm(ctx, cases[i].line, NULL), KILN_ERR_INVALID_ARG);
        if (strstr(kiln_ctx_errmsg(ctx), cases[i].named) == NULL)
            fail_msg("\"%s\": message \"%s\" does not name \"%s\"", cases[i].line,
                     kiln_ctx_errmsg(ctx), cases[i].named);
        assert_int_equal(kiln_prewarm(ctx, "sf_transpose", NULL), KILN_OK);
        assert_string_equal(kiln_ctx_errmsg(ctx), ""); /* success forgets the error */
    }
    kiln_ctx_destroy(ctx);
}

/* 8 processes prewarm one cold line at once: one compiles, the others find its entry. */
static void test_processes_race_one_compile(void **state)
{
    (void)state;
    char line[128];
    snprintf(line, sizeof line, "quant_fp8_per_token k=%d", 128 * (100 + rand() % 900));
    int go[2];
    assert_int_equal(pipe(go), 0);
    enum { CHILDREN = 8 };
    pid_t pids[CHILDREN];
    for (int i = 0; i < CHILDREN; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            char byte;
            close(go[1]);
            if (read(go[0], &byte, 1) != 0) /* wait for the parent to close the pipe */
                _exit(3);
            kiln_options opts;
            kiln_options_init(&opts);
            opts.device = KILN_DEVICE_NONE;
            opts.cache_path = cache_dir;
            kiln_ctx *ctx = NULL;
            int cached = -1;
            if (kiln_ctx_create(&ctx, &opts) != KILN_OK || kiln_prewarm(ctx, line, &cached) != KILN_OK)
                _exit(2);
            kiln_ctx_destroy(ctx);
            _exit(cached ? 0 : 1); /* 1: this process compiled */
        }
    }
    close(go[0]);
    close(go[1]);
    int compiled = 0;
    for (int i = 0; i < CHILDREN; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_true(WEXITSTATUS(status) <= 1);
        compiled += WEXITSTATUS(status);
    }
    assert_int_equal(compiled, 1);
    kiln_ctx *ctx = compile_only_ctx(1);
    assert_int_equal(cache_entries(ctx), 1);
    kiln_ctx_destroy(ctx);
}

/* KILN_DUMP_DIR receives the generated source, the log and the cubin of each compile. */
static void test_dump_dir(void **state)
{
    (void)state;
    char dump[300];
    snprintf(dump, sizeof dump, "%s/dump", cache_dir);
    setenv("KILN_DUMP_DIR", dump, 1);
    kiln_ctx *ctx = compile_only_ctx(1);
    unsetenv("KILN_DUMP_DIR");
    assert_int_equal(kiln_prewarm(ctx, "quant_fp8_per_block k=512", NULL), KILN_OK);
    kiln_ctx_destroy(ctx);
    int cu = 0, cubin = 0, log = 0;
    DIR *dir = opendir(dump);
    assert_non_null(dir);
    for (struct dirent *e = readdir(dir); e != NULL; e = readdir(dir)) {
        const char *dot = strrchr(e->d_name, '.');
        if (strncmp(e->d_name, "quant_per_block-", 16) != 0 || dot == NULL)
            continue;
        cu += strcmp(dot, ".cu") == 0;
        cubin += strcmp(dot, ".cubin") == 0;
        log += strcmp(dot, ".log") == 0;
    }
    closedir(dir);
    assert_int_equal(cu, 1);
    assert_int_equal(cubin, 1);
    assert_int_equal(log, 1);
}

static int stop_walk(const kiln_cache_stats *s, void *user)
{
    (void)s;
    (void)user;
    return 0;
}

/* Every public function with NULL and invalid arguments: an error, never a crash. */
static void test_null_and_invalid_arguments(void **state)
{
    (void)state;
    assert_int_equal(kiln_options_init(NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_ctx_create(NULL, NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_device_count(NULL), KILN_ERR_INVALID_ARG);
    kiln_ctx_destroy(NULL);
    assert_non_null(kiln_ctx_errmsg(NULL));
    assert_int_equal(kiln_ctx_get_info(NULL, NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_prewarm(NULL, "sf_transpose", NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_cache_list(NULL, count_entry, NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_cache_stats_each(NULL, stop_walk, NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_cache_verify(NULL, NULL, NULL, NULL, NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_cache_prune(NULL, 0, NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_cache_clear(NULL, NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_quant_fp8_per_token(NULL, NULL, NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_quant_fp8_per_block(NULL, NULL, NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_sf_transpose(NULL, NULL, NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_sf_mn_stride(-3), 0);
    assert_int_equal(kiln_sf_mn_stride(5), 8);

    kiln_options opts;
    assert_int_equal(kiln_options_init(&opts), KILN_OK);
    opts.device = -7;
    kiln_ctx *ctx = NULL;
    assert_int_equal(kiln_ctx_create(&ctx, &opts), KILN_ERR_INVALID_ARG);
    assert_non_null(strstr(kiln_last_errmsg(), "device -7"));

    ctx = compile_only_ctx(1);
    assert_int_equal(kiln_ctx_get_info(ctx, NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_prewarm(ctx, NULL, NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_cache_list(ctx, NULL, NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_cache_stats_each(ctx, NULL, NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_cache_prune(ctx, -1, NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_quant_fp8_per_token(ctx, NULL, NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_sf_transpose(ctx, NULL, NULL), KILN_ERR_INVALID_ARG);
    /* Empty arguments on a compile-only context: named before the missing device is (the
     * successful call first forgets the errors above, so the message is this one's). */
    assert_int_equal(kiln_cache_clear(ctx, NULL), KILN_OK);
    kiln_quant_fp8_args q = {0};
    assert_int_equal(kiln_quant_fp8_per_token(ctx, &q, NULL), KILN_ERR_INVALID_ARG);
    assert_non_null(strstr(kiln_ctx_errmsg(ctx), "x.data is NULL"));
    kiln_sf_transpose_args t = {0};
    assert_int_equal(kiln_sf_transpose(ctx, &t, NULL), KILN_ERR_INVALID_ARG);
    assert_int_equal(kiln_cache_prune(ctx, 0, NULL), KILN_OK);
    assert_int_equal(kiln_cache_clear(ctx, NULL), KILN_OK);
    kiln_ctx_destroy(ctx);
}

int main(void)
{
    srand((unsigned)getpid());
    unsetenv("KILN_JIT");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_and_version),
        cmocka_unit_test(test_bad_environment_values),
        cmocka_unit_test_setup_teardown(test_option_precedence, setup_cache, remove_cache),
        cmocka_unit_test(test_unsupported_arch),
        cmocka_unit_test(test_unusable_cache_root),
        cmocka_unit_test_setup_teardown(test_prewarm_cache_and_jit_off, setup_cache, remove_cache),
        cmocka_unit_test_setup_teardown(test_prefill_k_split_knob_picks_kernels, setup_cache,
                                        remove_cache),
        cmocka_unit_test_setup_teardown(test_flipped_cubin_byte_recompiles, setup_cache,
                                        remove_cache),
        cmocka_unit_test_setup_teardown(test_bad_spec_lines, setup_cache, remove_cache),
        cmocka_unit_test_setup_teardown(test_processes_race_one_compile, setup_cache,
                                        remove_cache),
        cmocka_unit_test_setup_teardown(test_dump_dir, setup_cache, remove_cache),
        cmocka_unit_test_setup_teardown(test_null_and_invalid_arguments, setup_cache,
                                        remove_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
