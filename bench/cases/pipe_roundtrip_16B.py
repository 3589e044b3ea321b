# pipe_roundtrip_16B, CPython side: send_bytes/recv_bytes of 16 bytes to a child and back,
# measured by bench/pingpong.py's frame (as the C sides: both processes on one CPU,
# 2 warm-up batches, the lower quartile of 25 batches of 200 round trips).
import multiprocessing as mp
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pingpong  # noqa: E402

BATCH = 200


def echo(conn, other):
    pingpong.place_child()
    other.close()
    while True:
        try:
            msg = conn.recv_bytes()
        except EOFError:
            return
        conn.send_bytes(msg)


if __name__ == "__main__":
    ctx = mp.get_context("fork")
    a, b = ctx.Pipe(True)
    pingpong.place_parent("same")
    p = ctx.Process(target=echo, args=(b, a))
    p.start()
    b.close()
    msg = b"0123456789abcdef"

    def round_trip():
        a.send_bytes(msg)
        a.recv_bytes()

    us = pingpong.measure(round_trip, BATCH)
    a.close()
    p.join()
    print(f"{us:.6g} us")
