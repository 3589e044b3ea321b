# conn_send_recv_obj, CPython side: Connection.send/recv of ('ping', 42) to a child
# and back (the child recv()s and send()s it back), default pickle protocol;
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
            msg = conn.recv()
        except EOFError:
            return
        conn.send(msg)


if __name__ == "__main__":
    ctx = mp.get_context("fork")
    a, b = ctx.Pipe(True)
    pingpong.place_parent("same")
    p = ctx.Process(target=echo, args=(b, a))
    p.start()
    b.close()
    msg = ("ping", 42)

    def round_trip():
        a.send(msg)
        a.recv()

    us = pingpong.measure(round_trip, BATCH)
    a.close()
    p.join()
    print(f"{us:.6g} us")
