# pool_map_1MiB_items_first_round, CPython side: the first Pool(2).map(len) of a
# new pool over 200 items of 1 MiB, default chunksize; pool creation not timed.
import multiprocessing as mp
import time

N = 200


if __name__ == "__main__":
    ctx = mp.get_context("fork")
    items = [bytes([i % 256]) * (1 << 20) for i in range(N)]
    with ctx.Pool(2) as pool:
        t0 = time.perf_counter()
        out = pool.map(len, items)
        dt = time.perf_counter() - t0
    assert out == [1 << 20] * N
    print(f"{dt / N * 1e6:.6g} us")
