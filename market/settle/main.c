/*
 * anm-settle: settles the market's trades of one settlement day against
 * meter data and/or telemetry, writes the reports and stores them.
 * See docs/settlement.md.
 */
#include "engine/calendar.h"
#include "engine/cli.h"
#include "engine/db.h"
#include "engine/error.h"
#include "market/settlement.h"
#include "market/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "anm-settle"
#define MAX_ITEMS 256

static const char USAGE[] =
    "usage: anm-settle --date YYYY-MM-DD [options]\n"
    "\n"
    "Settles the trades of the periods of one settlement day (read from the\n"
    "market_trades table) and stores the settlement and its reports.\n"
    "\n"
    "  --date YYYY-MM-DD        the settlement day\n"
    "  --conninfo STRING        PostgreSQL connection (or $ANM_DB_CONNINFO)\n"
    "  --meter FILE             half-hourly meter data CSV (der,settlement_date,period,mwh);\n"
    "                           repeatable\n"
    "  --nominations FILE       nominated baselines, same CSV format\n"
    "  --telemetry DER=SIGNAL   integrate telemetry signal SIGNAL (signal_key) for DER;\n"
    "                           repeatable\n"
    "  --der DER:DIR:BASELINE   how DER settles: DIR down|up, BASELINE nominated|historical|\n"
    "                           fixed=MW (a flat profile); default down:historical; repeatable\n"
    "  --historical-days N      days of a historical baseline (default 10)\n"
    "  --penalty GBP_PER_MWH    charge per MWh of shortfall (default 0)\n"
    "  --dso PARTICIPANT        the DSO's participant id (its report covers every trade)\n"
    "  --neso PARTICIPANT       NESO's participant id\n"
    "  --out DIR                also write the reports as DIR/<kind>-<id>.csv and .json\n"
    "  --no-store               do not write to the database\n"
    "  --log-level LEVEL        error, warn, info, debug\n"
    "  --help, --version\n";

typedef struct options {
    const char *date, *conninfo, *nominations, *out, *log_level;
    const char *meters[MAX_ITEMS];
    size_t n_meters;
    uint32_t telemetry_der[MAX_ITEMS];
    int32_t telemetry_signal[MAX_ITEMS];
    size_t n_telemetry;
    settlement_der ders[MAX_ITEMS];
    size_t n_ders;
    long historical_days;
    double penalty_gbp;
    uint32_t dso, neso;
    int store;
} options;

static int parse_id(const char *text, uint32_t *out)
{
    long v = 0;
    int rc = anm_parse_long(text, 0, (long)UINT32_MAX - 1, &v);
    *out = (uint32_t)v;
    return rc;
}

/* DER:down|up:nominated|historical|fixed=MW */
static int parse_der(const char *text, settlement_der *d)
{
    char buf[128];
    int n = snprintf(buf, sizeof buf, "%s", text);
    if (n < 0 || (size_t)n >= sizeof buf) {
        return ANM_EPARSE;
    }
    char *dir = strchr(buf, ':');
    char *base = dir ? strchr(dir + 1, ':') : NULL;
    if (base == NULL) {
        return ANM_EPARSE;
    }
    *dir++ = '\0';
    *base++ = '\0';
    memset(d, 0, sizeof *d);
    if (parse_id(buf, &d->der) != ANM_OK) {
        return ANM_EPARSE;
    }
    if (strcmp(dir, "down") == 0) {
        d->direction = SETTLEMENT_TURN_DOWN;
    } else if (strcmp(dir, "up") == 0) {
        d->direction = SETTLEMENT_TURN_UP;
    } else {
        return ANM_EPARSE;
    }
    if (strcmp(base, "nominated") == 0) {
        d->baseline = SETTLEMENT_BASELINE_NOMINATED;
    } else if (strcmp(base, "historical") == 0) {
        d->baseline = SETTLEMENT_BASELINE_HISTORICAL;
    } else if (strncmp(base, "fixed=", 6) == 0) {
        double mw = 0;
        if (anm_parse_double(base + 6, -1e6, 1e6, &mw) != ANM_OK) {
            return ANM_EPARSE;
        }
        d->baseline = SETTLEMENT_BASELINE_FIXED;
        for (int k = 0; k < SETTLEMENT_SLOTS; k++) {
            d->fixed_mw[k] = mw;
        }
    } else {
        return ANM_EPARSE;
    }
    return ANM_OK;
}

