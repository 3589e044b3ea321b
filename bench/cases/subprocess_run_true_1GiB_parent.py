# subprocess_run_true_1GiB_parent, CPython side: subprocess.run(["/bin/true"])
# from a process holding 1 GiB of touched memory.
import subprocess
import time

N = 300

if __name__ == "__main__":
    mem = bytearray(1 << 30)
    mem[::4096] = b"\x01" * (len(mem) // 4096)  # touch every page
    t0 = time.perf_counter()
    for _ in range(N):
        subprocess.run(["/bin/true"], check=True)
    print(f"{(time.perf_counter() - t0) / N * 1e6:.6g} us")
