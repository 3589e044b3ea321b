#!/usr/bin/env python3
"""Runs the benchmark cases side by side: mproc, CPython, and the raw-syscall floor.

Each case is bench/cases/<case>.c (built as <build>/bench/bench_<case>, run with
"mproc" or "raw") and optionally bench/cases/<case>.py (the CPython side). Every
side prints "<value> <unit>", the time per operation of one repetition. The sides
run interleaved, --reps times each, and the medians are compared in one table and
written to <build>/bench.json as
  [{"case": ..., "unit": ..., "mproc": ..., "cpython": ..., "raw": ...}, ...]
with null where a side has no equivalent.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_side(cmd, timeout):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True).stdout
    except subprocess.CalledProcessError as e:
        sys.stderr.write(f"  {' '.join(cmd)} failed ({e.returncode}): {e.stderr.strip()[-500:]}\n")
        return None
    except subprocess.TimeoutExpired:
        sys.stderr.write(f"  {' '.join(cmd)} timed out\n")
        return None
    value, unit = out.split()[-2:]
    return (None if value == "none" else float(value)), unit


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("cases", nargs="*")
    args = ap.parse_args()

    available = sorted(f[:-2] for f in os.listdir(os.path.join(HERE, "cases")) if f.endswith(".c"))
    cases = args.cases or available
    unknown = [c for c in cases if c not in available]
    if unknown:
        sys.exit(f"unknown case(s): {' '.join(unknown)}; known: {' '.join(available)}")

    results = []
    for case in cases:
        exe = os.path.join(args.build, "bench", f"bench_{case}")
        py = os.path.join(HERE, "cases", f"{case}.py")
        sides = {"mproc": [exe, "mproc"], "raw": [exe, "raw"]}
        if os.path.exists(py):
            sides["cpython"] = [sys.executable, py]
        samples = {side: [] for side in sides}
        unit = None
        print(f"{case}: ", end="", flush=True)
        for _ in range(args.reps):
            for side, cmd in sides.items():
                r = run_side(cmd, args.timeout)
                if r is not None:
                    if r[0] is not None:
                        samples[side].append(r[0])
                    if unit is not None and r[1] != unit:
                        sys.exit(f"{case}: {side} reports {r[1]}, others {unit}")
                    unit = r[1]
            print(".", end="", flush=True)
        print()
        row = {"case": case, "unit": unit}
        for side in ("mproc", "cpython", "raw"):
            row[side] = statistics.median(samples[side]) if samples.get(side) else None
        results.append(row)

    def fmt(v):
        return "-" if v is None else f"{v:.4g}"

    def ratio(a, b):
        return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"

    print()
    print(f"{'case':34} {'unit':5} {'mproc':>10} {'cpython':>10} {'raw':>10} {'mproc/raw':>10} {'cpython/mproc':>14}")
    for r in results:
        print(f"{r['case']:34} {r['unit'] or '-':5} {fmt(r['mproc']):>10} {fmt(r['cpython']):>10} "
              f"{fmt(r['raw']):>10} {ratio(r['mproc'], r['raw']):>10} {ratio(r['cpython'], r['mproc']):>14}")
    path = os.path.join(args.build, "bench.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    print(f"\nwrote {path}")
    if any(r["mproc"] is None for r in results):
        sys.exit("some mproc sides failed")


if __name__ == "__main__":
    main()