static int parse_options(int argc, char **argv, options *o)
{
    *o = (options){.historical_days = 10,
                   .dso = SETTLEMENT_NO_PARTICIPANT,
                   .neso = SETTLEMENT_NO_PARTICIPANT,
                   .store = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0) {
            fputs(USAGE, stdout);
            return 1;
        }
        if (strcmp(a, "--version") == 0) {
            anm_cli_version(PROG);
            return 1;
        }
        if (strcmp(a, "--no-store") == 0) {
            o->store = 0;
            continue;
        }
        if (i + 1 >= argc) {
            return anm_cli_usage_error(PROG, "option %s needs a value or is unknown", a);
        }
        const char *v = argv[++i];
        if (strcmp(a, "--date") == 0) {
            o->date = v;
        } else if (strcmp(a, "--conninfo") == 0) {
            o->conninfo = v;
        } else if (strcmp(a, "--nominations") == 0) {
            o->nominations = v;
        } else if (strcmp(a, "--out") == 0) {
            o->out = v;
        } else if (strcmp(a, "--log-level") == 0) {
            o->log_level = v;
        } else if (strcmp(a, "--meter") == 0 && o->n_meters < MAX_ITEMS) {
            o->meters[o->n_meters++] = v;
        } else if (strcmp(a, "--telemetry") == 0 && o->n_telemetry < MAX_ITEMS) {
            char buf[64];
            int n = snprintf(buf, sizeof buf, "%s", v);
            char *eq = strchr(buf, '=');
            long key = 0;
            if (n < 0 || (size_t)n >= sizeof buf || eq == NULL) {
                return anm_cli_usage_error(PROG, "--telemetry expects DER=SIGNAL, got \"%s\"", v);
            }
            *eq = '\0';
            if (parse_id(buf, &o->telemetry_der[o->n_telemetry]) != ANM_OK ||
                anm_parse_long(eq + 1, 0, INT32_MAX, &key) != ANM_OK) {
                return anm_cli_usage_error(PROG, "--telemetry expects DER=SIGNAL, got \"%s\"", v);
            }
            o->telemetry_signal[o->n_telemetry++] = (int32_t)key;
        } else if (strcmp(a, "--der") == 0 && o->n_ders < MAX_ITEMS) {
            if (parse_der(v, &o->ders[o->n_ders]) != ANM_OK) {
                return anm_cli_usage_error(
                    PROG, "--der expects DER:down|up:nominated|historical|fixed=MW, got \"%s\"", v);
            }
            o->n_ders++;
        } else if (strcmp(a, "--historical-days") == 0) {
            if (anm_parse_long(v, 1, 366, &o->historical_days) != ANM_OK) {
                return anm_cli_usage_error(PROG, "--historical-days must be 1..366, got \"%s\"", v);
            }
        } else if (strcmp(a, "--penalty") == 0) {
            if (anm_parse_double(v, 0, 1e6, &o->penalty_gbp) != ANM_OK) {
                return anm_cli_usage_error(PROG, "--penalty must be 0..1e6 GBP/MWh, got \"%s\"", v);
            }
        } else if (strcmp(a, "--dso") == 0 || strcmp(a, "--neso") == 0) {
            if (parse_id(v, a[2] == 'd' ? &o->dso : &o->neso) != ANM_OK) {
                return anm_cli_usage_error(PROG, "%s expects a participant id, got \"%s\"", a, v);
            }
        } else {
            return anm_cli_usage_error(PROG, "unknown option %s", a);
        }
    }
    if (o->date == NULL) {
        return anm_cli_usage_error(PROG, "--date is required");
    }
    return 0;
}

static int write_file(const char *dir, const char *kind, uint32_t party, const char *ext,
                      const char *body)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s-%u.%s", dir, kind, (unsigned)party, ext);
    if (n < 0 || (size_t)n >= sizeof path) {
        return ANM_ERANGE;
    }
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        return ANM_EIO;
    }
    int ok = fputs(body, f) >= 0;
    ok = (fclose(f) == 0) && ok;
    return ok ? ANM_OK : ANM_EIO;
}

static int write_party(const settlement_report *r, const char *dir, settlement_party_kind kind,
                       uint32_t party)
{
    char *csv = NULL, *json = NULL;
    int rc = settlement_report_csv(r, kind, party, &csv);
    if (rc == ANM_OK) {
        rc = settlement_report_json(r, kind, party, &json);
    }
    const char *name = settlement_party_kind_name(kind);
    if (rc == ANM_OK) {
        rc = write_file(dir, name, party, "csv", csv);
    }
    if (rc == ANM_OK) {
        rc = write_file(dir, name, party, "json", json);
    }
    free(csv);
    free(json);
    return rc;
}

