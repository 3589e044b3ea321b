# tcp_roundtrip_16B, CPython side: send_bytes/recv_bytes of 16 bytes to another
# process and back over an authenticated multiprocessing.connection TCP connection;
# measured by bench/pingpong.py's frame (as the C sides: both processes on one CPU,
# 2 warm-up batches, the lower quartile of 25 batches of 200 round trips).
import multiprocessing as mp
import os
import sys
from multiprocessing.connection import Client, Listener

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pingpong  # noqa: E402

BATCH = 200
KEY = b"benchmark key"


def echo(ln):
    pingpong.place_child()
    with ln.accept() as c:
        while True:
            try:
                msg = c.recv_bytes()
            except EOFError:
                return
            c.send_bytes(msg)


if __name__ == "__main__":
    ctx = mp.get_context("fork")
    ln = Listener(("127.0.0.1", 0), authkey=KEY)
    pingpong.place_parent("same")
    p = ctx.Process(target=echo, args=(ln,))
    p.start()
    c = Client(ln.address, authkey=KEY)
    msg = b"0123456789abcdef"

    def round_trip():
        c.send_bytes(msg)
        c.recv_bytes()

    us = pingpong.measure(round_trip, BATCH)
    c.close()
    p.join()
    ln.close()
    print(f"{us:.6g} us")
