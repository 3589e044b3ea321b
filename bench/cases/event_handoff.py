# event_handoff, CPython side: two processes ping-pong over two
# multiprocessing.Event objects; the time of one handoff (round trip / 2);
# measured by bench/pingpong.py's frame (as the C sides: the two processes on two
# CPUs, 2 warm-up batches, the lower quartile of 25 batches of 200 round trips).
import multiprocessing as mp
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pingpong  # noqa: E402

BATCH = 200
ROUNDS = (pingpong.WARMUP_BATCHES + pingpong.BATCHES) * BATCH


def child(ping, pong):
    pingpong.place_child()
    for _ in range(ROUNDS):
        ping.wait()
        ping.clear()
        pong.set()


if __name__ == "__main__":
    ctx = mp.get_context("fork")
    ping, pong = ctx.Event(), ctx.Event()
    pingpong.place_parent("split")
    p = ctx.Process(target=child, args=(ping, pong))
    p.start()

    def round_trip():
        ping.set()
        pong.wait()
        pong.clear()

    us = pingpong.measure(round_trip, BATCH, per_round=2)
    p.join()
    print(f"{us:.6g} us")
