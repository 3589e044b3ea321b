# sweep_process, CPython side: Process(target=f).start() for <at_once> processes,
# then join() each, fork start method, from a parent holding <parent_MiB> MiB.
#     sweep_process.py <at_once> <parent_MiB>
import multiprocessing as mp
import sys
import time


def nothing():
    pass


if __name__ == "__main__":
    at_once, mib = int(sys.argv[1]), int(sys.argv[2])
    ballast = bytearray(mib << 20)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    rounds = max(1, (60 if mib >= 512 else 300) // at_once)
    ctx = mp.get_context("fork")
    t0 = time.perf_counter()
    for _ in range(rounds):
        procs = [ctx.Process(target=nothing) for _ in range(at_once)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    print(f"{(time.perf_counter() - t0) / (rounds * at_once) * 1e6:.6g} us")
