# subprocess_capture_256MiB, CPython side: subprocess.run(..., capture_output=True).
import subprocess
import time

N = 3
SIZE = 268435456

if __name__ == "__main__":
    t0 = time.perf_counter()
    for _ in range(N):
        r = subprocess.run(["head", "-c", str(SIZE), "/dev/zero"], capture_output=True, check=True)
        assert len(r.stdout) == SIZE
    print(f"{(time.perf_counter() - t0) / N * 1e3:.6g} ms")
