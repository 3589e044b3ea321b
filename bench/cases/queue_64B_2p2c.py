# queue_64B_2p2c, CPython side: multiprocessing.Queue, 64-byte bytes objects from
# two producer processes to two consumer processes; time per message (bench/queue_stream.py).
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import queue_stream  # noqa: E402

if __name__ == "__main__":
    queue_stream.main(2, 2)
