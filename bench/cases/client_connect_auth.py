# client_connect_auth, CPython side: Client() to a Listener with an authkey in
# another process, both handshakes, one send_bytes/recv_bytes of 16 bytes, close.
# (CPython sets no TCP_NODELAY, so Nagle's algorithm holds each request ~40 ms.)
import multiprocessing as mp
import time
from multiprocessing.connection import Client, Listener

N = 20
KEY = b"benchmark key"


def serve(ln):
    while True:
        with ln.accept() as c:
            c.send_bytes(c.recv_bytes())


if __name__ == "__main__":
    ctx = mp.get_context("fork")
    ln = Listener(("127.0.0.1", 0), authkey=KEY)
    p = ctx.Process(target=serve, args=(ln,), daemon=True)
    p.start()
    msg = b"0123456789abcdef"
    t0 = time.perf_counter()
    for _ in range(N):
        with Client(ln.address, authkey=KEY) as c:
            c.send_bytes(msg)
            c.recv_bytes()
    t = time.perf_counter() - t0
    p.terminate()
    p.join()
    ln.close()
    print(f"{t / N * 1e6:.6g} us")
