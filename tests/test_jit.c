/* The JIT layer: key derivation (golden vectors, sensitivity to every input), generated
 * source, and NVRTC compiling every template for sm_90a without a GPU. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../src/jit/jit.h"
#include "kiln/kiln.h"

static void hex_of(const uint8_t key[16], char out[33])
{
    kiln__hex16(key, out);
}

/* XXH3-128 of fixed texts, canonical (big-endian) byte order. If these change, every
 * cache in the field is invalidated: bump KJ_KEY_SCHEMA deliberately instead. */
static void test_golden_key_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *hex;
    } golden[] = {
        {"", "99aa06d3014798d86001c324468d497f"},
        {"8:schema=1\n", "a2fd6d6800d631d196cd6c177b17a514"},
        {"14:template=quant\n7:arch=sm\n", "a238cb8ea2d4bf80978c08d8dfd36681"},
    };
    for (size_t i = 0; i < sizeof golden / sizeof golden[0]; i++) {
        uint8_t key[16];
        char hex[33];
        kj_key_from_text(golden[i].text, strlen(golden[i].text), key);
        hex_of(key, hex);
        assert_string_equal(hex, golden[i].hex);
    }
}

static void key_of(const kj_spec *spec, const char *arch, char hex[33], kiln__str *text)
{
    uint8_t key[16];
    kiln__err err = {0};
    assert_int_equal(kj_key(spec, arch, key, text, &err), KILN_OK);
    hex_of(key, hex);
}

static void test_key_changes_with_every_input(void **state)
{
    (void)state;
    kj_spec base;
    kj_spec_init(&base, KJ_QUANT_PER_TOKEN);
    base.values[0] = 128 * (1 + rand() % 100);
    char hex_base[33], hex[33];
    kiln__str text_base = {0}, text = {0};
    key_of(&base, "sm_90a", hex_base, &text_base);

    /* Same input, same key; the key text is what the key hashes. */
    assert_memory_equal(text_base.data, "8:schema=1\n", 11);
    key_of(&base, "sm_90a", hex, &text);
    assert_string_equal(hex, hex_base);
    assert_string_equal(text.data, text_base.data);
    uint8_t again[16];
    char hex_again[33];
    kj_key_from_text(text.data, text.len, again);
    hex_of(again, hex_again);
    assert_string_equal(hex_again, hex_base);
    kiln__str_free(&text);

    /* Parameter value. */
    kj_spec other = base;
    other.values[0] += 128;
    key_of(&other, "sm_90a", hex, &text);
    assert_string_not_equal(hex, hex_base);
    kiln__str_free(&text);

    /* Template. */
    other = base;
    other.template_id = KJ_QUANT_PER_BLOCK;
    key_of(&other, "sm_90a", hex, &text);
    assert_string_not_equal(hex, hex_base);
    kiln__str_free(&text);

    /* Arch. */
    key_of(&base, "sm_100a", hex, &text);
    assert_string_not_equal(hex, hex_base);
    kiln__str_free(&text);

    /* The record names the library version, NVRTC version, options and every template
     * file's content hash: each of those lines changes the key when its value does. */
    const char *must_have[] = {"schema=", "kiln=", "nvrtc=", "option=--gpu-architecture=sm_90a",
                               "file:quant_per_token.cuh=", "file:common/ptx.cuh=", "template=",
                               "param:k="};
    for (size_t i = 0; i < sizeof must_have / sizeof must_have[0]; i++)
        assert_non_null(strstr(text_base.data, must_have[i]));
    char *edited = strdup(text_base.data);
    char *nvrtc = strstr(edited, "nvrtc=");
    nvrtc[6] = nvrtc[6] == '9' ? '8' : '9';
    uint8_t key[16];
    kj_key_from_text(edited, strlen(edited), key);
    hex_of(key, hex);
    assert_string_not_equal(hex, hex_base);
    free(edited);
    kiln__str_free(&text_base);
}

static void test_source_names_parameters(void **state)
{
    (void)state;
    kj_spec spec;
    kj_spec_init(&spec, KJ_QUANT_PER_BLOCK);
    assert_true(kj_spec_set(&spec, "k", 7168));
    assert_false(kj_spec_set(&spec, "no_such_param", 1));
    kiln__str src = {0};
    assert_int_equal(kj_source(&spec, &src, NULL), KILN_OK);
    assert_non_null(strstr(src.data, "constexpr long long k = 7168ll;"));
    assert_non_null(strstr(src.data, "#include \"quant_per_block.cuh\""));
    kiln__str_free(&src);
}

