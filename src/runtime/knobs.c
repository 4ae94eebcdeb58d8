/* The knob table: one row per tuning knob drives the defaults, the environment parsing,
 * the bounds checks and `kiln --help`. */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "internal.h"

enum knob_kind { KNOB_INT, KNOB_BOOL, KNOB_STRING, KNOB_LOG_LEVEL };

typedef struct knob {
    kiln_knob_info info;
    enum knob_kind kind;
    size_t offset; /* into kiln_options */
    int64_t min, max;
} knob;

#define OPT(field) offsetof(kiln_options, field)

static const knob knobs[] = {
    {{"KILN_CACHE_PATH", "path list", "$XDG_CACHE_HOME/kiln or ~/.cache/kiln",
      "kernel cache roots, colon-separated: the first is writable, the rest read-only"},
     KNOB_STRING, OPT(cache_path), 0, 0},
    {{"KILN_CACHE_MAX_MB", "int", "1024",
      "size bound of the writable cache root in MiB (least recently used evicted); 0 = none"},
     KNOB_INT, OPT(cache_max_mb), 0, 1 << 24},
    {{"KILN_JIT", "bool", "1", "0: never compile; a cache miss is the error KILN_ERR_MISS"},
     KNOB_BOOL, OPT(jit), 0, 1},
    {{"KILN_PDL", "bool", "1", "programmatic dependent launch for kernels that support it"},
     KNOB_BOOL, OPT(pdl), 0, 1},
    {{"KILN_NUM_SMS", "int", "0", "SMs the persistent kernels use; 0 = all of the device's"},
     KNOB_INT, OPT(num_sms), 0, 1024},
    {{"KILN_ARCH", "string", "sm_90a", "target arch when compiling without a device"},
     KNOB_STRING, OPT(arch), 0, 0},
    {{"KILN_LOG", "level", "warn", "log level on stderr: off, error, warn, info, debug (or 0-4)"},
     KNOB_LOG_LEVEL, OPT(log_level), 0, 4},
    {{"KILN_DUMP_DIR", "path", "(unset)",
      "write each compiled kernel's generated source, NVRTC log, PTX and cubin there"},
     KNOB_STRING, OPT(dump_dir), 0, 0},
    {{"KILN_CLAIM_TIMEOUT_MS", "int", "60000",
      "how long to wait for another process compiling the same kernel before compiling too"},
     KNOB_INT, OPT(claim_timeout_ms), 0, 3600000},
    {{"KILN_GEMM_OVERLAP", "bool", "1",
      "FP8 GEMMs: issue the next K block's wgmma before promoting the last (where registers "
      "allow); off, 128 x 128 prefill tiles have their two warpgroups issue in turn"},
     KNOB_BOOL, OPT(gemm_overlap), 0, 1},
    {{"KILN_GEMM_MULTICAST", "bool", "0",
      "FP8 GEMMs with M > 128: 2-CTA clusters share each B tile by TMA multicast"},
     KNOB_BOOL, OPT(gemm_multicast), 0, 1},
    {{"KILN_GEMM_TALL_TILES", "int", "1",
      "FP8 GEMMs with M > 128: taller prefill tiles than 128 x 128, without overlap: 192 x 128 "
      "(three math warpgroups issuing in turn) "
      "or 256 x 128 (two warpgroups taking two 64-row groups each): 0 never, 1 the height "
      "that takes the least time by rounds of tiles over the SMs times a tile's measured time "
      "(by height, K and grouped layout; contiguous groups: counted per group), 2 always 192, "
      "3 always 256; masked groups take no 192-row tiles"},
     KNOB_INT, OPT(gemm_tall_tiles), 0, 3},
    {{"KILN_GEMM_PREFILL_K_SPLIT", "bool", "1",
      "FP8 and BF16 GEMMs (dense) with M > 128 in fewer 128-row tiles than SMs (K >= 2048): "
      "each tile's K split over a cluster of 2, 4 or 8 CTAs, the largest whose clusters all fit "
      "at once (8 only where they take at most half of the SMs; FP8 tiles just over the "
      "clusters of 2 widen to 144 columns at K >= 4096; with M = 129-384 both first try "
      "decode's narrow tiles in two or three m blocks, each over its share of the SMs, where "
      "they split K (BF16 with A K-major in two m blocks: unsplit 128-row tiles of 48-128 "
      "columns instead, where as many CTAs fit); BF16 NT or TT with M > 384 and K 2048-8192 "
      "first tries one round of 64 x 96 tiles whose A and B loads two producer warps issue, "
      "where they fill more than half of the SMs; tiles in one round with SMs idle and no "
      "split narrow to 64 or 96 columns, BF16's where a fit of their memory traffic says that "
      "pays, or (BF16 NT in two m blocks) to the width between 96 and 128 that fills the SMs)"},
     KNOB_BOOL, OPT(gemm_prefill_k_split), 0, 1},
};
#define NUM_KNOBS (int)(sizeof knobs / sizeof knobs[0])

