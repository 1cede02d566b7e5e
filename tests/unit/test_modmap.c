/* daemon/modmap: from a code address back to the module and its real
 * file, in a thread or a signal handler, with the table full or not. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "modmap.h"

#include <async_io/module.h>

#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define FILE_NAME "/etc/asyncd/modules/echo.so"

static void *open_echo(void)
{
    void *dl = dlopen(ECHO_SO, RTLD_LAZY | RTLD_LOCAL); /* the host functions it calls are not here */

    if (dl == NULL)
        fail_msg("dlopen %s: %s", ECHO_SO, dlerror());
    return dl;
}

static void modmap_names_the_module_whose_code_holds_an_address(void **state)
{
    struct asyncd_module_where w;
    void *dl = open_echo(), *sym = dlsym(dl, "async_module");
    int slot;

    (void)state;
    assert_non_null(sym);
    assert_false(asyncd_modules_find_by_addr(sym, &w)); /* not entered yet */
    slot = asyncd_modmap_add(dl, "echo", FILE_NAME);
    assert_true(slot >= 0);
    assert_true(asyncd_modules_find_by_addr(sym, &w));
    assert_string_equal(w.name, "echo");
    assert_string_equal(w.file, FILE_NAME);
    assert_true(w.base <= (uintptr_t)sym && (uintptr_t)sym < w.end);
    /* the descriptor's run: its code, as a fiber's entry would be */
    assert_true(asyncd_modules_find_by_addr((void *)((const struct async_module *)sym)->run, &w));
    assert_string_equal(w.name, "echo");
    assert_false(asyncd_modules_find_by_addr((void *)open_echo, &w)); /* the test's own code */
    assert_false(asyncd_modules_find_by_addr(NULL, &w));
    asyncd_modmap_remove(slot);
    assert_false(asyncd_modules_find_by_addr(sym, &w));
    dlclose(dl);
}

static volatile sig_atomic_t found_in_handler;
static void *handler_addr;

static void on_usr1(int sig)
{
    struct asyncd_module_where w;

    (void)sig;
    found_in_handler = asyncd_modules_find_by_addr(handler_addr, &w) &&
                       strcmp(w.name, "echo") == 0 ? 1 : 2;
}

static void modmap_answers_in_a_signal_handler(void **state)
{
    struct sigaction sa = {.sa_handler = on_usr1}, old;
    void *dl = open_echo();
    int slot;

    (void)state;
    handler_addr = dlsym(dl, "async_module");
    slot = asyncd_modmap_add(dl, "echo", FILE_NAME);
    assert_true(slot >= 0);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    raise(SIGUSR1);
    assert_int_equal(found_in_handler, 1);
    sigaction(SIGUSR1, &old, NULL);
    asyncd_modmap_remove(slot);
    dlclose(dl);
}

/* More modules than slots: the rest load unnamed (-1), and a freed slot
 * is taken again. */
static void modmap_full_table_leaves_the_rest_unnamed(void **state)
{
    struct asyncd_module_where w;
    int slots[ASYNCD_MODMAP_SLOTS], i, again;
    void *dl = open_echo(), *sym = dlsym(dl, "async_module");
    char name[32];

    (void)state;
    for (i = 0; i < ASYNCD_MODMAP_SLOTS; i++) {
        snprintf(name, sizeof(name), "m%d", i);
        slots[i] = asyncd_modmap_add(dl, name, FILE_NAME);
        assert_true(slots[i] >= 0);
    }
    assert_int_equal(asyncd_modmap_add(dl, "one_too_many", FILE_NAME), -1);
    assert_true(asyncd_modules_find_by_addr(sym, &w));
    assert_string_equal(w.name, "m0"); /* the first slot that holds it */
    asyncd_modmap_remove(slots[5]);
    again = asyncd_modmap_add(dl, "again", FILE_NAME);
    assert_int_equal(again, slots[5]);
    for (i = 0; i < ASYNCD_MODMAP_SLOTS; i++)
        asyncd_modmap_remove(slots[i]);
    assert_false(asyncd_modules_find_by_addr(sym, &w));
    dlclose(dl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(modmap_names_the_module_whose_code_holds_an_address),
        cmocka_unit_test(modmap_answers_in_a_signal_handler),
        cmocka_unit_test(modmap_full_table_leaves_the_rest_unnamed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
