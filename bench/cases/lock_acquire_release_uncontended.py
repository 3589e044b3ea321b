# lock_acquire_release_uncontended, CPython side: multiprocessing.Lock().acquire(); release().
import multiprocessing as mp
import time

N = 3000000

if __name__ == "__main__":
    lock = mp.get_context("fork").Lock()
    acquire, release = lock.acquire, lock.release
    t0 = time.perf_counter()
    for _ in range(N):
        acquire()
        release()
    print(f"{(time.perf_counter() - t0) / N * 1e9:.6g} ns")
