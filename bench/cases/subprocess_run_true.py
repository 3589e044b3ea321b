# subprocess_run_true, CPython side: subprocess.run(["/bin/true"]).
import subprocess
import time

N = 300

if __name__ == "__main__":
    t0 = time.perf_counter()
    for _ in range(N):
        subprocess.run(["/bin/true"], check=True)
    print(f"{(time.perf_counter() - t0) / N * 1e6:.6g} us")
