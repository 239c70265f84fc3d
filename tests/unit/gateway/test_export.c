/* test_export.c: availability, PCF, state and redeclarations from a statement. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/clock.h"
#include "gateway/export.h"
#include "gateway/proforma.h"

static const char proforma_text[] =
    "{\"ders\":[{\"id\":\"wind18\",\"zone\":\"feeder33\",\"capacity_mw\":8},"
    "{\"id\":\"solar33\",\"zone\":\"feeder33\",\"capacity_mw\":4}],"
    "\"points\":[{\"der\":\"wind18\",\"quantity\":\"availability_mw\",\"min\":0,\"max\":8},"
    "{\"zone\":\"feeder33\",\"quantity\":\"availability_mw\",\"min\":0,\"max\":12}]}";

/* Two periods of 2021-06-01 (UTC+1: period 1 starts 2021-05-31T23:00Z). */
static json_t *statement(double wind_p90_period2, int version)
{
    char text[4096];
    snprintf(text, sizeof text,
             "{\"schema\":\"anm.constraint_statement\",\"schema_version\":1,"
             "\"id\":\"feeder33/2021-06-01/day_ahead/abc\",\"version\":%d,\"zone\":\"feeder33\","
             "\"periods\":["
             "{\"period\":1,\"utc_start\":\"2021-05-31T23:00:00.000Z\","
             "\"utc_end\":\"2021-05-31T23:30:00.000Z\",\"ders\":["
             "{\"der\":\"wind18\",\"pcf\":{\"value\":0.25,\"se\":0.01},\"curtailment_mw\":"
             "{\"p50\":{\"value\":0.5,\"se\":0},\"p90\":{\"value\":2.5,\"se\":0},"
             "\"p99\":{\"value\":6.0,\"se\":0}}},"
             "{\"der\":\"solar33\",\"pcf\":{\"value\":0.0,\"se\":0},\"curtailment_mw\":"
             "{\"p50\":{\"value\":0,\"se\":0},\"p90\":{\"value\":0,\"se\":0},"
             "\"p99\":{\"value\":0.75,\"se\":0}}},"
             "{\"der\":\"other\",\"pcf\":{\"value\":1,\"se\":0},\"curtailment_mw\":{}}]},"
             "{\"period\":2,\"utc_start\":\"2021-05-31T23:30:00.000Z\","
             "\"utc_end\":\"2021-06-01T00:00:00.000Z\",\"ders\":["
             "{\"der\":\"wind18\",\"pcf\":0.5,\"curtailment_mw\":"
             "{\"p50\":1,\"p90\":%.17g,\"p99\":7}},"
             "{\"der\":\"solar33\",\"pcf\":0.0,\"curtailment_mw\":{\"p50\":0,\"p90\":0,\"p99\":0}}]}"
             "]}",
             version, wind_p90_period2);
    json_t *j = json_loads(text, 0, NULL);
    cr_assert_not_null(j);
    return j;
}

static int64_t at(const char *iso)
{
    int64_t ms = 0;
    cr_assert_eq(anm_time_parse_iso8601(iso, &ms), ANM_OK);
    return ms;
}

static gateway_proforma *pf(void)
{
    gateway_proforma *p = NULL;
    anm_error_detail d;
    cr_assert_eq(gateway_proforma_load_string(proforma_text, strlen(proforma_text), "p", &p, &d),
                 ANM_OK, "%s", d.message);
    return p;
}

Test(export, availability_at_each_confidence)
{
    gateway_proforma *p = pf();
    /* hand-worked: wind18 8 MW, period 1 curtailment p50 0.5, p90 2.5, p99 6 ->
       availability 7.5, 5.5, 2.0 MW; solar33 4 MW with p99 0.75 -> 3.25 */
    const double expect_wind[3] = {7.5, 5.5, 2.0};
    const double expect_solar[3] = {4.0, 4.0, 3.25};
    for (int c = 0; c < 3; c++) {
        gateway_export *e = NULL;
        cr_assert_eq(gateway_export_new(p, (gateway_confidence)c, 1.0, &e), ANM_OK);
        json_t *s = statement(3.0, 1);
        anm_error_detail d;
        cr_assert_eq(gateway_export_apply_statement(e, s, NULL, NULL, &d), ANM_OK, "%s",
                     d.message);
        json_decref(s);
        gateway_der_export x;
        cr_assert_eq(gateway_export_der_at(e, 0, at("2021-05-31T23:10:00Z"), &x), ANM_OK);
        cr_assert_eq(x.period, 1);
        cr_assert_float_eq(x.availability_mw, expect_wind[c], 1e-12);
        cr_assert_float_eq(x.pcf, 0.25, 1e-12);
        cr_assert_eq(x.state, 1); /* curtailment > 0 at every confidence */
        cr_assert_eq(gateway_export_der_at(e, 1, at("2021-05-31T23:29:59.999Z"), &x), ANM_OK);
        cr_assert_float_eq(x.availability_mw, expect_solar[c], 1e-12);
        cr_assert_eq(x.state, c == 2);
        /* zone total = sum of the DERs */
        double v = 0;
        cr_assert_eq(gateway_export_point_value(e, gateway_proforma_point_at(p, 1),
                                                at("2021-05-31T23:00:00Z"), &v),
                     ANM_OK);
        cr_assert_float_eq(v, expect_wind[c] + expect_solar[c], 1e-12);
        /* outside the statement */
        cr_assert_eq(gateway_export_der_at(e, 0, at("2021-06-01T00:00:00Z"), &x), ANM_ENOTFOUND);
        gateway_export_destroy(&e);
        cr_assert_null(e);
    }
    gateway_proforma_destroy(&p);
}

