"""The measuring frame of the ping-pong cases' CPython sides: the same as
bench/pingpong.h for the mproc and raw sides (read it for why).

Placement: the parent pins itself, before it starts the child, to the CPU it runs
on; the child stays there ("same") or moves to another CPU ("split");
BENCH_PIN=same|split|none overrides the case's default. Timing: 2 untimed
batches, then 25 timed batches of `batch` rounds; the lower quartile (7th fastest)
batch, per round.
"""
import os
import time

WARMUP_BATCHES = 2
BATCHES = 25

_child_cpu = None


def place_parent(default_mode):
    """In the parent, before the child starts."""
    global _child_cpu
    mode = os.environ.get("BENCH_PIN", default_mode)
    if mode not in ("same", "split"):
        return
    try:
        here = os.sched_getcpu() if hasattr(os, "sched_getcpu") else None
        allowed = sorted(os.sched_getaffinity(0))
    except OSError:
        return
    if here is None:
        here = _current_cpu()
    if here is None:
        return
    others = [c for c in allowed if c != here]
    os.sched_setaffinity(0, {here})
    _child_cpu = others[0] if mode == "split" and others else None


def _current_cpu():
    # Field 39 of /proc/self/stat: the CPU this process last ran on.
    try:
        with open("/proc/self/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[36])
    except (OSError, ValueError, IndexError):
        return None


def place_child():
    """In the child, first thing."""
    if _child_cpu is not None:
        os.sched_setaffinity(0, {_child_cpu})


def measure(round_fn, batch, per_round=1):
    """Lower-quartile batch time per round, in microseconds, divided by per_round."""
    for _ in range(WARMUP_BATCHES * batch):
        round_fn()
    times = []
    for _ in range(BATCHES):
        t0 = time.perf_counter()
        for _ in range(batch):
            round_fn()
        times.append((time.perf_counter() - t0) / batch / per_round * 1e6)
    return sorted(times)[BATCHES // 4]
