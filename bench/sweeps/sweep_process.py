# sweep_process, CPython side: Process(target=f).start() for <at_once> processes,
# then join() each, fork start method, from a parent holding <parent_MiB> MiB.
# One at a time is measured by bench/pingpong.py's frame, as the C sides do (the
# parent pinned to its CPU, 2 warm-up batches, the lower quartile of 25 batches);
# several at once by the end-to-end time of all their rounds.
#     sweep_process.py <at_once> <parent_MiB>
import multiprocessing as mp
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pingpong  # noqa: E402


def nothing():
    pass


if __name__ == "__main__":
    at_once, mib = int(sys.argv[1]), int(sys.argv[2])
    ballast = bytearray(mib << 20)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    rounds = max(1, (60 if mib >= 512 else 300) // at_once)
    ctx = mp.get_context("fork")

    def one_round():
        procs = [ctx.Process(target=nothing) for _ in range(at_once)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()

    if at_once == 1:
        pingpong.place_parent("same")
        print(f"{pingpong.measure(one_round, max(1, rounds // pingpong.BATCHES)):.6g} us")
    else:
        t0 = time.perf_counter()
        for _ in range(rounds):
            one_round()
        print(f"{(time.perf_counter() - t0) / (rounds * at_once) * 1e6:.6g} us")
