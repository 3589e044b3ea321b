# joinable_queue_task_done, CPython side: put, get, task_done on a JoinableQueue,
# one cycle per message in one process, then join; time per cycle.
import multiprocessing as mp
import time

N = 20000

if __name__ == "__main__":
    q = mp.get_context("fork").JoinableQueue()
    msg = b"t" * 64
    t0 = time.perf_counter()
    for _ in range(N):
        q.put(msg)
        q.get()
        q.task_done()
    q.join()
    t = time.perf_counter() - t0
    print(f"{t / N * 1e6:.6g} us")
