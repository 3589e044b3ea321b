# pool_map_1MiB_items, CPython side: Pool(2).map(len) over 200 items of 1 MiB,
# default chunksize; after a 2-item warm-up map, ROUNDS warm rounds timed, as the
# C side does.
import multiprocessing as mp
import time

N = 200
ROUNDS = 10


if __name__ == "__main__":
    ctx = mp.get_context("fork")
    items = [bytes([i % 256]) * (1 << 20) for i in range(N)]
    with ctx.Pool(2) as pool:
        pool.map(len, items[:2])
        t0 = time.perf_counter()
        for _ in range(ROUNDS):
            out = pool.map(len, items)
            assert out == [1 << 20] * N
        dt = time.perf_counter() - t0
    print(f"{dt / (N * ROUNDS) * 1e6:.6g} us")