static int write_reports(const settlement_report *r, const char *dir)
{
    uint32_t *ids = NULL;
    size_t n = 0;
    int rc = settlement_report_participants(r, &ids, &n);
    for (size_t i = 0; i < n && rc == ANM_OK; i++) {
        rc = write_party(r, dir, SETTLEMENT_PARTY_PARTICIPANT, ids[i]);
    }
    free(ids);
    if (rc == ANM_OK && r->dso != SETTLEMENT_NO_PARTICIPANT) {
        rc = write_party(r, dir, SETTLEMENT_PARTY_DSO, r->dso);
    }
    if (rc == ANM_OK && r->neso != SETTLEMENT_NO_PARTICIPANT) {
        rc = write_party(r, dir, SETTLEMENT_PARTY_NESO, r->neso);
    }
    return rc;
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, &o);
    if (rc != 0) {
        return rc == 1 ? ANM_EXIT_OK : rc;
    }
    if (anm_cli_apply_log_level(o.log_level) != ANM_OK) {
        return anm_cli_usage_error(PROG, "unknown log level \"%s\"", o.log_level);
    }
    anm_settlement_date date;
    anm_error_detail err;
    if (anm_settlement_date_parse(o.date, &date, &err) != ANM_OK) {
        return anm_cli_usage_error(PROG, "--date: %s", err.message);
    }
    int64_t day_start = 0, day_end = 0;
    anm_calendar_day_start_ms(date, &day_start);
    anm_calendar_day_start_ms(anm_settlement_date_add_days(date, 1), &day_end);
    const char *conninfo = anm_db_conninfo(o.conninfo);
    if (conninfo == NULL) {
        return anm_cli_usage_error(PROG, "no database: give --conninfo or set %s",
                                   ANM_DB_CONNINFO_ENV);
    }
    int exit_code = ANM_EXIT_FAILURE;
    anm_db *db = NULL;
    market_trade *trades = NULL;
    size_t n_trades = 0;
    settlement_report *report = NULL;
    settlement_meter *meter = settlement_meter_new();
    settlement_meter *telemetry = settlement_meter_new();
    settlement_meter *nominations = settlement_meter_new();
    if (meter == NULL || telemetry == NULL || nominations == NULL) {
        anm_cli_fail(PROG, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < o.n_meters; i++) {
        if (settlement_meter_load_csv(meter, o.meters[i], &err) != ANM_OK) {
            char line[1200];
            anm_error_detail_format(&err, line, sizeof line);
            anm_cli_fail(PROG, "%s", line);
            goto done;
        }
    }
    if (o.nominations != NULL &&
        settlement_meter_load_csv(nominations, o.nominations, &err) != ANM_OK) {
        char line[1200];
        anm_error_detail_format(&err, line, sizeof line);
        anm_cli_fail(PROG, "%s", line);
        goto done;
    }
    anm_db_options dbo = {.component = "settle", .max_attempts = 1};
    if (anm_db_connect(conninfo, &dbo, &db) != ANM_OK) {
        anm_cli_fail(PROG, "could not connect to the database: %s", anm_db_error_message(db));
        goto done;
    }
    if (market_store_load_trades(db, day_start, day_end, &trades, &n_trades) != ANM_OK) {
        anm_cli_fail(PROG, "could not read trades: %s", anm_db_error_message(db));
        goto done;
    }
    /* telemetry from the start of the historical window to the end of the day */
    int64_t history_start = day_start - (int64_t)o.historical_days * 86400000 - 3600000;
    for (size_t i = 0; i < o.n_telemetry; i++) {
        if (settlement_meter_load_telemetry(telemetry, db, o.telemetry_der[i],
                                            o.telemetry_signal[i], history_start, day_end, NULL,
                                            NULL) != ANM_OK) {
            anm_cli_fail(PROG, "could not read telemetry of signal %d: %s",
                         (int)o.telemetry_signal[i], anm_db_error_message(db));
            goto done;
        }
    }
    settlement_input in = {.trades = trades,
                           .n_trades = n_trades,
                           .ders = o.ders,
                           .n_ders = o.n_ders,
                           .meter = meter,
                           .telemetry = telemetry,
                           .nominations = nominations,
                           .historical_days = (int)o.historical_days,
                           .shortfall_penalty_ticks = (int32_t)(o.penalty_gbp * 100 + 0.5),
                           .dso = o.dso,
                           .neso = o.neso};
    if (settlement_run(&in, &report) != ANM_OK) {
        anm_cli_fail(PROG, "settlement failed");
        goto done;
    }
    if (o.out != NULL && write_reports(report, o.out) != ANM_OK) {
        anm_cli_fail(PROG, "could not write the reports to \"%s\"", o.out);
        goto done;
    }
    if (o.store && settlement_store(db, report, date) != ANM_OK) {
        anm_cli_fail(PROG, "could not store the settlement: %s", anm_db_error_message(db));
        goto done;
    }
    char *csv = NULL;
    if (settlement_report_csv(report, SETTLEMENT_PARTY_DSO, 0, &csv) == ANM_OK) {
        fputs(csv, stdout);
        free(csv);
    }
    exit_code = ANM_EXIT_OK;
done:
    settlement_report_destroy(&report);
    free(trades);
    settlement_meter_destroy(&meter);
    settlement_meter_destroy(&telemetry);
    settlement_meter_destroy(&nominations);
    anm_db_destroy(&db);
    return exit_code;
}
