# process_start_join, CPython side: Process(target=f).start(); join(), fork start method.
import multiprocessing as mp
import time

N = 300


def nothing():
    pass


if __name__ == "__main__":
    ctx = mp.get_context("fork")
    t0 = time.perf_counter()
    for _ in range(N):
        p = ctx.Process(target=nothing)
        p.start()
        p.join()
    print(f"{(time.perf_counter() - t0) / N * 1e6:.6g} us")
