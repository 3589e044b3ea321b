# value_locked_increment_2proc, CPython side: two processes each do
# `with v.get_lock(): v.value += 1` N times on one Value('i'); time per increment.
import multiprocessing as mp
import time

N = 100000


def worker(v):
    lock = v.get_lock()
    for _ in range(N):
        with lock:
            v.value += 1


if __name__ == "__main__":
    ctx = mp.get_context("fork")
    v = ctx.Value("i", 0)
    t0 = time.perf_counter()
    p = ctx.Process(target=worker, args=(v,))
    p.start()
    worker(v)
    p.join()
    dt = time.perf_counter() - t0
    assert v.value == 2 * N
    print(f"{dt / (2 * N) * 1e9:.6g} ns")
