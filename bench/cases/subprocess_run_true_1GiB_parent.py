# subprocess_run_true_1GiB_parent, CPython side: subprocess.run(["/bin/true"])
# from a process holding 1 GiB of touched memory, measured by bench/pingpong.py's
# frame (as the C sides, bench/run_true.h).
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pingpong  # noqa: E402

BATCH = 5


def run_true():
    subprocess.run(["/bin/true"], check=True)


if __name__ == "__main__":
    mem = bytearray(1 << 30)
    mem[::4096] = b"\x01" * (len(mem) // 4096)  # touch every page
    pingpong.place_parent("same")
    print(f"{pingpong.measure(run_true, BATCH):.6g} us")
