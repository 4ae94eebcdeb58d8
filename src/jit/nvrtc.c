/* NVRTC: compile one generated translation unit to a cubin, keep the ptxas report. */
#include <nvrtc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "jit.h"
#include "kiln/kiln.h"

static char nvrtc_version_text[32];
static pthread_once_t nvrtc_version_once = PTHREAD_ONCE_INIT;

static void read_nvrtc_version(void)
{
    int major = 0, minor = 0;
    kj_nvrtc_version_numbers(&major, &minor);
    snprintf(nvrtc_version_text, sizeof nvrtc_version_text, "%d.%d", major, minor);
}

/* Written once, before any reader sees it: keys are built from many threads at once. */
const char *kj_nvrtc_version(void)
{
    pthread_once(&nvrtc_version_once, read_nvrtc_version);
    return nvrtc_version_text;
}

void kj_nvrtc_version_numbers(int *major, int *minor)
{
    if (nvrtcVersion(major, minor) != NVRTC_SUCCESS)
        *major = *minor = 0;
}

/* Reads the first integer before `suffix` in the span [from, to). */
static int number_before(const char *from, const char *to, const char *suffix)
{
    const char *hit = strstr(from, suffix);
    if (hit == NULL || hit >= to)
        return -1;
    const char *p = hit;
    while (p > from && p[-1] == ' ')
        p--;
    while (p > from && p[-1] >= '0' && p[-1] <= '9')
        p--;
    return atoi(p);
}

void kj_parse_ptxas(const char *log, const char *entry, kj_output *out)
{
    out->registers = out->spills = out->smem_bytes = out->stack_bytes = -1;
    if (log == NULL)
        return;
    char marker[256];
    snprintf(marker, sizeof marker, "Compiling entry function '%s'", entry);
    const char *from = strstr(log, marker);
    if (from == NULL)
        return;
    const char *to = strstr(from + 1, "Compiling entry function");
    if (to == NULL)
        to = from + strlen(from);
    int stores = number_before(from, to, " bytes spill stores");
    int loads = number_before(from, to, " bytes spill loads");
    out->spills = stores < 0 ? -1 : stores + (loads > 0 ? loads : 0);
    out->stack_bytes = number_before(from, to, " bytes stack frame");
    out->registers = number_before(from, to, " registers");
    int smem = number_before(from, to, " bytes smem");
    out->smem_bytes = smem < 0 ? 0 : smem;
}

static void dump_file(const char *dir, const char *name, const char *ext, const void *data,
                      size_t size)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.%s", dir, name, ext);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        kiln__log(KILN__LOG_WARN, "KILN_DUMP_DIR: cannot write %s", path);
        return;
    }
    fwrite(data, 1, size, f);
    fclose(f);
}

static void dump_all(const char *dir, const char *tmpl, const kiln__str *src, nvrtcProgram prog,
                     const char *log, const void *cubin, size_t cubin_size)
{
    mkdir(dir, 0755);
    char name[256];
    snprintf(name, sizeof name, "%s-%016llx", tmpl,
             (unsigned long long)XXH3_64bits(src->data, src->len));
    dump_file(dir, name, "cu", src->data, src->len);
    if (log != NULL)
        dump_file(dir, name, "log", log, strlen(log));
    if (cubin != NULL)
        dump_file(dir, name, "cubin", cubin, cubin_size);
    size_t ptx_size = 0;
    if (nvrtcGetPTXSize(prog, &ptx_size) == NVRTC_SUCCESS && ptx_size > 1) {
        char *ptx = malloc(ptx_size);
        if (ptx != NULL && nvrtcGetPTX(prog, ptx) == NVRTC_SUCCESS)
            dump_file(dir, name, "ptx", ptx, ptx_size - 1);
        free(ptx);
    }
}

static char *program_log(nvrtcProgram prog)
{
    size_t size = 0;
    if (nvrtcGetProgramLogSize(prog, &size) != NVRTC_SUCCESS || size == 0)
        return NULL;
    char *log = malloc(size + 1);
    if (log != NULL && nvrtcGetProgramLog(prog, log) != NVRTC_SUCCESS)
        log[0] = '\0';
    if (log != NULL)
        log[size] = '\0';
    return log;
}

static const char *log_tail(const char *log)
{
    size_t len = log ? strlen(log) : 0;
    return len > 3000 ? log + len - 3000 : (log ? log : "");
}

int kj_compile(const kj_spec *spec, const char *arch, const char *dump_dir, kj_output *out,
               kiln__err *err)
{
    memset(out, 0, sizeof *out);
    kiln__str src = {0};
    int status = kj_source(spec, &src, err);
    if (status != KILN_OK)
        return status;
    const kj_template *t = &kj_templates[spec->template_id];
    const char *headers[64], *names[64];
    int num_headers = kj_num_files < 64 ? kj_num_files : 64;
    for (int i = 0; i < num_headers; i++) {
        headers[i] = kj_files[i].text;
        names[i] = kj_files[i].path;
    }
    int num_options = 0;
    const char *const *options = kj_options(arch, &num_options);

    double start = kiln__now_ms();
    nvrtcProgram prog = NULL;
    nvrtcResult rc = nvrtcCreateProgram(&prog, src.data, "kiln_specialization.cu", num_headers,
                                        headers, names);
    if (rc != NVRTC_SUCCESS) {
        status = kiln__err_set(err, KILN_ERR_COMPILE, "nvrtcCreateProgram(%s): %s", t->name,
                               nvrtcGetErrorString(rc));
        goto done;
    }
    rc = nvrtcCompileProgram(prog, num_options, options);
    out->log = program_log(prog);
    if (rc != NVRTC_SUCCESS) {
        status = kiln__err_set(err, KILN_ERR_COMPILE, "nvrtcCompileProgram(%s, %s): %s; log:\n%s",
                               t->name, arch, nvrtcGetErrorString(rc), log_tail(out->log));
        if (dump_dir != NULL)
            dump_all(dump_dir, t->name, &src, prog, out->log, NULL, 0);
        goto done;
    }
    rc = nvrtcGetCUBINSize(prog, &out->cubin_size);
    if (rc == NVRTC_SUCCESS && (out->cubin = malloc(out->cubin_size)) == NULL) {
        status = kiln__err_set(err, KILN_ERR_OUT_OF_MEMORY, "kj_compile: out of memory");
        goto done;
    }
    if (rc == NVRTC_SUCCESS)
        rc = nvrtcGetCUBIN(prog, out->cubin);
    if (rc != NVRTC_SUCCESS) {
        status = kiln__err_set(err, KILN_ERR_COMPILE, "nvrtcGetCUBIN(%s): %s", t->name,
                               nvrtcGetErrorString(rc));
        goto done;
    }
    out->compile_ms = kiln__now_ms() - start;
    kj_parse_ptxas(out->log, t->entry, out);
    if (dump_dir != NULL)
        dump_all(dump_dir, t->name, &src, prog, out->log, out->cubin, out->cubin_size);
done:
    if (prog != NULL)
        nvrtcDestroyProgram(&prog);
    kiln__str_free(&src);
    if (status != KILN_OK)
        kj_output_free(out);
    return status;
}

void kj_output_free(kj_output *out)
{
    if (out == NULL)
        return;
    free(out->cubin);
    free(out->log);
    memset(out, 0, sizeof *out);
}
