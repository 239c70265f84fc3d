#!/usr/bin/python3
"""Vectorised numpy peer of the C PCF engine (bench/forecast): the same
computation for one period of one zone -- sampling (demand a + b Beta, common
Beta wind with correlated per-DER normals, solar, fixed DERs), flows as one
matrix product over every constraint row (the matrices exported by
`anm-forecast pcf --export`, so the peer pays nothing for PTDF/LODF), the LIFO
rule, and the statistics (PCF, mean, P50/P90/P99 curtailment, headroom
quantiles). Prints the BLAS kernel numpy loaded (threadpoolctl) and one line
`peer samples_per_s=... kernel=...`.

  forecast_peer.py EXPORT.json INPUTS.json SAMPLES
"""
import json
import sys
import time

import numpy as np

CHUNK = 4096

try:
    from threadpoolctl import threadpool_info
except ImportError:  # the bench installs python3-threadpoolctl; say so if absent
    threadpool_info = None


def kernel_description():
    if threadpool_info is None:
        return "unknown(threadpoolctl missing)"
    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not infos:
        return "none"
    i = infos[0]
    return "%s:%s:%s:threads=%s" % (i.get("internal_api"), i.get("architecture"),
                                    i.get("filepath", "").split("/")[-1], i.get("num_threads"))


def run(model, inputs, n, rng):
    coef = np.asarray(model["coef"])            # rows x (2 + n_ders)
    limit = np.asarray(model["limit"])
    ders = model["ders"]
    nd = len(ders)
    cap = np.array([d["capacity_mw"] for d in ders])
    caps = cap.copy()
    for j, d in enumerate(ders):
        for k in ("available_mw", "pn_mw"):
            if d[k] is not None:
                caps[j] = min(caps[j], d[k])
    tech = [d["technology"] for d in ders]
    dem, wind, solar = model["demand"], model["wind"], model["solar"]

    s = dem["a"] + dem["b"] * rng.beta(dem["alpha"], dem["beta"], n)
    avail = np.zeros((n, nd))
    wind_idx = [j for j in range(nd) if tech[j] == "wind"]
    if wind_idx:
        w = rng.beta(wind["alpha"], wind["beta"], n)
        z = rng.standard_normal((n, len(wind_idx)))
        corr = inputs.get("wind_correlation")
        if corr:
            ids = [ders[j]["id"] for j in wind_idx]
            m = np.eye(len(wind_idx))
            pos = {i: k for k, i in enumerate(corr["ders"])}
            for a, ia in enumerate(ids):
                for b, ib in enumerate(ids):
                    if ia in pos and ib in pos:
                        m[a, b] = corr["matrix"][pos[ia]][pos[ib]]
            z = z @ np.linalg.cholesky(m).T
        cf = np.clip(w[:, None] + wind["sigma"] * z, 0.0, 1.0)
        avail[:, wind_idx] = np.minimum(cap[wind_idx] * cf, caps[wind_idx])
    solar_idx = [j for j in range(nd) if tech[j] == "solar"]
    if solar_idx and solar["day_probability"] > 0.0:
        day = rng.random(n) < solar["day_probability"]
        c = np.clip(solar["scale"] * rng.beta(solar["alpha"], solar["beta"], n), 0, 1) * day
        cf = np.clip(c[:, None] + solar["sigma"] * rng.standard_normal((n, len(solar_idx))), 0, 1)
        cf = np.where(c[:, None] > 0, cf, 0.0)
        avail[:, solar_idx] = np.minimum(cap[solar_idx] * cf, caps[solar_idx])
    for j, d in enumerate(ders):
        if tech[j] not in ("wind", "solar"):
            avail[:, j] = min(d["fixed_mw"] or 0.0, caps[j])

    x = np.empty((n, nd + 2))
    x[:, 0] = 1.0
    x[:, 1] = s
    x[:, 2:] = avail
    thr = model["sensitivity_threshold"]
    order = sorted((j for j in range(nd) if ders[j]["under_anm"]),
                   key=lambda j: -ders[j]["lifo_position"])
    headroom = np.empty(n)
    curtail = np.zeros((n, nd))
    # flows of every row for CHUNK samples at a time: one (CHUNK x 22) x (22 x 1,780)
    # product through BLAS (all samples at once would be 1.4 GB of flows at 100,000)
    for c0 in range(0, n, CHUNK):
        xc = x[c0:c0 + CHUNK]
        flows = xc @ coef.T                     # the flows of every row, every sample
        headroom[c0:c0 + CHUNK] = (limit - flows).min(axis=1)
        violated = (flows > limit + 1e-9).any(axis=1)
        idx = np.nonzero(violated)[0]
        # LIFO on the rows over their limit in some sample of the chunk; if the
        # curtailment pushes another row over (negative sensitivities), add it
        # and start again, so the result is LIFO on every row
        rows = (flows[idx] > limit + 1e-9).any(axis=0)
        while True:
            f = flows[idx][:, rows]
            lim = limit[rows]
            cut_all = np.zeros((len(idx), nd))
            for j in order:                     # LIFO: last connected first
                sens = coef[rows, 2 + j]
                rel = sens > thr
                if not rel.any():
                    continue
                excess = f[:, rel] - lim[rel]
                need = np.where(excess > 1e-9, excess / sens[rel], 0.0).max(axis=1)
                cut = np.minimum(np.maximum(need, 0.0), xc[idx, 2 + j])
                cut_all[:, j] = cut
                f = f - cut[:, None] * sens[None, :]
            after = flows[idx] - cut_all @ coef[:, 2:].T
            grown = rows | (after > limit + 1e-9).any(axis=0)
            if (grown == rows).all():
                break
            rows = grown
        curtail[c0 + idx] = cut_all
    delivered = avail - curtail
    stats = {
        "pcf": (curtail > 1e-9).mean(axis=0),
        "mean": curtail.mean(axis=0),
        "q": np.quantile(curtail, [0.5, 0.9, 0.99], axis=0),
        "avail": avail.mean(axis=0),
        "delivered": delivered.mean(axis=0),
        "acts": (curtail > 1e-9).any(axis=1).mean(),
        "headroom": np.quantile(headroom, [0.1, 0.5, 0.9]),
    }
    return stats


def main():
    model = json.load(open(sys.argv[1]))
    inputs = json.load(open(sys.argv[2]))
    n = int(sys.argv[3])
    period = model["period"]
    inputs = dict(inputs)
    rng = np.random.default_rng(2021)
    kernel = kernel_description()
    print("peer kernel: %s" % kernel)
    if not kernel.startswith("openblas:"):
        print("peer WARNING: numpy did not load OpenBLAS (%s): the reference BLAS is about 30"
              " times slower; install libopenblas0-pthread" % kernel)
    run(model, inputs, min(n, 20000), rng)     # warm-up
    best = None
    for _ in range(2):
        t0 = time.perf_counter()
        st = run(model, inputs, n, rng)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    print("peer period %d: P(ANM acts) %.4f, headroom p50 %.2f MW" %
          (period, st["acts"], st["headroom"][1]))
    print("peer samples_per_s=%.0f kernel=%s" % (n / best, kernel_description()))


if __name__ == "__main__":
    main()
