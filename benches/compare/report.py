#!/usr/bin/env python3
"""The table and the target verdicts of run.sh, from its results.tsv.

    report.py results.tsv

Every ratio is paired: a configuration's req/s over its baseline's in the
same pass (seconds apart). Printed: the median over the passes and the
spread, [lowest, highest]. A target is met when the whole spread is above it,
missed when the whole spread is below it, and not shown either way when it
lies within the spread.
"""

import csv
import statistics
import sys

SCENARIOS = [
    ("untouched", "no cookie, untouched"),
    ("read", "existing session, read-only"),
    ("rmw", "existing session, read-modify-write"),
    ("new", "new session each request"),
]
CONFIGS = [
    "bare",
    "sessio-memory",
    "sessio-cookie",
    "sessio-redis",
    "sessio-redis-cached",
    "sessio-sqlite",
    "sessio-postgres",
    "ts-memory",
    "ts-memory-signed",
    "ts-redis",
]
# (what, scenario, configuration, baseline, at least)
TARGETS = [
    ("memory read-modify-write ≥ 1.0× tower-sessions (unsigned)", "rmw", "sessio-memory", "ts-memory", 1.0),
    ("memory read-modify-write ≥ 1.15× tower-sessions signed", "rmw", "sessio-memory", "ts-memory-signed", 1.15),
    ("cookie store read-modify-write ≥ 0.85 of bare axum", "rmw", "sessio-cookie", "bare", 0.85),
    ("Redis read-modify-write ≥ 1.5× tower-sessions Redis", "rmw", "sessio-redis", "ts-redis", 1.5),
    ("new session ≥ 1.2× tower-sessions memory (sessio memory)", "new", "sessio-memory", "ts-memory", 1.2),
    ("new session ≥ 1.2× tower-sessions memory (sessio cookie)", "new", "sessio-cookie", "ts-memory", 1.2),
    ("cached Redis read-only ≥ 0.8× sessio memory read-only", "read", "sessio-redis-cached", "sessio-memory", 0.8),
    ("cached Redis read-only ≥ 3× tower-sessions Redis", "read", "sessio-redis-cached", "ts-redis", 3.0),
]
# Paired ratios reported without a target: (what, scenario, configuration, baseline).
PAIRS = [
    ("cached ÷ uncached Redis, read-only (what the cache gains)", "read", "sessio-redis-cached", "sessio-redis"),
    ("cached ÷ uncached Redis, read-modify-write (what the PING fence costs)", "rmw", "sessio-redis-cached", "sessio-redis"),
    ("cached ÷ uncached Redis, new session (the fence again)", "new", "sessio-redis-cached", "sessio-redis"),
]


def peer(config):
    return "ts-redis" if "redis" in config else "ts-memory"


def main(path):
    rows = {}
    with open(path) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            rows[(r["pass"], r["config"], r["scenario"])] = r
    passes = sorted({k[0] for k in rows}, key=int)
    seen = [c for c in CONFIGS if any(k[1] == c for k in rows)]

    def ratios(scenario, config, base):
        out = []
        for p in passes:
            a, b = rows.get((p, config, scenario)), rows.get((p, base, scenario))
            if a and b and float(b["rps"]) > 0:
                out.append(float(a["rps"]) / float(b["rps"]))
        return out

    def shown(rs, digits):
        if not rs:
            return ""
        return f"{statistics.median(rs):.{digits}f} [{min(rs):.{digits}f}, {max(rs):.{digits}f}]"

    def med(scenario, config, field):
        vs = [float(rows[(p, config, scenario)][field]) for p in passes if (p, config, scenario) in rows]
        return statistics.median(vs) if vs else 0.0

    print("| scenario | configuration | req/s | p99 ms | × bare axum | × tower-sessions | server CPU | user µs/req | kernel µs/req |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for sn, label in SCENARIOS:
        for cn in seen:
            if not any((p, cn, sn) in rows for p in passes):
                continue
            errors = sum(int(rows[(p, cn, sn)]["errors"]) for p in passes if (p, cn, sn) in rows)
            e = f" ({errors} errors)" if errors else ""
            tb = shown(ratios(sn, cn, "bare"), 3) if cn != "bare" else "1"
            tt = shown(ratios(sn, cn, peer(cn)), 2) if cn.startswith("sessio") else ""
            print(
                f"| {label} | {cn} | {med(sn, cn, 'rps'):.0f}{e} | {med(sn, cn, 'p99_ms'):.2f} | {tb} | {tt} "
                f"| {med(sn, cn, 'server_cpu_pct'):.0f} % | {med(sn, cn, 'user_us_per_req'):.2f} "
                f"| {med(sn, cn, 'kernel_us_per_req'):.2f} |"
            )
    print()
    print("| target | paired ratio, median [spread] | verdict |")
    print("|---|---:|---|")
    for what, sn, cn, base, least in TARGETS:
        rs = ratios(sn, cn, base)
        if not rs:
            print(f"| {what} | not measured | |")
            continue
        if min(rs) >= least:
            verdict = "met"
        elif max(rs) < least:
            verdict = "missed"
        else:
            verdict = "not shown either way"
        print(f"| {what} | {shown(rs, 3)} | {verdict} |")
    pairs = [(what, ratios(sn, cn, base)) for what, sn, cn, base in PAIRS]
    pairs = [(what, rs) for what, rs in pairs if rs]
    if pairs:
        print()
        print("| paired ratio | median [spread] |")
        print("|---|---:|")
        for what, rs in pairs:
            print(f"| {what} | {shown(rs, 3)} |")


if __name__ == "__main__":
    main(sys.argv[1])
