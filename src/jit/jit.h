/*
 * The JIT layer: a specialization (template + typed parameters) -> generated translation
 * unit -> 128-bit key -> NVRTC -> cubin. Knows nothing of devices: it compiles for a
 * named arch, so it runs on machines without a GPU.
 */
#ifndef KILN_JIT_H
#define KILN_JIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

#define KJ_MAX_PARAMS 24
#define KJ_KEY_SCHEMA 1

/* A kernel template: one .cuh under src/templates with an extern "C" entry point whose
 * compile-time parameters are read from `namespace kp` (all `long long`). */
typedef struct kj_template {
    const char *name;  /* "quant_per_token" */
    const char *file;  /* path under src/templates, "quant.cuh" */
    const char *entry; /* extern "C" kernel name */
    const char *params[KJ_MAX_PARAMS]; /* names, in spec order; NULL-terminated */
    bool waits_on_grid; /* calls griddepcontrol.wait: launch with PDL */
    int64_t example[KJ_MAX_PARAMS]; /* values that compile; tests build every template */
} kj_template;

enum kj_template_id {
    KJ_QUANT_PER_TOKEN = 0,
    KJ_QUANT_PER_BLOCK,
    KJ_SF_TRANSPOSE,
    KJ_GEMM_FP8,
    KJ_GEMM_BF16,
    KJ_NUM_TEMPLATES
};

extern const kj_template kj_templates[KJ_NUM_TEMPLATES];

/* A specialization. POD; build it zero-initialised (kj_spec_init) so that equal specs are
 * equal bytes: the runtime hashes and compares it bytewise. */
typedef struct kj_spec {
    uint32_t template_id;
    uint32_t num_params;
    int64_t values[KJ_MAX_PARAMS];
} kj_spec;

void kj_spec_init(kj_spec *spec, enum kj_template_id id);
/* Set a parameter by name; false if the template has no such parameter. */
bool kj_spec_set(kj_spec *spec, const char *name, int64_t value);

/* The embedded template files (generated at build time). */
typedef struct kj_file {
    const char *path; /* relative to src/templates */
    const char *text;
    size_t size;
    uint64_t hash; /* XXH3-64 of text */
} kj_file;
extern const kj_file kj_files[];
extern const int kj_num_files;

/* The generated translation unit for spec. Caller frees with kiln__str_free. */
int kj_source(const kj_spec *spec, kiln__str *out, kiln__err *err);

/* The NVRTC options for arch; a NULL-terminated static array. */
const char *const *kj_options(const char *arch, int *count);

/* Key = XXH3-128 over the canonical record (key_text): cache schema, library version,
 * the hash of every embedded template file, template name and parameters, NVRTC
 * version, arch, options. Each line is length-prefixed ("<len>:<name>=<value>\n"). */
int kj_key(const kj_spec *spec, const char *arch, uint8_t key[16], kiln__str *key_text,
           kiln__err *err);

/* Like kj_key but over explicit inputs; exposed for golden-vector tests. */
void kj_key_from_text(const char *key_text, size_t len, uint8_t key[16]);

typedef struct kj_output {
    void *cubin;
    size_t cubin_size;
    char *log; /* NVRTC log (ptxas -v lines included) */
    int registers, spills, smem_bytes;
    /* Local memory per thread beyond spills: a register array indexed at run time (a loop
     * ptxas did not unroll) lands here, not in the spill counts. */
    int stack_bytes;
    double compile_ms;
} kj_output;

/* Compile spec for arch. KILN_ERR_COMPILE with the log's tail in err on failure. When
 * dump_dir is non-NULL, the source, log and cubin are written there. */
int kj_compile(const kj_spec *spec, const char *arch, const char *dump_dir, kj_output *out,
               kiln__err *err);
void kj_output_free(kj_output *out);

/* "13.0" */
const char *kj_nvrtc_version(void);
void kj_nvrtc_version_numbers(int *major, int *minor);

/* Parse the "ptxas info : Used 40 registers, ... 8 bytes spill stores" lines of a log for
 * entry into out's registers, spills, smem_bytes and stack_bytes (-1 where absent). */
void kj_parse_ptxas(const char *log, const char *entry, kj_output *out);

#endif
