/* test_cli.c: checked number parsing, usage errors, --version and --log-level. */
#include "engine/cli.h"
#include "engine/error.h"
#include "engine/log.h"
#include "engine/version.h"

#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

Test(cli, parse_long_accepts_whole_numbers_within_bounds)
{
    long v = 0;
    cr_expect_eq(anm_parse_long("42", 0, 100, &v), ANM_OK);
    cr_expect_eq(v, 42);
    cr_expect_eq(anm_parse_long("-7", -10, 10, &v), ANM_OK);
    cr_expect_eq(v, -7);
    cr_expect_eq(anm_parse_long("+5", 0, 10, &v), ANM_OK);
    cr_expect_eq(v, 5);
    cr_expect_eq(anm_parse_long("0", 0, 0, &v), ANM_OK, "bounds are inclusive");
    cr_expect_eq(anm_parse_long("100", 0, 100, &v), ANM_OK);
    cr_expect_eq(v, 100);
    cr_expect_eq(anm_parse_long("9223372036854775807", LONG_MIN, LONG_MAX, &v), ANM_OK);
    cr_expect_eq(v, LONG_MAX);
}

Test(cli, parse_long_rejects_garbage_and_out_of_range)
{
    static const char *const garbage[] = {"",   "abc", "12abc", "1.5", "0x10", "5 ",
                                          " 5", "\t5", "-",     "+",   "1e3",  "12 13"};
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        long v = 77;
        cr_expect_eq(anm_parse_long(garbage[i], LONG_MIN, LONG_MAX, &v), ANM_EPARSE, "\"%s\"",
                     garbage[i]);
        cr_expect_eq(v, 77, "output untouched for \"%s\"", garbage[i]);
    }
    long v = 77;
    cr_expect_eq(anm_parse_long(NULL, 0, 1, &v), ANM_EPARSE);
    cr_expect_eq(anm_parse_long("101", 0, 100, &v), ANM_ERANGE);
    cr_expect_eq(anm_parse_long("-1", 0, 100, &v), ANM_ERANGE);
    cr_expect_eq(anm_parse_long("9223372036854775808", LONG_MIN, LONG_MAX, &v), ANM_ERANGE,
                 "overflow");
    cr_expect_eq(anm_parse_long("-9223372036854775809", LONG_MIN, LONG_MAX, &v), ANM_ERANGE);
    cr_expect_eq(v, 77);
}

Test(cli, parse_double_accepts_numbers_within_bounds)
{
    double v = 0;
    cr_expect_eq(anm_parse_double("1.5", 0, 2, &v), ANM_OK);
    cr_expect_eq(v, 1.5);
    cr_expect_eq(anm_parse_double("-2.5e2", -1000, 0, &v), ANM_OK);
    cr_expect_eq(v, -250.0);
    cr_expect_eq(anm_parse_double("60", 0, 60, &v), ANM_OK, "bounds are inclusive");
    cr_expect_eq(v, 60.0);
    cr_expect_eq(anm_parse_double(".5", 0, 1, &v), ANM_OK);
    cr_expect_eq(v, 0.5);
}

Test(cli, parse_double_rejects_garbage_nan_and_out_of_range)
{
    static const char *const garbage[] = {"",    "abc", "1.5x", "1,5", " 1", "1 ",
                                          "nan", "NaN", "-nan", "e5",  "."};
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        double v = 7.0;
        cr_expect_eq(anm_parse_double(garbage[i], -DBL_MAX, DBL_MAX, &v), ANM_EPARSE, "\"%s\"",
                     garbage[i]);
        cr_expect_eq(v, 7.0);
    }
    double v = 7.0;
    cr_expect_eq(anm_parse_double(NULL, 0, 1, &v), ANM_EPARSE);
    cr_expect_eq(anm_parse_double("1.0000001", 0, 1, &v), ANM_ERANGE);
    cr_expect_eq(anm_parse_double("-0.1", 0, 1, &v), ANM_ERANGE);
    cr_expect_eq(anm_parse_double("1e999", -DBL_MAX, DBL_MAX, &v), ANM_ERANGE, "overflow");
    cr_expect_eq(anm_parse_double("inf", -DBL_MAX, DBL_MAX, &v), ANM_ERANGE,
                 "infinity is out of any finite range");
    cr_expect_eq(v, 7.0);
}

Test(cli, usage_error_prints_one_line_and_returns_2, .init = cr_redirect_stderr)
{
    cr_expect_eq(anm_cli_usage_error("anm", "unknown option '%s'", "--frob"), ANM_EXIT_USAGE);
    fflush(stderr);
    cr_expect_stderr_eq_str("anm: unknown option '--frob' (try 'anm --help')\n");
}

Test(cli, fail_prints_the_reason_and_returns_1, .init = cr_redirect_stderr)
{
    cr_expect_eq(anm_cli_fail("anm", "could not read \"%s\"", "x.m"), ANM_EXIT_FAILURE);
    fflush(stderr);
    cr_expect_stderr_eq_str("anm: could not read \"x.m\"\n");
}

Test(cli, version_prints_program_and_version, .init = cr_redirect_stdout)
{
    cr_expect_eq(anm_cli_version("anm-forecast"), ANM_EXIT_OK);
    fflush(stdout);
    cr_expect_stdout_eq_str("anm-forecast (anm) " ANM_VERSION "\n");
}

Test(cli, log_level_from_option_or_environment)
{
    cr_assert_eq(unsetenv("ANM_LOG_LEVEL"), 0);
    anm_log_set_level(ANM_LOG_INFO);
    cr_expect_eq(anm_cli_apply_log_level(NULL), ANM_OK, "nothing given: nothing changes");
    cr_expect_eq(anm_log_get_level(), ANM_LOG_INFO);
    cr_expect_eq(anm_cli_apply_log_level("debug"), ANM_OK);
    cr_expect_eq(anm_log_get_level(), ANM_LOG_DEBUG);
    cr_expect_eq(anm_cli_apply_log_level("loud"), ANM_EINVAL);
    cr_expect_eq(anm_log_get_level(), ANM_LOG_DEBUG, "a bad level changes nothing");
    cr_assert_eq(setenv("ANM_LOG_LEVEL", "error", 1), 0);
    cr_expect_eq(anm_cli_apply_log_level(NULL), ANM_OK);
    cr_expect_eq(anm_log_get_level(), ANM_LOG_ERROR);
    cr_expect_eq(anm_cli_apply_log_level("warn"), ANM_OK, "the option wins over the environment");
    cr_expect_eq(anm_log_get_level(), ANM_LOG_WARN);
    cr_assert_eq(setenv("ANM_LOG_LEVEL", "shouty", 1), 0);
    cr_expect_eq(anm_cli_apply_log_level(NULL), ANM_EINVAL);
}
