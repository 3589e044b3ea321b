# sweep_pool_map, CPython side: Pool(2).map squaring <n> ints, default chunksize,
# after a small warm-up map.
#     sweep_pool_map.py <n>
import multiprocessing as mp
import sys
import time


def square(x):
    return x * x


if __name__ == "__main__":
    n = int(sys.argv[1])
    reps = max(1, 1_000_000 // n)
    data = list(range(n))
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        pool.map(square, range(100))
        t0 = time.perf_counter()
        for _ in range(reps):
            out = pool.map(square, data)
        dt = time.perf_counter() - t0
    assert out[-1] == (n - 1) * (n - 1)
    print(f"{dt / reps / n * 1e9:.6g} ns")
