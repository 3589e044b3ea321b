# sweep_pipe, CPython side: send_bytes of <size> bytes to a child, which receives it
# into a preallocated buffer (recv_bytes_into) and acks with one byte.
#     sweep_pipe.py <size>
import multiprocessing as mp
import sys
import time


def sink(conn, other, size):
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
    p = ctx.Process(target=sink, args=(b, a, size))
    p.start()
    b.close()
    msg = b"\x07" * size
    t0 = time.perf_counter()
    for _ in range(n):
        a.send_bytes(msg)
        a.recv_bytes()
    t = time.perf_counter() - t0
    a.close()
    p.join()
    print(f"{t / n * 1e6:.6g} us")
