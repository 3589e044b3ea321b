# queue_64B_1p1c, CPython side: multiprocessing.Queue, 64-byte bytes objects from
# one producer process to one consumer process; time per message.
import multiprocessing as mp
import sys
import time

N = 100000
PRODUCERS = 1
CONSUMERS = 1


def produce(q, n):
    msg = b"m" * 64
    for _ in range(n):
        q.put(msg)


def consume(q, n):
    for _ in range(n):
        if len(q.get()) != 64:
            sys.exit(1)


if __name__ == "__main__":
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=produce, args=(q, N // PRODUCERS)) for _ in range(PRODUCERS)]
    procs += [ctx.Process(target=consume, args=(q, N // CONSUMERS)) for _ in range(CONSUMERS)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    t = time.perf_counter() - t0
    if any(p.exitcode != 0 for p in procs):
        sys.exit(1)
    print(f"{t / N * 1e6:.6g} us")
