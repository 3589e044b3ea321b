#!/usr/bin/env python3
"""Runs the benchmark cases side by side: mproc, CPython, and the raw-syscall floor.

Each case is bench/cases/<case>.c (built as <build>/bench/bench_<case>, run with
"mproc" or "raw") and optionally bench/cases/<case>.py (the CPython side). Every
side prints "<value> <unit>", the time per operation of one repetition. The sides
run interleaved, --reps times each (each repetition starting with the next side),
and the medians are compared in one table and written to <build>/bench.json as
  [{"case": ..., "unit": ..., "mproc": ..., "cpython": ..., "raw": ...}, ...]
with null where a side has no equivalent (or no repetition of it worked), and
"failed": {side: repetitions that failed}. A side that exits non-zero, times out
or prints no "<value> <unit>" is reported with its reason and marked in the table
(FAILED, or "!" on a median of fewer repetitions), and run.py then exits non-zero.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_side(cmd, timeout):
    """One repetition of one side: (value, unit, None) on success, value None for a
    side that reports "none" (no equivalent); (None, None, why) when the side exited
    non-zero, timed out, could not start or printed no "<value> <unit>" line."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, None, f"timed out after {timeout} s"
    except OSError as e:
        return None, None, f"could not run: {e}"
    err = p.stderr.strip()[-300:]
    if p.returncode != 0:
        how = f"killed by signal {-p.returncode}" if p.returncode < 0 else f"exit {p.returncode}"
        return None, None, how + (f": {err}" if err else "")
    words = p.stdout.split()
    if len(words) < 2:
        return None, None, "no output" + (f" (stderr: {err})" if err else "")
    value, unit = words[-2:]
    if value == "none":
        return None, unit, None
    try:
        return float(value), unit, None
    except ValueError:
        return None, None, f"unreadable output {p.stdout.strip()[-80:]!r}"


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
        failures = {side: [] for side in sides}
        unit = None
        print(f"{case}: ", end="", flush=True)
        order = list(sides.items())
        for rep in range(args.reps):
            # Each repetition starts with another side, so that no side always runs
            # right after the same one (what one side leaves behind, such as the
            # CPUs' idle-polling history, otherwise favours the next side every time).
            for side, cmd in order[rep % len(order):] + order[:rep % len(order)]:
                value, u, why = run_side(cmd, args.timeout)
                if why is not None:
                    failures[side].append(why)
                    print("F", end="", flush=True)
                    continue
                if value is not None:
                    samples[side].append(value)
                if unit is not None and u != unit:
                    sys.exit(f"{case}: {side} reports {u}, others {unit}")
                unit = u
            print(".", end="", flush=True)
        print()
        for side, whys in failures.items():
            for why in sorted(set(whys)):
                print(f"  {case} {side}: failed {whys.count(why)}/{args.reps}: {why}", file=sys.stderr)
        row = {"case": case, "unit": unit}
        for side in ("mproc", "cpython", "raw"):
            row[side] = statistics.median(samples[side]) if samples.get(side) else None
        row["failed"] = {side: len(w) for side, w in failures.items() if w}
        results.append(row)

    def fmt(r, side):
        # A side that failed shows FAILED (every repetition) or its median of the
        # repetitions that worked marked with "!"; "-" is a side with no equivalent.
        v, nfail = r[side], r["failed"].get(side, 0)
        if nfail and v is None:
            return "FAILED"
        s = "-" if v is None else f"{v:.4g}"
        return s + "!" if nfail else s

    def ratio(a, b):
        return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"

    print()
    print(f"{'case':34} {'unit':5} {'mproc':>10} {'cpython':>10} {'raw':>10} {'mproc/raw':>10} {'cpython/mproc':>14}")
    for r in results:
        print(f"{r['case']:34} {r['unit'] or '-':5} {fmt(r, 'mproc'):>10} {fmt(r, 'cpython'):>10} "
              f"{fmt(r, 'raw'):>10} {ratio(r['mproc'], r['raw']):>10} {ratio(r['cpython'], r['mproc']):>14}")
    failed = [(r["case"], side, n) for r in results for side, n in r["failed"].items()]
    if failed:
        print("\nFAILED: " + ", ".join(f"{c} {side} ({n}/{args.reps} repetitions)" for c, side, n in failed)
              + "; FAILED = no repetition worked, ! = median of the ones that did (reasons above)")
    path = os.path.join(args.build, "bench.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    print(f"\nwrote {path}")
    if failed:
        sys.exit(f"{len(failed)} side(s) failed")


if __name__ == "__main__":
    main()
