# listener_peer.py — the CPython end of the listener/client interoperability tests.
# Usage:
#   python3 listener_peer.py client ADDR KEY     Client(ADDR, authkey=KEY): sends b"hello from
#       python", expects b"echo:hello from python", then sends an object with
#       conn.send() and expects the same object back (the C side echoes its bytes).
#   python3 listener_peer.py listener ADDR KEY   Listener(ADDR, authkey=KEY): prints its address
#       in mproc's form, accepts one client, echoes one message with b"echo:" in front and
#       then one more message as is, and exits.
#   python3 listener_peer.py manager ADDR KEY    a multiprocessing.managers server (which
#       follows #FAILURE# with a traceback frame): prints its address, serves until killed.
# ADDR is mproc's form: host:port, [v6]:port (listener only: CPython's Client always uses
# AF_INET for a (host, port) tuple), a path with '/', or @name; KEY "-" is None.
# Exit status: 0 on success, 3 on AuthenticationError (printed as "AuthenticationError: ..."),
# 4 when the peer closed the connection (printed as "EOF: ...").
import sys
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Listener

OBJ = (1, "deux", 3.0, [b"four", None, True], {"five": 5})


def parse(addr):
    if addr.startswith("@"):
        return "\0" + addr[1:], "AF_UNIX"
    if "/" in addr:
        return addr, "AF_UNIX"
    if addr.startswith("["):
        host, port = addr[1:].split("]:")
        return (host, int(port)), "AF_INET6"
    host, port = addr.rsplit(":", 1)
    return (host, int(port)), "AF_INET"


def show(addr, family):
    if family == "AF_UNIX":
        return "@" + addr[1:] if addr.startswith("\0") else addr
    if family == "AF_INET6":
        return "[%s]:%d" % addr[:2]
    return "%s:%d" % addr


def main():
    mode, addr, key = sys.argv[1], sys.argv[2], sys.argv[3]
    key = None if key == "-" else key.encode()
    address, family = parse(addr)
    try:
        if mode == "manager":
            from multiprocessing.managers import BaseManager

            server = BaseManager(address=address, authkey=key).get_server()
            print(show(server.address, family), flush=True)
            server.serve_forever()
        elif mode == "client":
            conn = Client(address, family=family, authkey=key)
            conn.send_bytes(b"hello from python")
            reply = conn.recv_bytes()
            assert reply == b"echo:hello from python", reply
            conn.send(OBJ)
            back = conn.recv()
            assert back == OBJ, back
            print("client ok", flush=True)
            conn.close()
        else:
            with Listener(address, family=family, authkey=key) as ln:
                print(show(ln.address, family), flush=True)
                with ln.accept() as conn:
                    msg = conn.recv_bytes()
                    conn.send_bytes(b"echo:" + msg)
                    conn.send_bytes(conn.recv_bytes())
            print("listener ok", flush=True)
    except AuthenticationError as e:
        print("AuthenticationError:", e, flush=True)
        sys.exit(3)
    except (EOFError, ConnectionError) as e:
        print("EOF:", type(e).__name__, e, flush=True)
        sys.exit(4)


if __name__ == "__main__":
    main()
