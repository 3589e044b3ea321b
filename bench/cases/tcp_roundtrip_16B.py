# tcp_roundtrip_16B, CPython side: send_bytes/recv_bytes of 16 bytes to another
# process and back over an authenticated multiprocessing.connection TCP connection.
import multiprocessing as mp
import time
from multiprocessing.connection import Client, Listener

N = 5000
KEY = b"benchmark key"


def echo(ln):
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
    p = ctx.Process(target=echo, args=(ln,))
    p.start()
    c = Client(ln.address, authkey=KEY)
    msg = b"0123456789abcdef"
    t0 = time.perf_counter()
    for _ in range(N):
        c.send_bytes(msg)
        c.recv_bytes()
    t = time.perf_counter() - t0
    c.close()
    p.join()
    ln.close()
    print(f"{t / N * 1e6:.6g} us")
