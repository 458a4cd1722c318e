/* test_bench_pace.c - the fixed-rate schedule of `petrel bench --rate`:
 * the count of due messages agrees with the due times at every instant,
 * so a publisher that is told nothing more is due has a due time ahead to
 * wait for (the disagreement left a publisher without a pacing timer). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "bench_pace.h"

/* n = count(now): message n-1 due at or before now, message n after. */
static void check_at(uint64_t t0, double rate, uint64_t now)
{
    uint64_t n = bench_pace_due_count(t0, rate, now);
    assert_true(n >= 1);
    assert_true(bench_pace_due_time(t0, rate, n - 1) <= now);
    assert_true(bench_pace_due_time(t0, rate, n) > now);
}

static void test_before_start(void **state)
{
    (void)state;
    assert_int_equal(bench_pace_due_count(1000, 300.0, 999), 0);
    assert_int_equal(bench_pace_due_count(1000, 300.0, 1000), 1);
}

/* Around every due time of the first messages, at the rates the
 * benchmarks use per publisher (30000/100, 20000, 1, and uneven ones):
 * the instants just before, at and after each due time. */
static void test_agrees_at_due_times(void **state)
{
    (void)state;
    const double rates[] = {300.0, 20000.0, 1.0, 333.333, 7.0, 1e6 / 3.0, 29999.0};
    const uint64_t t0s[] = {1, 123456789, 5000000000000ull};
    for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++)
        for (size_t t = 0; t < sizeof t0s / sizeof t0s[0]; t++)
            for (uint64_t k = 1; k < 5000; k++) {
                uint64_t due = bench_pace_due_time(t0s[t], rates[r], k);
                check_at(t0s[t], rates[r], due - 1);
                check_at(t0s[t], rates[r], due);
                check_at(t0s[t], rates[r], due + 1);
            }
}

/* The instant the old inverse formula got wrong: 300 msg/s, message 1 due
 * at t0 + 3333333 ns (truncated from 3333333.33); the formula said 0.9999999
 * periods had passed, one message due, while message 1 was already due. */
static void test_truncated_due_time(void **state)
{
    (void)state;
    assert_int_equal(bench_pace_due_time(0 + 1, 300.0, 1), 1 + 3333333);
    assert_int_equal(bench_pace_due_count(1, 300.0, 1 + 3333333), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_before_start),
        cmocka_unit_test(test_agrees_at_due_times),
        cmocka_unit_test(test_truncated_due_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
