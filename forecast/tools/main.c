/*
 * anm-forecast: the forecast module's command line for researchers.
 *
 *   anm-forecast dcpf|ptdf|lodf CASE.m [--format csv|json]
 *
 * Parse the command, load the case, compute, print. Each subcommand is one
 * row of the dispatch table below and parses its own options, so later
 * subcommands (curtail, pcf, day-ahead) slot in beside these.
 */
#include "cmd_pcf.h"
#include "curtail.h"
#include "engine/cli.h"
#include "engine/error.h"
#include "engine/network.h"
#include "forecast/dcpf.h"
#include "forecast/lodf.h"
#include "forecast/ptdf.h"

#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const program = "anm-forecast";

typedef enum output_format { FORMAT_CSV, FORMAT_JSON } output_format;

typedef struct command {
    const char *name;
    const char *arguments;
    const char *summary;
    int (*run)(const struct command *self, int argc, char **argv);
} command;

static int run_matrix_command(const command *self, int argc, char **argv);
static int run_curtail_command(const command *self, int argc, char **argv);
static int run_pcf_command(const command *self, int argc, char **argv);
static int run_day_ahead_command(const command *self, int argc, char **argv);

static const command commands[] = {
    {"dcpf", "CASE.m [--format csv|json]",
     "DC power flow of the case's own dispatch: flow at each branch's ends (MW)",
     run_matrix_command},
    {"ptdf", "CASE.m [--format csv|json]",
     "PTDF: MW of flow on each branch per MW injected at each bus, withdrawn at the reference "
     "bus",
     run_matrix_command},
    {"lodf", "CASE.m [--format csv|json]",
     "LODF: flow change on each branch per MW of pre-outage flow on each outaged branch (NaN "
     "where the outage islands the network)",
     run_matrix_command},
    {"curtail",
     "[--case CASE.m] --zones ZONES.json [--zone ID] [--demand-scale S]\n"
     "      [--available DER=MW[,DER=MW...]] [--outage BRANCH[,BRANCH...]] [--date YYYY-MM-DD]\n"
     "      [--format text|json]",
     "one sample through the zone's ANM rule: each DER's available, dispatched and curtailed "
     "MW,\n      each monitored flow after curtailment with its limit (preventive: the worst "
     "post-fault\n      flow and its contingency), unresolved or not. DERs not in --available "
     "are at capacity;\n      demand scale 1 by default; the case from the zone file's \"case\" "
     "key when --case is absent",
     run_curtail_command},
    {"pcf",
     "--inputs FILE --zones ZONES.json [--case CASE.m] [--zone ID] [--period N]\n"
     "      [--samples N | --ci-width W] [--seed S] [--threads T] [--format text|json]\n"
     "      [--export FILE] [--access lifo|pro_rata|min_mw]",
     "Monte Carlo PCF of one period (default the inputs' first): per DER the probability of\n"
     "      curtailment, expected and quantile curtailed MW, with standard errors; per zone\n"
     "      P(ANM acts), headroom and binding constraints (docs/inputs.md); --access runs\n"
     "      another principle of access than the zone's",
     run_pcf_command},
    {"day-ahead",
     "--inputs FILE --zones ZONES.json --out STATEMENT.json [--date D] [--case CASE.m]\n"
     "      [--zone ID] [--samples N | --ci-width W] [--seed S] [--threads T] [--clock SPEC]",
     "the day-ahead constraint statement of every period of the inputs' settlement day\n"
     "      (docs/constraint-statement.md); prints per DER the day's PCF and curtailed MWh",
     run_day_ahead_command},
};

static void print_help(void)
{
    printf("usage: %s COMMAND [ARGUMENTS]\n\ncommands:\n", program);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        printf("  %s %s\n      %s\n", commands[i].name, commands[i].arguments,
               commands[i].summary);
    }
    printf("\noptions:\n"
           "  --format csv|json   output format (default csv): a header row and one row per\n"
           "                      branch in file order; JSON writes NaN as null\n"
           "  --log-level LEVEL   debug, info, warn, error or off (default: $ANM_LOG_LEVEL or "
           "info)\n"
           "  --help              this help\n"
           "  --version           the version\n"
           "\nBranch numbers are 1-based file order, as in MATPOWER; buses are the file's ids.\n"
           "Exit status: 0 success, 1 failure (e.g. a bad case file), 2 bad usage.\n");
}

/* Prints a number so that it reads back exactly enough for research: 15
 * significant digits, "NaN" for NaN, and no negative zero. */
static void print_number(FILE *out, double value, output_format format)
{
    if (isnan(value)) {
        fputs(format == FORMAT_JSON ? "null" : "NaN", out);
    } else if (value == 0.0) {
        fputc('0', out);
    } else {
        fprintf(out, "%.15g", value);
    }
}

