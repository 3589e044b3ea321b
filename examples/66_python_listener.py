# The python side of 66_client_python_listener.c: a multiprocessing.connection.Listener
# with an authkey that upper-cases what a C client sends, then rejects a wrong key.
from multiprocessing import AuthenticationError
from multiprocessing.connection import Listener

with Listener(("127.0.0.1", 0), authkey=b"secret password") as ln:
    print("%s:%d" % ln.address, flush=True)
    with ln.accept() as conn:
        try:
            while True:
                conn.send_bytes(conn.recv_bytes().upper())
        except EOFError:
            pass
    try:
        ln.accept()
    except AuthenticationError as e:
        print("python listener rejected the second client:", e)
