# The python side of 65_listener_echo.c: multiprocessing.connection.Client with the
# same authkey, sending bytes and a pickled object to the C echo server.
import sys
from multiprocessing.connection import Client

host, port = sys.argv[1].rsplit(":", 1)
with Client((host, int(port)), authkey=b"secret password") as conn:
    conn.send_bytes(b"hello from python")
    print("python client got back:", conn.recv_bytes())
    conn.send({"numbers": [1, 2, 3], "text": "any picklable object"})
    print("python client got back:", conn.recv())
