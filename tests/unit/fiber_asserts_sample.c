/* Input for the check_fiber_asserts test (never compiled): cmocka
 * assertions where tests/check_fiber_asserts.py must find them (marked
 * FOUND) and where it must not (test bodies, helpers only they call). */
#define MUST_HOLD(x) assert_true(x)

static void helper_of_a_fiber(int v)
{
    assert_int_equal(v, 1); /* FOUND: called from fiber_body */
}

static void *fiber_body(void *arg)
{
    helper_of_a_fiber(1);
    MUST_HOLD(arg != NULL); /* FOUND: a macro holding an assertion */
    return NULL;
}

static void *thread_body(void *arg)
{
    fail_msg("no"); /* FOUND: a thread started by pthread_create */
    return arg;
}

static void helper_of_a_test(void)
{
    assert_true(1); /* fine: only test bodies call it */
}

static void sample_test(void **state)
{
    pthread_t th;

    helper_of_a_test();
    assert_int_equal(async_runtime(NULL, fiber_body, NULL), 0); /* fine */
    pthread_create(&th, NULL, thread_body, NULL);
}