const kiln_knob_info *kiln_knob(int index)
{
    return index >= 0 && index < NUM_KNOBS ? &knobs[index].info : NULL;
}

static int parse_int(const char *text, int64_t *value)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        return -1;
    *value = v;
    return 0;
}

static int parse_bool(const char *text, int64_t *value)
{
    static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0)
            return *value = 1, 0;
        if (strcasecmp(text, no[i]) == 0)
            return *value = 0, 0;
    }
    return -1;
}

static int parse_level(const char *text, int64_t *value)
{
    static const char *names[] = {"off", "error", "warn", "info", "debug"};
    for (int i = 0; i < 5; i++)
        if (strcasecmp(text, names[i]) == 0)
            return *value = i, 0;
    return parse_int(text, value);
}

static void store(kiln_options *opts, const knob *k, int64_t value)
{
    char *field = (char *)opts + k->offset;
    if (k->kind == KNOB_INT && k->offset == OPT(cache_max_mb))
        *(int64_t *)(void *)field = value;
    else
        *(int *)(void *)field = (int)value;
}

/* The default cache root; thread-local so concurrent callers do not share a buffer. */
static const char *default_cache_path(void)
{
    static _Thread_local char path[4096];
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg != NULL && xdg[0] == '/')
        snprintf(path, sizeof path, "%s/kiln", xdg);
    else if (home != NULL && home[0] != '\0')
        snprintf(path, sizeof path, "%s/.cache/kiln", home);
    else
        snprintf(path, sizeof path, "/tmp/kiln-cache-%d", (int)getuid());
    return path;
}

kiln_status kiln_options_init(kiln_options *opts)
{
    kiln__err err = {0};
    if (opts == NULL) {
        kiln__err_set(&err, KILN_ERR_INVALID_ARG, "kiln_options_init: opts is NULL");
        kiln__set_last_error(&err);
        return KILN_ERR_INVALID_ARG;
    }
    *opts = (kiln_options){
        .device = 0,
        .cache_path = default_cache_path(),
        .cache_max_mb = 1024,
        .jit = 1,
        .pdl = 1,
        .num_sms = 0,
        .arch = "sm_90a",
        .log_level = KILN_LOG_WARN,
        .dump_dir = NULL,
        .claim_timeout_ms = 60000,
        .gemm_overlap = 1,
        .gemm_tall_tiles = 1,
        .gemm_prefill_k_split = 1,
    };
    for (int i = 0; i < NUM_KNOBS; i++) {
        const knob *k = &knobs[i];
        const char *text = getenv(k->info.env);
        if (text == NULL)
            continue;
        if (k->kind == KNOB_STRING) {
            *(const char **)(void *)((char *)opts + k->offset) = text;
            continue;
        }
        int64_t value = 0;
        int bad = k->kind == KNOB_BOOL        ? parse_bool(text, &value)
                  : k->kind == KNOB_LOG_LEVEL ? parse_level(text, &value)
                                              : parse_int(text, &value);
        if (bad || value < k->min || value > k->max) {
            kiln__err_set(&err, KILN_ERR_ENV,
                          "environment variable %s has a bad value \"%s\" (expected %s in "
                          "[%lld, %lld])",
                          k->info.env, text, k->info.type, (long long)k->min, (long long)k->max);
            kiln__set_last_error(&err);
            return KILN_ERR_ENV;
        }
        store(opts, k, value);
    }
    return KILN_OK;
}
