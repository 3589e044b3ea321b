# pipe_16MiB_message, CPython side: send_bytes of 16 MiB to a child, which receives
# it into a preallocated buffer (recv_bytes_into) and acks with one byte.
import multiprocessing as mp
import time

N = 20
SIZE = 16 << 20


def sink(conn, other):
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
    p = ctx.Process(target=sink, args=(b, a))
    p.start()
    b.close()
    msg = b"\x07" * SIZE
    t0 = time.perf_counter()
    for _ in range(N):
        a.send_bytes(msg)
        a.recv_bytes()
    t = time.perf_counter() - t0
    a.close()
    p.join()
    print(f"{t / N * 1e3:.6g} ms")
