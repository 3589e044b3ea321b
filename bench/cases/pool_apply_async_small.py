# pool_apply_async_small, CPython side: 10,000 apply_async of a trivial task on
# Pool(2), then every get().
import multiprocessing as mp
import time

N = 10_000


def ident(x):
    return x


if __name__ == "__main__":
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        pool.apply(ident, (0,))
        t0 = time.perf_counter()
        rs = [pool.apply_async(ident, (i,)) for i in range(N)]
        total = sum(r.get() for r in rs)
        dt = time.perf_counter() - t0
    assert total == N * (N - 1) // 2
    print(f"{dt / N * 1e6:.6g} us")
