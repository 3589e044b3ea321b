# conn_send_recv_obj, CPython side: Connection.send/recv of ('ping', 42) to a child
# and back (the child recv()s and send()s it back), default pickle protocol.
import multiprocessing as mp
import time

N = 5000


def echo(conn, other):
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
    p = ctx.Process(target=echo, args=(b, a))
    p.start()
    b.close()
    msg = ("ping", 42)
    t0 = time.perf_counter()
    for _ in range(N):
        a.send(msg)
        a.recv()
    t = time.perf_counter() - t0
    a.close()
    p.join()
    print(f"{t / N * 1e6:.6g} us")
