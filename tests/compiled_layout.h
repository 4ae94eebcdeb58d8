/* For the unit tests (no GPU): compile a specialization with its PTX dumped, and read back a
 * `extern "C" __device__ const int` the template exports, such as the shared-memory size its
 * layout adds up to, which the host mirrors with a formula of its own. */
#ifndef KILN_TESTS_COMPILED_LAYOUT_H
#define KILN_TESTS_COMPILED_LAYOUT_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/jit/jit.h"

/* The value of `symbol` in the PTX written to dir (the one dump there), or -1. */
static inline int ptx_symbol_in(const char *dir, const char *symbol)
{
    int value = -1;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 4, ".ptx") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (f == NULL)
            continue;
        static char text[1 << 22];
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = '\0';
        char pattern[128];
        snprintf(pattern, sizeof pattern, "%s = ", symbol);
        const char *at = strstr(text, pattern);
        if (at != NULL)
            value = atoi(at + strlen(pattern));
    }
    if (d != NULL)
        closedir(d);
    return value;
}

/* Removes the dump folder's files, then the folder. */
static inline void remove_dump(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

/* kj_compile with the PTX dumped to a fresh folder; *symbol_value gets `symbol` from it
 * (-1 if absent). Same return and outputs as kj_compile. */
static inline int compile_reading(const kj_spec *spec, const char *symbol, int *symbol_value,
                                  kj_output *out, kiln__err *err)
{
    char dir[] = "/tmp/kiln-layout-XXXXXX";
    *symbol_value = -1;
    if (mkdtemp(dir) == NULL)
        return kj_compile(spec, "sm_90a", NULL, out, err);
    int status = kj_compile(spec, "sm_90a", dir, out, err);
    *symbol_value = ptx_symbol_in(dir, symbol);
    remove_dump(dir);
    return status;
}

#endif
