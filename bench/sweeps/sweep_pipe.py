# sweep_pipe, CPython side: send_bytes of <size> bytes to a child, which receives it
# into a preallocated buffer (recv_bytes_into) and acks with one byte.
# Measured by bench/pingpong.py's frame (as the C sides: both processes on one CPU,
# 2 warm-up batches, the lower quartile of 25 batches).
#     sweep_pipe.py <size>
import multiprocessing as mp
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pingpong  # noqa: E402


def sink(conn, other, size):
    pingpong.place_child()
    other.close()
    buf = bytearray(size)
    while True:
        try:
            conn.recv_bytes_into(buf)
        except EOFError:
            return
        conn.send_bytes(b"k")


if __name__ == "__main__":
    size = int(sys.argv[1])
    n = max(10, min(20000, (256 << 20) // (size + 4096)))
    ctx = mp.get_context("fork")
    a, b = ctx.Pipe(True)
    pingpong.place_parent("same")
    p = ctx.Process(target=sink, args=(b, a, size))
    p.start()
    b.close()
    msg = b"\x07" * size

    def round_trip():
        a.send_bytes(msg)
        a.recv_bytes()

    us = pingpong.measure(round_trip, max(1, n // pingpong.BATCHES))
    a.close()
    p.join()
    print(f"{us:.6g} us")