static void test_ptxas_parse(void **state)
{
    (void)state;
    const char *log = "ptxas info    : Compiling entry function 'other' for 'sm_90a'\n"
                      "ptxas info    : Used 99 registers\n"
                      "ptxas info    : Compiling entry function 'kern' for 'sm_90a'\n"
                      "ptxas info    : Function properties for kern\n"
                      "    512 bytes stack frame, 12 bytes spill stores, 8 bytes spill loads\n"
                      "ptxas info    : Used 40 registers, used 1 barriers, 1024 bytes smem\n";
    kj_output out;
    kj_parse_ptxas(log, "kern", &out);
    assert_int_equal(out.registers, 40);
    assert_int_equal(out.spills, 20);
    assert_int_equal(out.smem_bytes, 1024);
    assert_int_equal(out.stack_bytes, 512);
    kj_parse_ptxas(log, "missing", &out);
    assert_int_equal(out.registers, -1);
    assert_int_equal(out.stack_bytes, -1);
}

/* Every template compiles for sm_90a on a machine with no GPU. */
static void test_compile_every_template(void **state)
{
    (void)state;
    for (int id = 0; id < KJ_NUM_TEMPLATES; id++) {
        kj_spec spec;
        kj_spec_init(&spec, (enum kj_template_id)id);
        memcpy(spec.values, kj_templates[id].example, sizeof spec.values);
        kj_output out;
        kiln__err err = {0};
        int status = kj_compile(&spec, "sm_90a", NULL, &out, &err);
        if (status != KILN_OK)
            fail_msg("%s: %s", kj_templates[id].name, err.msg);
        assert_non_null(out.cubin);
        assert_true(out.cubin_size > 64);
        /* An ELF image: the driver loads these bytes directly. */
        assert_memory_equal(out.cubin, "\x7f" "ELF", 4);
        assert_true(out.registers > 0);
        assert_int_equal(out.spills, 0);
        assert_true(out.stack_bytes >= 0 && out.stack_bytes <= 64);
        print_message("  %-16s %6.1f ms  %3d registers  %zu bytes\n", kj_templates[id].name,
                      out.compile_ms, out.registers, out.cubin_size);
        kj_output_free(&out);
    }
}

/* The GEMM template's grouped forms compile too (masked groups, contiguous groups by prefix
 * sums and by row ids). */
static void test_compile_grouped_gemm(void **state)
{
    (void)state;
    for (int grouping = 1; grouping <= 3; grouping++) {
        kj_spec spec;
        kj_spec_init(&spec, KJ_GEMM_FP8);
        memcpy(spec.values, kj_templates[KJ_GEMM_FP8].example, sizeof spec.values);
        assert_true(kj_spec_set(&spec, "grouping", grouping));
        assert_true(kj_spec_set(&spec, "m_align", grouping == 2 ? 128 : 0));
        kj_output out;
        kiln__err err = {0};
        if (kj_compile(&spec, "sm_90a", NULL, &out, &err) != KILN_OK)
            fail_msg("grouping %d: %s", grouping, err.msg);
        assert_int_equal(out.spills, 0);
        kj_output_free(&out);
    }
}

static void test_compile_error_has_log(void **state)
{
    (void)state;
    kj_spec spec;
    kj_spec_init(&spec, KJ_SF_TRANSPOSE);
    spec.values[0] = 0; /* a zero-sized shared array and a zero launch bound: rejected */
    kj_output out;
    kiln__err err = {0};
    int status = kj_compile(&spec, "sm_90a", NULL, &out, &err);
    assert_int_equal(status, KILN_ERR_COMPILE);
    assert_non_null(strstr(err.msg, "nvrtcCompileProgram"));
    assert_non_null(strstr(err.msg, "error"));
    assert_null(out.cubin);
}

int main(void)
{
    srand((unsigned)time(NULL));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_key_vectors),
        cmocka_unit_test(test_key_changes_with_every_input),
        cmocka_unit_test(test_source_names_parameters),
        cmocka_unit_test(test_ptxas_parse),
        cmocka_unit_test(test_compile_every_template),
        cmocka_unit_test(test_compile_grouped_gemm),
        cmocka_unit_test(test_compile_error_has_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
