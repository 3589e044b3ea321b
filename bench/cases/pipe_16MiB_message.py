# pipe_16MiB_message, CPython side: send_bytes of 16 MiB to a child, which receives
# it into a preallocated buffer (recv_bytes_into) and acks with one byte; measured
# by bench/pingpong.py's frame (as the C sides: both processes on one CPU, 2 warm-up
# messages, the lower quartile of 25 batches of 1 message).
import multiprocessing as mp
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pingpong  # noqa: E402

SIZE = 16 << 20


def sink(conn, other):
    pingpong.place_child()
    other.close()
    buf = bytearray(SIZE)
    while True:
        try:
            conn.recv_bytes_into(buf)
        except EOFError:
            return
        conn.send_bytes(b"k")


if __name__ == "__main__":
    ctx = mp.get_context("fork")
    a, b = ctx.Pipe(True)
    pingpong.place_parent("same")
    p = ctx.Process(target=sink, args=(b, a))
    p.start()
    b.close()
    msg = b"\x07" * SIZE

    def message():
        a.send_bytes(msg)
        a.recv_bytes()

    ms = pingpong.measure(message, 1) / 1e3
    a.close()
    p.join()
    print(f"{ms:.6g} ms")