Test(export, redeclaration_beyond_threshold_only)
{
    gateway_proforma *p = pf();
    gateway_export *e = NULL;
    cr_assert_eq(gateway_export_new(p, GATEWAY_CONFIDENCE_P90, 1.0, &e), ANM_OK);
    gateway_redeclaration *ev = NULL;
    size_t n = 0;
    json_t *s = statement(3.0, 1);
    cr_assert_eq(gateway_export_apply_statement(e, s, &ev, &n, NULL), ANM_OK);
    json_decref(s);
    cr_assert_eq(n, 0, "the first statement declares, it does not redeclare");
    /* period 2: p90 3.0 -> 3.9: availability 5.0 -> 4.1, a 0.9 MW move: no event */
    s = statement(3.9, 2);
    cr_assert_eq(gateway_export_apply_statement(e, s, &ev, &n, NULL), ANM_OK);
    json_decref(s);
    cr_assert_eq(n, 0);
    /* 3.9 -> 5.0: availability 4.1 -> 3.0, a 1.1 MW move beyond 1.0 MW */
    s = statement(5.0, 3);
    cr_assert_eq(gateway_export_apply_statement(e, s, &ev, &n, NULL), ANM_OK);
    json_decref(s);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(ev[0].der, "wind18");
    cr_assert_eq(ev[0].period, 2);
    cr_assert_eq(ev[0].utc_start_ms, at("2021-05-31T23:30:00Z"));
    cr_assert_float_eq(ev[0].previous_mw, 4.1, 1e-12);
    cr_assert_float_eq(ev[0].available_mw, 3.0, 1e-12);
    cr_assert_eq(ev[0].statement_version, 3);
    cr_assert_str_eq(ev[0].statement_id, "feeder33/2021-06-01/day_ahead/abc");
    free(ev);
    gateway_export_destroy(&e);
    gateway_proforma_destroy(&p);
}

Test(export, bad_statement_names_the_field_and_changes_nothing)
{
    gateway_proforma *p = pf();
    gateway_export *e = NULL;
    cr_assert_eq(gateway_export_new(p, GATEWAY_CONFIDENCE_P90, 1.0, &e), ANM_OK);
    const char *bad = "{\"zone\":\"feeder33\",\"periods\":[{\"period\":1,"
                      "\"utc_start\":\"2021-05-31T23:00:00Z\",\"utc_end\":\"2021-05-31T23:30:00Z\","
                      "\"ders\":[{\"der\":\"wind18\",\"pcf\":0.1,\"curtailment_mw\":{\"p50\":1}}]}]}";
    json_t *s = json_loads(bad, 0, NULL);
    anm_error_detail d;
    anm_error_detail_clear(&d);
    cr_assert_eq(gateway_export_apply_statement(e, s, NULL, NULL, &d), ANM_EPARSE);
    cr_assert_str_eq(d.path, "periods[0].ders[0].curtailment_mw.p90");
    cr_assert_str_eq(d.message, "constraint statement: missing or not a number");
    json_decref(s);
    gateway_der_export x;
    cr_assert_eq(gateway_export_der_at(e, 0, at("2021-05-31T23:10:00Z"), &x), ANM_ENOTFOUND);
    cr_assert_eq(gateway_export_statement_count(e), 0);
    /* another zone's statement is ignored */
    s = json_loads("{\"zone\":\"mesh30\",\"periods\":[]}", 0, NULL);
    cr_assert_eq(gateway_export_apply_statement(e, s, NULL, NULL, &d), ANM_OK);
    json_decref(s);
    gateway_export_destroy(&e);
    gateway_proforma_destroy(&p);
}
