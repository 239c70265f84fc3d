#!/usr/bin/env python3
"""Derives data/replay/der_2021-06-21.csv: one UTC day of DER output (MW) for
every der_mw signal of the sample zones (data/zones/*.json), at 1-minute
resolution, from NESO's half-hourly 2021 data (data/timeseries, NESO Open
Data Licence, see data/timeseries/NOTICE).

  wind DER:    capacity_mw * embedded_wind_mw / embedded_wind_capacity_mw
  solar DER:   capacity_mw * embedded_solar_mw / embedded_solar_capacity_mw
  battery DER: capacity_mw * (demand - daily mean) / max |demand - daily mean|
               (discharging at the evening peak, charging overnight)

Half-hourly values are taken at the start of each period and interpolated
linearly to each minute (the last period holds its value). Output columns:
signal,time_utc,value,quality (quality 0: good). Values are rounded to 1 kW.

Usage: data/replay/derive.py [DAY]   (default 2021-06-21), from the repo root.
"""
import csv
import datetime as dt
import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent.parent
day = sys.argv[1] if len(sys.argv) > 1 else "2021-06-21"
start = dt.datetime.fromisoformat(day + "T00:00:00+00:00")

series = {}
with open(root / "data/timeseries/gb_2021_halfhourly_utc.csv") as f:
    for r in csv.DictReader(f):
        t = dt.datetime.fromisoformat(r["start_utc"].replace("Z", "+00:00"))
        if start <= t < start + dt.timedelta(days=1):
            series[t] = r
times = sorted(series)
if len(times) != 48:
    sys.exit(f"derive.py: expected 48 periods on {day}, found {len(times)}")

def column(name):
    return [float(series[t][name]) for t in times]

wind = [w / c for w, c in zip(column("embedded_wind_mw"), column("embedded_wind_capacity_mw"))]
solar = [s / c for s, c in zip(column("embedded_solar_mw"), column("embedded_solar_capacity_mw"))]
demand = column("national_demand_mw")
mean = sum(demand) / len(demand)
span = max(abs(d - mean) for d in demand)
battery = [(d - mean) / span for d in demand]
profile = {"wind": wind, "solar": solar, "battery": battery}

def per_minute(values):
    out = []
    for m in range(1440):
        i, frac = divmod(m, 30)
        nxt = values[i + 1] if i + 1 < len(values) else values[i]
        out.append(values[i] + (nxt - values[i]) * frac / 30.0)
    return out

rows = []
for zone_file in sorted((root / "data/zones").glob("*.json")):
    for zone in json.load(open(zone_file))["zones"]:
        ders = {d["id"]: d for d in zone["ders"]}
        for s in zone.get("signals", []):
            if s["kind"] != "der_mw":
                continue
            der = ders[s["element"]]
            shape = profile.get(der["technology"])
            if shape is None:
                continue
            for m, v in enumerate(per_minute(shape)):
                t = start + dt.timedelta(minutes=m)
                rows.append((t, s["id"], round(der["capacity_mw"] * v, 3)))
rows.sort(key=lambda r: (r[0], r[1]))
out = root / f"data/replay/der_{day}.csv"
with open(out, "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["signal", "time_utc", "value", "quality"])
    for t, sig, v in rows:
        w.writerow([sig, t.strftime("%Y-%m-%dT%H:%M:%SZ"), f"{v:.3f}", 0])
print(f"{out.relative_to(root)}: {len(rows)} samples")
