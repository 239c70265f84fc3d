#!/usr/bin/env python3
"""Derives a forecast inputs file (docs/inputs.md) for one zone and one 2021
settlement day from NESO's half-hourly GB series
(data/timeseries/gb_2021_halfhourly_utc.csv, NESO Open Data Licence: see
data/timeseries/NOTICE).

Per settlement period:
  demand  a + b * Beta(4, 4) around s = national demand / the year's mean
          national demand, with a = 0.95 s and b = 0.10 s (mean s, +-5 %);
  wind    common w ~ Beta with mean cf = embedded wind / its capacity and
          concentration 20 (alpha = 20 cf, beta = 20 (1 - cf), each >= 0.5),
          sigma 0.08 per DER;
  solar   night (embedded solar 0): day_probability 0; day: Beta with mean
          cf = embedded solar / capacity, concentration 30, sigma 0.03;
  DERs that are neither wind nor solar: fixed_mw, battery 0, demand 0.5 and
          other 0.7 of capacity.

  derive_inputs.py --zones data/zones/bench118.json --zone bench118 \
      --date 2021-03-11 > data/inputs/bench118_2021-03-11.json
  derive_inputs.py --zones data/zones/bench118.json --zone bench118 \
      --date 2021-11-27 --stress > data/inputs/bench118_stress_2021-11-27.json
"""
import argparse
import csv
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SERIES = os.path.join(HERE, "..", "timeseries", "gb_2021_halfhourly_utc.csv")


def beta_params(mean, concentration):
    mean = min(max(mean, 0.005), 0.995)
    return max(concentration * mean, 0.5), max(concentration * (1.0 - mean), 0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zones", required=True)
    ap.add_argument("--zone", required=True)
    ap.add_argument("--date", required=True, help="settlement date YYYY-MM-DD (2021)")
    ap.add_argument("--series", default=SERIES)
    ap.add_argument("--stress", action="store_true",
                    help="a constrained variant for benchmarks: demand 0.7 + 0.2 Beta(4, 4), "
                         "wind Beta(6, 2) with sigma 0.08, wind DERs correlated 0.5")
    args = ap.parse_args()

    with open(args.zones) as f:
        zones = json.load(f)
    zone = next((z for z in zones["zones"] if z["id"] == args.zone), None)
    if zone is None:
        sys.exit("derive_inputs.py: no zone %r in %s" % (args.zone, args.zones))

    rows = list(csv.DictReader(open(args.series)))
    mean_demand = sum(float(r["national_demand_mw"]) for r in rows) / len(rows)
    day = [r for r in rows if r["settlement_date"] == args.date]
    if not day:
        sys.exit("derive_inputs.py: no rows for %s" % args.date)
    day.sort(key=lambda r: int(r["settlement_period"]))

    fixed_share = {"battery": 0.0, "demand": 0.5, "other": 0.7}
    periods = []
    for r in day:
        s = float(r["national_demand_mw"]) / mean_demand
        wind_cf = float(r["embedded_wind_mw"]) / float(r["embedded_wind_capacity_mw"])
        solar_cf = float(r["embedded_solar_mw"]) / float(r["embedded_solar_capacity_mw"])
        wa, wb = beta_params(wind_cf, 20.0)
        period = {
            "period": int(r["settlement_period"]),
            "demand": {"kind": "beta", "a": round(0.95 * s, 6), "b": round(0.10 * s, 6),
                       "alpha": 4.0, "beta": 4.0},
            "wind": {"kind": "beta", "alpha": round(wa, 6), "beta": round(wb, 6), "sigma": 0.08},
        }
        if solar_cf <= 0.0:
            period["solar"] = {"kind": "beta", "day_probability": 0.0, "alpha": 1.0, "beta": 1.0}
        else:
            sa, sb = beta_params(solar_cf, 30.0)
            period["solar"] = {"kind": "beta", "day_probability": 1.0, "scale": 1.0,
                               "alpha": round(sa, 6), "beta": round(sb, 6), "sigma": 0.03}
        if args.stress:
            period["demand"] = {"kind": "beta", "a": 0.7, "b": 0.2, "alpha": 4.0, "beta": 4.0}
            period["wind"] = {"kind": "beta", "alpha": 6.0, "beta": 2.0, "sigma": 0.08}
        ders = {}
        for d in zone["ders"]:
            share = fixed_share.get(d["technology"])
            if share is not None:
                ders[d["id"]] = {"fixed_mw": round(share * d["capacity_mw"], 6)}
        if ders:
            period["ders"] = ders
        periods.append(period)

    out = {
        "version": 1,
        "zone": args.zone,
        "settlement_date": args.date,
        "source": "derived by data/inputs/derive_inputs.py from NESO's 2021 half-hourly "
                  "demand, embedded wind and solar (NESO Open Data Licence)",
        "outage_states": [{"id": "intact", "probability": 1.0, "branches": []}],
        "periods": periods,
    }
    if args.stress:
        wind = [d["id"] for d in zone["ders"] if d["technology"] == "wind"]
        out["wind_correlation"] = {
            "ders": wind,
            "matrix": [[1.0 if i == j else 0.5 for j in range(len(wind))] for i in range(len(wind))]}
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
