/* The version a program compiles against (version.h) and the one it runs
 * with (async_version, from the shared library): the same numbers, and
 * the ones project() in CMakeLists.txt gives (PROJECT_VERSION). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <async_io.h>

#include <stdio.h>

static void version_h_says_what_project_says(void **state)
{
    char header[64];

    snprintf(header, sizeof(header), "%d.%d.%d", ASYNC_IO_VERSION_MAJOR, ASYNC_IO_VERSION_MINOR,
             ASYNC_IO_VERSION_PATCH);
    assert_string_equal(header, PROJECT_VERSION);
}

static void async_version_is_the_library_version(void **state)
{
    const char *v = async_version();

    assert_non_null(v);
    assert_string_equal(v, PROJECT_VERSION);
    /* the same pointer each time: a string the caller never frees */
    assert_ptr_equal(async_version(), v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(version_h_says_what_project_says),
        cmocka_unit_test(async_version_is_the_library_version),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