static void print_json_string(FILE *out, const char *text)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)text; p && *p; p++) {
        if (*p == '"' || *p == '\\') {
            fprintf(out, "\\%c", *p);
        } else if (*p < 0x20) {
            fprintf(out, "\\u%04x", *p);
        } else {
            fputc(*p, out);
        }
    }
    fputc('"', out);
}

static void print_dcpf(FILE *out, const anm_case *c, const double *pf, output_format format)
{
    if (format == FORMAT_CSV) {
        fputs("branch,from_bus,to_bus,status,pf_mw,pt_mw\n", out);
    } else {
        fputs("{\"case\":", out);
        print_json_string(out, c->name);
        fprintf(out, ",\"base_mva\":%.15g,\"branches\":[", c->base_mva);
    }
    for (size_t k = 0; k < c->n_branch; k++) {
        const anm_branch *br = &c->branch[k];
        if (format == FORMAT_CSV) {
            fprintf(out, "%zu,%d,%d,%d,", k + 1, br->from_bus, br->to_bus, br->status);
            print_number(out, pf[k], format);
            fputc(',', out);
            print_number(out, -pf[k], format);
            fputc('\n', out);
        } else {
            fprintf(out, "%s\n{\"branch\":%zu,\"from_bus\":%d,\"to_bus\":%d,\"status\":%d,\"pf_mw\":",
                    k ? "," : "", k + 1, br->from_bus, br->to_bus, br->status);
            print_number(out, pf[k], format);
            fputs(",\"pt_mw\":", out);
            print_number(out, -pf[k], format);
            fputc('}', out);
        }
    }
    if (format == FORMAT_JSON) {
        fputs("\n]}\n", out);
    }
}

/* A branch-by-column matrix: PTDF (columns are buses) or LODF (branches). */
static void print_matrix(FILE *out, const anm_case *c, const char *kind, const double *matrix,
                         int columns_are_buses, output_format format)
{
    size_t n_columns = columns_are_buses ? c->n_bus : c->n_branch;
    if (format == FORMAT_CSV) {
        fputs("branch", out);
        for (size_t j = 0; j < n_columns; j++) {
            if (columns_are_buses) {
                fprintf(out, ",%d", c->bus[j].id);
            } else {
                fprintf(out, ",%zu", j + 1);
            }
        }
        fputc('\n', out);
    } else {
        fputs("{\"case\":", out);
        print_json_string(out, c->name);
        if (columns_are_buses) {
            fprintf(out, ",\"reference_bus\":%d,\"buses\":[", c->bus[c->ref_bus_index].id);
            for (size_t j = 0; j < n_columns; j++) {
                fprintf(out, "%s%d", j ? "," : "", c->bus[j].id);
            }
            fputs("]", out);
        } else {
            fputs(",\"outaged_branches\":[", out);
            for (size_t j = 0; j < n_columns; j++) {
                fprintf(out, "%s%zu", j ? "," : "", j + 1);
            }
            fputs("]", out);
        }
        fprintf(out, ",\"branches\":[");
        for (size_t k = 0; k < c->n_branch; k++) {
            fprintf(out, "%s%zu", k ? "," : "", k + 1);
        }
        fprintf(out, "],\"%s\":[", kind);
    }
    for (size_t k = 0; k < c->n_branch; k++) {
        const double *row = matrix + k * n_columns;
        if (format == FORMAT_CSV) {
            fprintf(out, "%zu", k + 1);
        } else {
            fputs(k ? ",\n[" : "\n[", out);
        }
        for (size_t j = 0; j < n_columns; j++) {
            if (format == FORMAT_CSV || j > 0) {
                fputc(',', out);
            }
            print_number(out, row[j], format);
        }
        fputs(format == FORMAT_CSV ? "\n" : "]", out);
    }
    if (format == FORMAT_JSON) {
        fputs("\n]}\n", out);
    }
}

