# 61_pickle_pipe.py — the Python end of 61_pickle_pipe.c: a multiprocessing
# Connection on the descriptor the C program passed, exchanging objects.
import sys
from multiprocessing.connection import Connection

conn = Connection(int(sys.argv[1]))
# The Python docs' Pipe example: send 1, then 'hello', then richer values.
conn.send(1)
conn.send("hello")
conn.send([1, 2.5, None, True, b"bytes"])
conn.send({"name": "caf\u00e9", "sizes": (3, 4), "tags": {"a"}})
conn.send(2**100)
conn.send(None)  # done
while True:
    obj = conn.recv()
    print("python received:", repr(obj), flush=True)
    if obj is None:
        break
conn.close()
