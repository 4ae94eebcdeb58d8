/* Specialization -> generated translation unit, and -> cache key. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "jit.h"
#include "kiln/kiln.h"

int kj_source(const kj_spec *spec, kiln__str *out, kiln__err *err)
{
    if (spec == NULL || spec->template_id >= KJ_NUM_TEMPLATES)
        return kiln__err_set(err, KILN_ERR_INTERNAL, "kj_source: bad specialization");
    const kj_template *t = &kj_templates[spec->template_id];
    kiln__str_printf(out, "// kiln specialization of %s\nnamespace kp {\n", t->name);
    for (uint32_t i = 0; i < spec->num_params; i++)
        kiln__str_printf(out, "constexpr long long %s = %" PRId64 "ll;\n", t->params[i],
                         spec->values[i]);
    kiln__str_printf(out, "}\n#include \"%s\"\n", t->file);
    if (out->failed)
        return kiln__err_set(err, KILN_ERR_OUT_OF_MEMORY, "kj_source: out of memory");
    return KILN_OK;
}

const char *const *kj_options(const char *arch, int *count)
{
    /* Only sm_90a is a target today; the arch string is validated by the runtime. The
     * ptxas report is what the cache keeps as statistics; --no-cache keeps NVRTC's own
     * cache from hiding it. --minimal leaves out what the templates never use (textures
     * and surfaces, the device runtime, launches from the device, the runtime's types):
     * a shorter front end, the same SASS. */
    static const char *const sm90a[] = {
        "--gpu-architecture=sm_90a", "--std=c++17", "-default-device", "--ptxas-options=-v",
        "--no-cache",                "-DNDEBUG",    "--minimal",       NULL,
    };
    (void)arch;
    if (count != NULL)
        *count = (int)(sizeof sm90a / sizeof sm90a[0]) - 1;
    return sm90a;
}

static void key_line(kiln__str *text, const char *name, const char *value)
{
    size_t len = strlen(name) + 1 + strlen(value);
    kiln__str_printf(text, "%zu:%s=%s\n", len, name, value);
}

void kj_key_from_text(const char *key_text, size_t len, uint8_t key[16])
{
    XXH128_hash_t h = XXH3_128bits(key_text, len);
    XXH128_canonical_t canon;
    XXH128_canonicalFromHash(&canon, h);
    memcpy(key, canon.digest, 16);
}

int kj_key(const kj_spec *spec, const char *arch, uint8_t key[16], kiln__str *key_text,
           kiln__err *err)
{
    if (spec == NULL || spec->template_id >= KJ_NUM_TEMPLATES || arch == NULL)
        return kiln__err_set(err, KILN_ERR_INTERNAL, "kj_key: bad specialization");
    const kj_template *t = &kj_templates[spec->template_id];
    char value[64];
    snprintf(value, sizeof value, "%d", KJ_KEY_SCHEMA);
    key_line(key_text, "schema", value);
    key_line(key_text, "kiln", kiln_version_string());
    for (int i = 0; i < kj_num_files; i++) {
        char name[512];
        snprintf(name, sizeof name, "file:%s", kj_files[i].path);
        snprintf(value, sizeof value, "%016" PRIx64, kj_files[i].hash);
        key_line(key_text, name, value);
    }
    key_line(key_text, "template", t->name);
    for (uint32_t i = 0; i < spec->num_params; i++) {
        char name[128];
        snprintf(name, sizeof name, "param:%s", t->params[i]);
        snprintf(value, sizeof value, "%" PRId64, spec->values[i]);
        key_line(key_text, name, value);
    }
    key_line(key_text, "nvrtc", kj_nvrtc_version());
    key_line(key_text, "arch", arch);
    const char *const *opts = kj_options(arch, NULL);
    for (int i = 0; opts[i] != NULL; i++)
        key_line(key_text, "option", opts[i]);
    if (key_text->failed)
        return kiln__err_set(err, KILN_ERR_OUT_OF_MEMORY, "kj_key: out of memory");
    kj_key_from_text(key_text->data, key_text->len, key);
    return KILN_OK;
}
