# pool_map_1M_int, CPython side: Pool(2).map squaring one million ints, default chunksize.
import multiprocessing as mp
import time


def square(x):
    return x * x


if __name__ == "__main__":
    ctx = mp.get_context("fork")
    data = list(range(1_000_000))
    with ctx.Pool(2) as pool:
        pool.map(square, range(100))
        t0 = time.perf_counter()
        out = pool.map(square, data)
        dt = time.perf_counter() - t0
    assert out[999_999] == 999_999 * 999_999
    print(f"{dt / len(data) * 1e9:.6g} ns")
