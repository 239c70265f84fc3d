#!/usr/bin/env python3
"""Estimates how often the DERs of data/zones/feeder33.json are curtailed
over the 2021 half-hours (the share stated in docs/zones.md).

Model: lossless active-power flow on the radial 33-bus feeder (each branch
carries the net injection of the buses behind it); every bus load scaled by
national_demand / max(national_demand); wind and solar output = capacity x
GB embedded wind/solar capacity factor of the half-hour; the battery is
assumed not to export while the zone is constrained (it is scheduled around
the constraint), so it counts 0 MW here. LIFO: the excess over each
branch's normal rating is taken from the DERs behind that branch, the last
in the queue first.

Usage: feeder33_share.py [ZONES.json] [TIMESERIES.csv]  (run from the repo root)
"""
import csv
import json
import os
import re
import sys

here = os.path.dirname(os.path.abspath(__file__))
zone_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "feeder33.json")
series_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
    here, "..", "timeseries", "gb_2021_halfhourly_utc.csv")

zones = json.load(open(zone_path))
case_text = open(os.path.join(os.path.dirname(zone_path), zones["case"])).read()


def matrix(name):
    body = re.search(r"mpc\." + name + r"\s*=\s*\[(.*?)\];", case_text, re.S).group(1)
    rows = []
    for line in body.split("\n"):
        line = line.split("%")[0].strip().rstrip(";").strip()
        if line:
            rows.append([float(x) for x in line.split()])
    return rows


bus = matrix("bus")
branch = matrix("branch")
load_mw = {int(r[0]): r[2] / 1e3 for r in bus}  # kW in the file
children = {}
for r in branch:
    if r[10] > 0:
        children.setdefault(int(r[0]), []).append(int(r[1]))


def downstream(b):
    out, stack = set(), [b]
    while stack:
        v = stack.pop()
        out.add(v)
        stack.extend(children.get(v, []))
    return out


zone = zones["zones"][0]
monitored = []
for m in zone["monitored"]:
    f, t = int(branch[m["branch"] - 1][0]), int(branch[m["branch"] - 1][1])
    # radial feeder fed from bus 1: export is flow from the far side (t) to f
    monitored.append((m["id"], downstream(t), m["normal_mw"]))
ders = sorted(zone["ders"], key=lambda d: d["lifo_position"])

rows = list(csv.DictReader(open(series_path)))
peak = max(float(r["national_demand_mw"]) for r in rows)
curtailed_halfhours = {d["id"]: 0 for d in ders}
curtailed_mwh = {d["id"]: 0.0 for d in ders}
available_mwh = {d["id"]: 0.0 for d in ders}
constrained = 0
for r in rows:
    scale = float(r["national_demand_mw"]) / peak
    cf = {"wind": float(r["embedded_wind_mw"]) / float(r["embedded_wind_capacity_mw"]),
          "solar": float(r["embedded_solar_mw"]) / float(r["embedded_solar_capacity_mw"]),
          "battery": 0.0}
    output = {d["id"]: d["capacity_mw"] * cf.get(d["technology"], 0.0) for d in ders}
    curtail = {d["id"]: 0.0 for d in ders}
    any_excess = False
    for _ in range(2):  # a second pass settles branches relieved by the first
        for _, buses, rating in monitored:
            export = sum(output[d["id"]] - curtail[d["id"]] for d in ders if d["bus"] in buses) \
                - scale * sum(load_mw[b] for b in buses)
            excess = export - rating
            if excess <= 1e-9:
                continue
            any_excess = True
            for d in reversed(ders):  # last in, first off, among the DERs behind it
                if excess <= 1e-9:
                    break
                if d["bus"] not in buses or not d.get("under_anm", True):
                    continue
                take = min(excess, output[d["id"]] - curtail[d["id"]])
                curtail[d["id"]] += take
                excess -= take
    constrained += any_excess
    for d in ders:
        i = d["id"]
        available_mwh[i] += output[i] * 0.5
        if curtail[i] > 1e-6:
            curtailed_halfhours[i] += 1
            curtailed_mwh[i] += curtail[i] * 0.5

n = len(rows)
print(f"half-hours: {n}, constrained: {constrained} ({100.0 * constrained / n:.1f}%)")
for d in ders:
    i = d["id"]
    share = 100.0 * curtailed_halfhours[i] / n
    energy = 100.0 * curtailed_mwh[i] / available_mwh[i] if available_mwh[i] > 0 else 0.0
    print(f"{i:12s} queue {d['lifo_position']}: curtailed in {curtailed_halfhours[i]} half-hours "
          f"({share:.1f}%), {curtailed_mwh[i]:.0f} MWh of {available_mwh[i]:.0f} MWh "
          f"({energy:.1f}% of its energy)")
