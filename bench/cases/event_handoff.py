# event_handoff, CPython side: two processes ping-pong over two
# multiprocessing.Event objects; the time of one handoff (round trip / 2).
import multiprocessing as mp
import time

N = 5000


def child(ping, pong):
    for _ in range(N):
        ping.wait()
        ping.clear()
        pong.set()


if __name__ == "__main__":
    ctx = mp.get_context("fork")
    ping, pong = ctx.Event(), ctx.Event()
    p = ctx.Process(target=child, args=(ping, pong))
    p.start()
    t0 = time.perf_counter()
    for _ in range(N):
        ping.set()
        pong.wait()
        pong.clear()
    dt = time.perf_counter() - t0
    p.join()
    print(f"{dt / (2 * N) * 1e6:.6g} us")
