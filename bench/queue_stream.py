# bench/queue_stream.py — the CPython side of the queue_64B_* cases:
# multiprocessing.Queue, N 64-byte bytes objects from `producers` processes to
# `consumers` processes; prints microseconds per message.
import multiprocessing as mp
import sys
import time

N = 100000


def produce(q, n):
    msg = b"m" * 64
    for _ in range(n):
        q.put(msg)


def consume(q, n):
    for _ in range(n):
        if len(q.get()) != 64:
            sys.exit(1)


def main(producers, consumers):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=produce, args=(q, N // producers)) for _ in range(producers)]
    procs += [ctx.Process(target=consume, args=(q, N // consumers)) for _ in range(consumers)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    t = time.perf_counter() - t0
    if any(p.exitcode != 0 for p in procs):
        sys.exit(1)
    print(f"{t / N * 1e6:.6g} us")
