# subprocess_cat_64MiB, CPython side: subprocess.run(["cat"], input=64 MiB, capture_output=True).
import subprocess
import time

N = 5
SIZE = 64 << 20

if __name__ == "__main__":
    data = b"x" * SIZE
    t0 = time.perf_counter()
    for _ in range(N):
        r = subprocess.run(["cat"], input=data, capture_output=True, check=True)
        assert len(r.stdout) == SIZE
    print(f"{(time.perf_counter() - t0) / N * 1e3:.6g} ms")
