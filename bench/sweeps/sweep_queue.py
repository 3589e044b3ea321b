# sweep_queue, CPython side: multiprocessing.Queue put/get of bytes messages.
#     sweep_queue.py <size> <producers> <consumers>
import multiprocessing as mp
import sys
import time


def produce(q, size, count):
    msg = b"x" * size
    for _ in range(count):
        q.put(msg)


def consume(q, size, count):
    for _ in range(count):
        assert len(q.get()) == size


if __name__ == "__main__":
    size, producers, consumers = (int(a) for a in sys.argv[1:4])
    n = max(4000, min(100_000, (64 << 20) // size))
    n -= n % (producers * consumers * 8)
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    t0 = time.perf_counter()
    procs = [ctx.Process(target=produce, args=(q, size, n // producers)) for _ in range(producers)]
    procs += [ctx.Process(target=consume, args=(q, size, n // consumers)) for _ in range(consumers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert all(p.exitcode == 0 for p in procs)
    print(f"{(time.perf_counter() - t0) / n * 1e6:.6g} us")
