/* test_proforma.c: the pro-forma mapping: strict validation, scaling and limits. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "gateway/iec104.h"
#include "gateway/proforma.h"
#include "testlib.h"

#define DERS                                                                                       \
    "\"ders\":[{\"id\":\"wind18\",\"zone\":\"feeder33\",\"capacity_mw\":8},"                      \
    "{\"id\":\"solar33\",\"zone\":\"feeder33\",\"capacity_mw\":4,\"unit\":\"SOLAR33\"}]"

static int load(const char *text, gateway_proforma **p, anm_error_detail *d)
{
    anm_error_detail_clear(d);
    return gateway_proforma_load_string(text, strlen(text), "pf.json", p, d);
}

Test(proforma, sample_file_loads)
{
    char path[1024];
    anm_test_source_path(path, sizeof path, "data/gateway/feeder33_proforma.json");
    gateway_proforma *p = NULL;
    anm_error_detail d;
    anm_error_detail_clear(&d);
    cr_assert_eq(gateway_proforma_load_file(path, &p, &d), ANM_OK, "%s: %s", d.path, d.message);
    cr_assert_eq(gateway_proforma_der_count(p), 3);
    cr_assert_eq(gateway_proforma_point_count(p), 13);
    const gateway_proforma_point *pt = gateway_proforma_point_at(p, 3);
    cr_assert_str_eq(pt->der, "solar33");
    cr_assert_eq(pt->quantity, GATEWAY_QUANTITY_STATE);
    cr_assert_eq(pt->iec104.ioa, 1004);
    cr_assert_eq(pt->iec104.type, GATEWAY_PROFORMA_SINGLE);
    cr_assert_str_eq(gateway_proforma_der_at(p, 0)->unit, "SOLAR33");
    gateway_proforma_destroy(&p);
    gateway_proforma_destroy(&p); /* idempotent */
    cr_assert_null(p);
}

Test(proforma, unit_defaults_to_der_id)
{
    gateway_proforma *p = NULL;
    anm_error_detail d;
    cr_assert_eq(load("{" DERS ",\"points\":[{\"der\":\"wind18\",\"quantity\":\"pcf\","
                      "\"iec104\":{\"ioa\":5},\"min\":0,\"max\":1}]}",
                      &p, &d),
                 ANM_OK, "%s", d.message);
    cr_assert_str_eq(gateway_proforma_der_at(p, 0)->unit, "wind18");
    cr_assert_eq(gateway_proforma_point_at(p, 0)->iec104.common_address, 1);
    cr_assert_float_eq(gateway_proforma_point_at(p, 0)->scale, 1.0, 0.0);
    gateway_proforma_destroy(&p);
}

typedef struct bad_case {
    const char *points;
    const char *path;
    const char *message;
} bad_case;

