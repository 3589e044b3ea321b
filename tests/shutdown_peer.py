"""A CPython client asking a manager server to shut down, as a CPython program does
for a manager it connected to (BaseManager.shutdown exists only after start()):
open a connection with the manager's _Client and dispatch(conn, None, 'shutdown').

    shutdown_peer.py HOST PORT KEY refused   the request raises RemoteError, and the
                                              server still answers afterwards
    shutdown_peer.py HOST PORT KEY allowed   the request returns, and the server is
                                              gone within 5 s

Used by tests/test_manager_events.c and tests/test_manager_program.c. Prints what it
saw, one fact a line; exits 0 when all went as expected."""
import sys
import time
from multiprocessing import managers
from multiprocessing.managers import BaseManager, RemoteError


class M(BaseManager):
    pass


def out(*a):
    print(*a, flush=True)


def control(host, port, key, name):
    m = M(address=(host, port), authkey=key)
    m.connect()
    conn = m._Client(m._address, authkey=m._authkey)
    try:
        return managers.dispatch(conn, None, name)
    finally:
        conn.close()


def main():
    host, port, key, expect = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), sys.argv[4]
    try:
        control(host, port, key, 'shutdown')
        refused = None
    except RemoteError as e:
        refused = str(e)
    if expect == 'refused':
        if refused is None:
            out('FAIL: the shutdown request was accepted')
            sys.exit(1)
        out('RemoteError:', refused.strip().splitlines()[-2])
        if 'unrecognized' not in refused:
            out('FAIL: not the refusal text')
            sys.exit(1)
        n = control(host, port, key, 'number_of_objects')
        out('still serving: number_of_objects =', n)
        sys.exit(0)
    if refused is not None:
        out('FAIL: refused:', refused)
        sys.exit(1)
    out('shutdown accepted')
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            control(host, port, key, 'dummy')
        except (OSError, EOFError):
            out('server gone')
            sys.exit(0)
        time.sleep(0.05)
    out('FAIL: the server still answers')
    sys.exit(1)


if __name__ == '__main__':
    main()
