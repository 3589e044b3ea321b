# pool_map_1M_int, CPython side: Pool(2).map squaring one million ints with
# chunksize 125000 (the default Pool.map picks for this input, stated explicitly),
# after a small warm-up map, repeated as the C side repeats it.
import multiprocessing as mp
import time

N = 1_000_000
CHUNKSIZE = 125_000
REPS = 3


def square(x):
    return x * x


if __name__ == "__main__":
    ctx = mp.get_context("fork")
    data = list(range(N))
    with ctx.Pool(2) as pool:
        pool.map(square, range(100))
        t0 = time.perf_counter()
        for _ in range(REPS):
            out = pool.map(square, data, chunksize=CHUNKSIZE)
        dt = time.perf_counter() - t0
    assert out[N - 1] == (N - 1) * (N - 1)
    print(f"{dt / REPS / N * 1e9:.6g} ns")