Test(proforma, validation_errors_name_the_entry)
{
    static const bad_case cases[] = {
        {"[{\"der\":\"wind99\",\"quantity\":\"pcf\",\"min\":0,\"max\":1}]", "points[0].der",
         "unknown DER \"wind99\""},
        {"[{\"der\":\"wind18\",\"quantity\":\"pcf\",\"iec104\":{\"ioa\":7},\"min\":0,\"max\":1},"
         "{\"der\":\"solar33\",\"quantity\":\"pcf\",\"iec104\":{\"ioa\":7},\"min\":0,\"max\":1}]",
         "points[1].iec104.ioa", "duplicate common address 1 and ioa 7 (also points[0])"},
        {"[{\"der\":\"wind18\",\"quantity\":\"state\",\"iec104\":{\"ioa\":7},\"min\":0,\"max\":1}]",
         "points[0].iec104.type", "quantity state needs type \"single\""},
        {"[{\"der\":\"wind18\",\"zone\":\"feeder33\",\"quantity\":\"pcf\",\"min\":0,\"max\":1}]",
         "points[0]", "give exactly one of \"der\" and \"zone\""},
        {"[{\"zone\":\"feeder33\",\"quantity\":\"pcf\",\"min\":0,\"max\":1}]",
         "points[0].quantity", "a zone-level point must be metered_mw or availability_mw, not pcf"},
        {"[{\"zone\":\"elsewhere\",\"quantity\":\"metered_mw\",\"min\":0,\"max\":1}]",
         "points[0].zone", "unknown zone \"elsewhere\" (no DER of the file is in it)"},
        {"[{\"der\":\"wind18\",\"quantity\":\"pcf\",\"min\":1,\"max\":1}]", "points[0].max",
         "max must be greater than min"},
        {"[{\"der\":\"wind18\",\"quantity\":\"pcf\",\"scale\":0,\"min\":0,\"max\":1}]",
         "points[0].scale", "scale must not be 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[2048];
        snprintf(text, sizeof text, "{" DERS ",\"points\":%s}", cases[i].points);
        gateway_proforma *p = NULL;
        anm_error_detail d;
        cr_assert_eq(load(text, &p, &d), ANM_ECONFIG, "case %zu", i);
        cr_assert_null(p);
        cr_assert_str_eq(d.path, cases[i].path, "case %zu", i);
        cr_assert_str_eq(d.message, cases[i].message, "case %zu", i);
    }
}

Test(proforma, duplicate_der_and_schema_errors)
{
    gateway_proforma *p = NULL;
    anm_error_detail d;
    cr_assert_eq(load("{\"ders\":[{\"id\":\"a\",\"zone\":\"z\",\"capacity_mw\":1},"
                      "{\"id\":\"a\",\"zone\":\"z\",\"capacity_mw\":2}],"
                      "\"points\":[{\"der\":\"a\",\"quantity\":\"pcf\",\"min\":0,\"max\":1}]}",
                      &p, &d),
                 ANM_ECONFIG);
    cr_assert_str_eq(d.path, "ders[1].id");
    cr_assert_str_eq(d.message, "duplicate DER id \"a\"");
    /* the typed table: a misspelt key and an IOA beyond 24 bits */
    cr_assert_eq(load("{" DERS ",\"points\":[{\"der\":\"wind18\",\"quantitty\":\"pcf\","
                      "\"min\":0,\"max\":1}]}",
                      &p, &d),
                 ANM_ECONFIG);
    cr_assert(strstr(d.path, "points[0]") != NULL, "%s", d.path);
    cr_assert_eq(load("{" DERS ",\"points\":[{\"der\":\"wind18\",\"quantity\":\"pcf\","
                      "\"iec104\":{\"ioa\":16777216},\"min\":0,\"max\":1}]}",
                      &p, &d),
                 ANM_ECONFIG);
    cr_assert_str_eq(d.path, "points[0].iec104.ioa");
}

Test(proforma, out_of_limit_is_flagged_not_clipped)
{
    gateway_proforma_point pt = {.scale = 1000.0, .offset = 0.0, .min = 0.0, .max = 8000.0};
    unsigned flags = 99;
    /* 8.5 MW in kW: 8500 > 8000, sent as 8500 with OV */
    double sent = gateway_proforma_scale(&pt, 8.5, &flags);
    cr_assert_float_eq(sent, 8500.0, 1e-9);
    cr_assert_eq(flags, GATEWAY_QUALITY_OVER);
    cr_assert_eq(gateway_proforma_qds(flags), GATEWAY_IEC104_QDS_OV);
    cr_assert_str_eq(gateway_proforma_quality_name(flags), "out_of_range");
    sent = gateway_proforma_scale(&pt, -0.25, &flags);
    cr_assert_float_eq(sent, -250.0, 1e-9);
    cr_assert_eq(flags, GATEWAY_QUALITY_UNDER);
    sent = gateway_proforma_scale(&pt, 8.0, &flags); /* the limit itself is valid */
    cr_assert_float_eq(sent, 8000.0, 1e-9);
    cr_assert_eq(flags, 0u);
    cr_assert_eq(gateway_proforma_qds(flags), 0);
    cr_assert_str_eq(gateway_proforma_quality_name(flags), "good");
    (void)gateway_proforma_scale(&pt, NAN, &flags);
    cr_assert_eq(gateway_proforma_qds(flags), GATEWAY_IEC104_QDS_IV);
    cr_assert_str_eq(gateway_proforma_quality_name(flags), "invalid");
}
