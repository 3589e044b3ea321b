#!/usr/bin/env python3
"""Runs the sweeps of `make bench SWEEP=1`: how the cost of one operation grows
with the work (message size, number of processes, parent size, item count), for
mproc, CPython and the raw-syscall floor, each point in one run.

Each sweep is a program bench/sweeps/<family>.c (built as <build>/bench/bench_<family>,
run as `bench_<family> mproc|raw <args...>`) and its CPython side
bench/sweeps/<family>.py (run with the same args). Every side prints "<value> <unit>".
Writes <build>/sweep.json, one SVG chart per sweep into docs/perf/ (gnuplot), and
docs/performance.md with the charts and a table of the figures.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# name: (family, x label, [(x, args)], what it shows, extra sides {label: env})
SWEEPS = [
    ("queue_by_message_size", "sweep_queue", "message size (bytes)",
     [(s, [s, 1, 1]) for s in (8, 64, 512, 4096, 32768, 262144, 1048576)],
     "one producer and one consumer process, time per message", {}),
    ("queue_by_processes", "sweep_queue", "producers = consumers",
     [(p, [64, p, p]) for p in (1, 2, 4, 8)],
     "64-byte messages, time per message (2 cores: more processes share them)", {}),
    ("process_by_number_at_once", "sweep_process", "children started before the first join",
     [(k, [k, 0]) for k in (1, 4, 16, 64)],
     "start + join of children that return at once, time per child", {}),
    ("process_by_parent_size", "sweep_process", "parent's touched memory (MiB)",
     [(m, [1, m]) for m in (1, 10, 100, 1024)],
     "start + join of one child from a parent of that size, time per child",
     {"mproc forkserver": {"MPROC_START_METHOD": "forkserver"}}),
    ("pipe_by_message_size", "sweep_pipe", "message size (bytes)",
     [(s, [s]) for s in (16, 256, 4096, 65536, 1048576, 16777216)],
     "one message to a child and a 1-byte ack, time per message", {}),
    ("pool_map_by_item_count", "sweep_pool_map", "items",
     [(n, [n]) for n in (1000, 10000, 100000, 1000000)],
     "squaring ints on 2 workers, default chunksize, time per item", {}),
]


def run(cmd, timeout, env=None):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True,
                             env=dict(os.environ, **(env or {}))).stdout
    except subprocess.CalledProcessError as e:
        sys.stderr.write(f"  {' '.join(cmd)} failed ({e.returncode}): {e.stderr.strip()[-300:]}\n")
        return None, None
    except subprocess.TimeoutExpired:
        sys.stderr.write(f"  {' '.join(cmd)} timed out\n")
        return None, None
    value, unit = out.split()[-2:]
    return (None if value == "none" else float(value)), unit


def gp(text):
    """text as a gnuplot single-quoted string ('' is a literal quote there)."""
    return "'" + text.replace("'", "''") + "'"


def chart(sweep, xlabel, unit, rows, labels, path):
    data = path[:-4] + ".dat"
    with open(data, "w") as f:
        for r in rows:
            f.write(" ".join([str(r["x"])] + ["NaN" if r[l] is None else repr(r[l]) for l in labels]) + "\n")
    plots = ", ".join(f"{gp(data)} using 1:{i + 2} with linespoints title {gp(l)}"
                      for i, l in enumerate(labels))
    script = (f"set terminal svg size 720,420 dynamic font 'sans,11'; set output {gp(path)};"
              f"set datafile missing 'NaN'; set logscale xy; set grid; set key top left;"
              f"set title {gp(sweep)}; set xlabel {gp(xlabel)};"
              f"set ylabel {gp(unit + ' per operation (log)')}; plot {plots}")
    subprocess.run(["gnuplot", "-e", script], check=True)
    os.unlink(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("sweeps", nargs="*")
    args = ap.parse_args()
    chosen = [s for s in SWEEPS if not args.sweeps or s[0] in args.sweeps]
    if not chosen:
        sys.exit(f"unknown sweep(s); known: {' '.join(s[0] for s in SWEEPS)}")
    if shutil.which("gnuplot") is None:
        sys.exit("gnuplot is missing (make bench SWEEP=1 installs Debian's gnuplot-nox)")
    os.makedirs(os.path.join(ROOT, "docs", "perf"), exist_ok=True)
    json_path = os.path.join(args.build, "sweep.json")
    results = {}
    if os.path.exists(json_path):
        with open(json_path) as f:
            results = json.load(f)
    for name, family, xlabel, points, what, extra in chosen:
        exe = os.path.join(args.build, "bench", f"bench_{family}")
        py = os.path.join(HERE, "sweeps", f"{family}.py")
        sides = {"mproc": ([exe, "mproc"], None)}
        sides.update({label: ([exe, "mproc"], env) for label, env in extra.items()})
        sides["cpython"] = ([sys.executable, py], None)
        sides["raw"] = ([exe, "raw"], None)
        rows, unit = [], None
        print(f"{name}: ", end="", flush=True)
        for x, pargs in points:
            pargs = [str(a) for a in pargs]
            samples = {label: [] for label in sides}
            for _ in range(args.reps):
                for label, (cmd, env) in sides.items():
                    v, u = run(cmd + pargs, args.timeout, env)
                    if v is not None:
                        samples[label].append(v)
                        unit = u
            row = {"x": x}
            row.update({l: statistics.median(s) if s else None for l, s in samples.items()})
            rows.append(row)
            print(".", end="", flush=True)
        print()
        labels = list(sides)
        chart(name, xlabel, unit, rows, labels, os.path.join(ROOT, "docs", "perf", f"{name}.svg"))
        results[name] = {"xlabel": xlabel, "unit": unit, "what": what, "labels": labels, "rows": rows}
        with open(json_path, "w") as f:  # after each sweep: an interrupted run keeps what it did
            json.dump(results, f, indent=2)
            f.write("\n")
    write_page({s[0]: results[s[0]] for s in SWEEPS if s[0] in results}, args.reps)


def write_page(results, reps):
    def fmt(v):
        return "-" if v is None else f"{v:.4g}"

    out = ["# Performance: how cost grows with the work", "",
           "Made by `make bench SWEEP=1` (bench/sweep.py): every point runs mproc, CPython",
           "(python3's own modules, fork start method) and the raw-syscall floor side by side",
           f"in one run, median of {reps}; lower is better, both axes logarithmic. The machine",
           "is shared and has 2 cores: compare the curves of one chart, not absolute times",
           "across runs; a mproc/raw ratio below 0.9 is noise or a floor to fix. The",
           "single-point cases and their ratios are `make bench`'s table (build/bench.json).",
           ""]
    for name, r in results.items():
        out += [f"## {name}", "", f"{r['what']}; {r['unit']} per operation.", "",
                f"![{name}](perf/{name}.svg)", "",
                "| " + r["xlabel"] + " | " + " | ".join(r["labels"]) + " | cpython/mproc | mproc/raw |",
                "|" + "---|" * (len(r["labels"]) + 3)]
        for row in r["rows"]:
            m, c, w = row.get("mproc"), row.get("cpython"), row.get("raw")
            ratio = lambda a, b: "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"
            out.append(f"| {row['x']} | " + " | ".join(fmt(row[l]) for l in r["labels"]) +
                       f" | {ratio(c, m)} | {ratio(m, w)} |")
        out.append("")
    with open(os.path.join(ROOT, "docs", "performance.md"), "w") as f:
        f.write("\n".join(out))
    print("wrote docs/performance.md and docs/perf/*.svg")


if __name__ == "__main__":
    main()
