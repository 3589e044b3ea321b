# conn_peer.py — the CPython end of the connection interoperability test.
# Usage: python3 conn_peer.py <fd>. Wraps the inherited socket descriptor in
# multiprocessing.connection.Connection, echoes every message it receives until it
# gets b"end", then sends messages of its own: empty, a small one, and one of
# 16 MiB + 7 bytes whose byte i is i % 251, then b"bye", and closes.
import sys
from multiprocessing.connection import Connection

conn = Connection(int(sys.argv[1]))
while True:
    msg = conn.recv_bytes()
    if msg == b"end":
        break
    conn.send_bytes(msg)
conn.send_bytes(b"")
conn.send_bytes(b"from python")
n = 16 * 1024 * 1024 + 7
conn.send_bytes(bytes(i % 251 for i in range(251)) * (n // 251) + bytes(i % 251 for i in range(n % 251)))
conn.send_bytes(b"bye")
conn.close()
