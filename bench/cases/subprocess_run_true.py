# subprocess_run_true, CPython side: subprocess.run(["/bin/true"]), measured by
# bench/pingpong.py's frame (as the C sides, bench/run_true.h: the parent pinned to
# its CPU, 2 warm-up batches, the lower quartile of 25 batches of 5 runs).
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pingpong  # noqa: E402

BATCH = 5


def run_true():
    subprocess.run(["/bin/true"], check=True)


if __name__ == "__main__":
    pingpong.place_parent("same")
    print(f"{pingpong.measure(run_true, BATCH):.6g} us")
