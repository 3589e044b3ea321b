# pipe_roundtrip_16B, CPython side: send_bytes/recv_bytes of 16 bytes to a child and back.
import multiprocessing as mp
import time

N = 5000


def echo(conn, other):
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
    p = ctx.Process(target=echo, args=(b, a))
    p.start()
    b.close()
    msg = b"0123456789abcdef"
    t0 = time.perf_counter()
    for _ in range(N):
        a.send_bytes(msg)
        a.recv_bytes()
    t = time.perf_counter() - t0
    a.close()
    p.join()
    print(f"{t / N * 1e6:.6g} us")
