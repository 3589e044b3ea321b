# process_start_join_1GiB_parent, CPython side: Process(target=f).start(); join()
# with the forkserver start method, from a process holding 1 GiB of touched
# memory; the server is started before the memory is touched, as in the C side.
import multiprocessing as mp
import multiprocessing.forkserver
import time

N = 300


def nothing():
    pass


if __name__ == "__main__":
    ctx = mp.get_context("forkserver")
    mp.forkserver.ensure_running()
    mem = bytearray(1 << 30)
    mem[::4096] = b"\x01" * (len(mem) // 4096)  # touch every page
    t0 = time.perf_counter()
    for _ in range(N):
        p = ctx.Process(target=nothing)
        p.start()
        p.join()
    print(f"{(time.perf_counter() - t0) / N * 1e6:.6g} us")
