/* kiln-pick-census: the FP8 decode and masked configurations that the picks and the
 * benchmark's --sweep lists produce over a sweep of shapes, and the prefill K split's, each
 * compiled once (no GPU) with ptxas's spills. Stop 58 found the 184-column tiles spilling
 * this way (docs/gemm_fp8_notes.md).
 *   kiln-pick-census list           one line per distinct configuration:
 *                                   pick|alt CONFIG N K   (the first shape that produced it)
 *   kiln-pick-census compile [DIR]  compiles the lines of stdin (as `list` prints them) and
 *                                   appends "spills S stack T" to each; DIR: each kernel's
 *                                   source, PTX and cubin go there (scripts/sass_loops.py)
 * CONFIG is BMxBN/stages/k_split/cluster_k/overlap/unroll/multicast/multicast_a/grouping/group_n
 * (each compiled as launches without b_ready would take it).
 * scripts/pick-census.sh runs both on every CPU and lists the configurations that spill. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/jit/jit.h"
#include "../src/runtime/gemm_config.h"

enum { TABLE = 1 << 14 };

typedef struct seen {
    kiln__gemm_config cfg;
    int64_t n, k;
    int used, pick;
} seen;

static seen table[TABLE];
static int distinct;

static uint64_t hash(const kiln__gemm_config *c)
{
    const unsigned char *p = (const unsigned char *)c;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof *c; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* Records cfg (zeroed padding: every config is built from a zeroed struct) once. */
static void note(const kiln__gemm_config *cfg, int64_t n, int64_t k, int pick)
{
    for (uint64_t i = hash(cfg) % TABLE;; i = (i + 1) % TABLE) {
        seen *s = &table[i];
        if (!s->used) {
            if (distinct >= TABLE / 2) {
                fprintf(stderr, "kiln-pick-census: more than %d configurations\n", TABLE / 2);
                exit(1);
            }
            *s = (seen){.cfg = *cfg, .n = n, .k = k, .used = 1, .pick = pick};
            distinct++;
            return;
        }
        if (memcmp(&s->cfg, cfg, sizeof *cfg) == 0) {
            s->pick |= pick;
            return;
        }
    }
}

static void note_all(const kiln__gemm_config *list, int count, int64_t n, int64_t k, int pick)
{
    for (int i = 0; i < count; i++)
        note(&list[i], n, k, pick && i == 0);
}

static void list(void)
{
    static const int64_t ks[] = {512, 1024, 1536, 2048, 4096, 7168, 16384};
    static const int64_t groups[] = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256};
    const int nk = (int)(sizeof ks / sizeof ks[0]), ng = (int)(sizeof groups / sizeof groups[0]);
    kiln__gemm_config alt[KILN_GEMM_FP8_MAX_ALTERNATIVES];
    for (int64_t m = 1; m <= 128; m++)
        for (int64_t n = 16; n <= 32768; n += 16)
            for (int i = 0; i < nk; i++) {
                /* the dense launch's decode configuration (kiln__gemm_fp8_dense_config) */
                kiln__gemm_config c = kiln__gemm_fp8_pick(m, n, ks[i], 132);
                kiln__gemm_fp8_share_a(&c, m, n, ks[i], 132);
                if (kiln__gemm_fp8_overlaps(&c, NULL))
                    kiln__gemm_fp8_unroll_short_loop(&c, m, ks[i]);
                note(&c, n, ks[i], 1);
                if (m % 16 == 1 || m == 64 || m == 128)
                    note_all(alt,
                             kiln__gemm_fp8_alternatives(m, n, ks[i], 132, alt,
                                                         KILN_GEMM_FP8_MAX_ALTERNATIVES),
                             n, ks[i], 0);
            }
    /* prefill with fewer tiles than SMs: the dense launch's K splits and narrow tiles */
    for (int64_t m = 129; m <= 2048; m += 127)
        for (int64_t n = 16; n <= 8192; n += 16)
            for (int i = 0; i < nk; i++) {
                kiln__gemm_config c = kiln__gemm_fp8_pick(m, n, ks[i], 132);
                if (kiln__gemm_fp8_m_blocks_decode(&c, m, n, ks[i], 132) ||
                    (!kiln__gemm_fp8_try_tall(&c, m, n, ks[i], 1, 132, KILN__TALL_ANY) &&
                     (kiln__gemm_fp8_prefill_k_split(&c, m, n, ks[i], 132) ||
                      kiln__gemm_fp8_prefill_narrow(&c, m, n, ks[i], 132))))
                    note(&c, n, ks[i], 1);
            }
    for (int g = 0; g < ng; g++)
        for (int64_t m = 1; m <= 256; m += m < 16 ? 1 : 3)
            for (int64_t n = 16; n <= 8192; n += 16)
                for (int i = 0; i < nk; i++) /* the first is the pick below 256 rows */
                    note_all(alt,
                             kiln__gemm_fp8_masked_alternatives(groups[g], m, m, n, ks[i], 132, alt,
                                                                KILN_GEMM_FP8_MAX_ALTERNATIVES),
                             n, ks[i], m <= 128);
    for (int i = 0; i < TABLE; i++) {
        const seen *s = &table[i];
        if (!s->used)
            continue;
        const kiln__gemm_config *c = &s->cfg;
        printf("%s %dx%d/%d/%d/%d/%d/%d/%d/%d/%d/%d %lld %lld\n", s->pick ? "pick" : "alt",
               c->block_m, c->block_n, c->stages, c->k_split, c->cluster_k, c->overlap, c->unroll,
               c->multicast, c->multicast_a, c->grouping, c->group_n, (long long)s->n,
               (long long)s->k);
    }
    fprintf(stderr, "%d configurations\n", distinct);
}

static int compile(const char *dir)
{
    char line[256], kind[8];
    int failed = 0;
    while (fgets(line, sizeof line, stdin)) {
        kiln__gemm_config c = {0};
        long long n, k;
        if (sscanf(line, "%7s %dx%d/%d/%d/%d/%d/%d/%d/%d/%d/%d %lld %lld", kind, &c.block_m,
                   &c.block_n, &c.stages, &c.k_split, &c.cluster_k, &c.overlap, &c.unroll,
                   &c.multicast, &c.multicast_a, &c.grouping, &c.group_n, &n, &k) != 14) {
            fprintf(stderr, "kiln-pick-census: bad line: %s", line);
            return 2;
        }
        line[strcspn(line, "\n")] = '\0';
        kj_spec spec;
        kj_output out;
        kiln__err err = {0};
        kiln__gemm_fp8_spec(&spec, NULL, n, k, &c);
        if (kj_compile(&spec, "sm_90a", dir, &out, &err) != KILN_OK) {
            printf("%s failed: %s\n", line, err.msg);
            failed = 1;
        } else {
            printf("%s spills %d stack %d\n", line, out.spills, out.stack_bytes);
            kj_output_free(&out);
        }
        fflush(stdout);
    }
    return failed;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "list") == 0) {
        list();
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "compile") == 0)
        return compile(argc >= 3 ? argv[2] : NULL);
    fprintf(stderr, "usage: kiln-pick-census list | compile [DIR]\n");
    return 2;
}
