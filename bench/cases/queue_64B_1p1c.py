# queue_64B_1p1c, CPython side: multiprocessing.Queue, 64-byte bytes objects from
# one producer process to one consumer process; time per message (bench/queue_stream.py).
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import queue_stream  # noqa: E402

if __name__ == "__main__":
    queue_stream.main(1, 1)