static int run_matrix_command(const command *self, int argc, char **argv)
{
    const char *case_path = NULL;
    output_format format = FORMAT_CSV;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = NULL;
        if (strcmp(arg, "--format") == 0 || strcmp(arg, "--log-level") == 0) {
            if (i + 1 >= argc) {
                return anm_cli_usage_error(program, "%s needs a value", arg);
            }
            value = argv[++i];
        } else if (strncmp(arg, "--format=", 9) == 0) {
            value = arg + 9;
            arg = "--format";
        } else if (strncmp(arg, "--log-level=", 12) == 0) {
            value = arg + 12;
            arg = "--log-level";
        }
        if (value && strcmp(arg, "--format") == 0) {
            if (strcmp(value, "csv") == 0) {
                format = FORMAT_CSV;
            } else if (strcmp(value, "json") == 0) {
                format = FORMAT_JSON;
            } else {
                return anm_cli_usage_error(program, "unknown format \"%s\" (csv or json)", value);
            }
        } else if (value) {
            if (anm_cli_apply_log_level(value) != ANM_OK) {
                return anm_cli_usage_error(program, "unknown log level \"%s\"", value);
            }
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return anm_cli_usage_error(program, "unknown option \"%s\" for %s", arg, self->name);
        } else if (case_path) {
            return anm_cli_usage_error(program, "%s takes one case file, got \"%s\" too",
                                       self->name, arg);
        } else {
            case_path = arg;
        }
    }
    if (!case_path) {
        return anm_cli_usage_error(program, "%s needs a case file (CASE.m)", self->name);
    }

    int status = ANM_EXIT_FAILURE;
    anm_case *c = NULL;
    forecast_dc_model *model = NULL;
    double *values = NULL, *ptdf = NULL;
    anm_error_detail err;
    char where[1024];
    anm_error_detail_clear(&err);
    int rc = anm_case_load(case_path, &c, &err);
    if (rc == ANM_OK) {
        rc = forecast_dc_model_new(c, &model, &err);
    }
    if (rc != ANM_OK) {
        if (err.message[0] == '\0') {
            anm_error_detail_set(&err, case_path, 0, 0, NULL, "%s", anm_strerror(rc));
        } else if (err.file[0] == '\0') {
            snprintf(err.file, sizeof err.file, "%s", case_path);
        }
        anm_error_detail_format(&err, where, sizeof where);
        status = anm_cli_fail(program, "%s", where);
        goto free_all;
    }
    size_t n_bus = c->n_bus, n_branch = c->n_branch;
    if (strcmp(self->name, "dcpf") == 0) {
        double *injection = malloc((n_bus ? n_bus : 1) * sizeof *injection);
        values = malloc((n_branch ? n_branch : 1) * sizeof *values);
        if (!injection || !values) {
            free(injection);
            status = anm_cli_fail(program, "%s", anm_strerror(ANM_ENOMEM));
            goto free_all;
        }
        forecast_dc_case_injection(c, injection);
        rc = forecast_dc_model_solve(model, injection, NULL, values);
        free(injection);
        if (rc == ANM_OK) {
            print_dcpf(stdout, c, values, format);
        }
    } else {
        ptdf = malloc((n_branch * n_bus + 1) * sizeof *ptdf);
        rc = ptdf ? forecast_dc_ptdf(model, ptdf) : ANM_ENOMEM;
        if (rc == ANM_OK && strcmp(self->name, "ptdf") == 0) {
            print_matrix(stdout, c, "ptdf", ptdf, 1, format);
        } else if (rc == ANM_OK) {
            values = malloc((n_branch * n_branch + 1) * sizeof *values);
            rc = values ? forecast_dc_lodf(model, ptdf, values) : ANM_ENOMEM;
            if (rc == ANM_OK) {
                print_matrix(stdout, c, "lodf", values, 0, format);
            }
        }
    }
    if (rc != ANM_OK) {
        status = anm_cli_fail(program, "%s of \"%s\": %s", self->name, case_path,
                              anm_strerror(rc));
        goto free_all;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        status = anm_cli_fail(program, "could not write the output");
        goto free_all;
    }
    status = ANM_EXIT_OK;
free_all:
    free(values);
    free(ptdf);
    forecast_dc_model_destroy(&model);
    anm_case_destroy(&c);
    return status;
}

static int run_curtail_command(const command *self, int argc, char **argv)
{
    (void)self;
    return forecast_cli_curtail(program, argc, argv);
}

static int run_pcf_command(const command *self, int argc, char **argv)
{
    (void)self;
    return forecast_cli_pcf(program, argc, argv);
}

static int run_day_ahead_command(const command *self, int argc, char **argv)
{
    (void)self;
    return forecast_cli_day_ahead(program, argc, argv);
}

int main(int argc, char **argv)
{
    /* GSL's default handler aborts; anm converts statuses instead */
    gsl_set_error_handler_off();
    if (anm_cli_apply_log_level(NULL) != ANM_OK) {
        return anm_cli_usage_error(program, "unknown log level in ANM_LOG_LEVEL");
    }
    if (argc < 2) {
        return anm_cli_usage_error(program, "no command given");
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_help();
        return ANM_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        return anm_cli_version(program);
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            for (int j = 2; j < argc; j++) {
                if (strcmp(argv[j], "--help") == 0) {
                    print_help();
                    return ANM_EXIT_OK;
                }
            }
            return commands[i].run(&commands[i], argc - 2, argv + 2);
        }
    }
    return anm_cli_usage_error(program, "unknown command \"%s\"", argv[1]);
}
