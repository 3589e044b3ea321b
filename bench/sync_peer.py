# bench/sync_peer.py — the python3 sides of the SyncManager bench cases.
#   sync_peer.py dict HOST PORT N        N rounds of d[k] = v; d[k] on a SyncManager
#                                        dict proxy; prints "<us> us" per round
#   sync_peer.py memory_clients HOST PORT K
#                                        K client threads, each with its own channel,
#                                        kept open until stdin closes; prints "ready"
import sys
import threading
import time
from multiprocessing.managers import SyncManager

KEY = b'abc'


def connect(host, port):
    m = SyncManager(address=(host, int(port)), authkey=KEY)
    m.connect()
    return m


def dict_rounds(m, n):
    d = m.dict()
    for i in range(100):  # warm-up: the channel is open, the first calls made
        d['k'] = i
        d['k']
    t0 = time.perf_counter()
    for i in range(n):
        d['k'] = i
        d['k']
    return (time.perf_counter() - t0) / n


def start_cpython():
    m = SyncManager(address=('127.0.0.1', 0), authkey=KEY)
    m.start()
    return m


def idle_channels(m, k):
    """k threads, each making one call (so one channel each), then waiting."""
    q = m.Queue()
    release = threading.Event()
    ready = threading.Barrier(k + 1)

    def run():
        q.qsize()
        ready.wait()
        release.wait()
    ts = [threading.Thread(target=run, daemon=True) for _ in range(k)]
    for t in ts:
        t.start()
    ready.wait()
    return release, ts


def main():
    mode = sys.argv[1]
    if mode == 'dict':
        m = connect(sys.argv[2], sys.argv[3])
        print('%.6g us' % (dict_rounds(m, int(sys.argv[4])) * 1e6))
    elif mode == 'memory_clients':
        m = connect(sys.argv[2], sys.argv[3])
        release, ts = idle_channels(m, int(sys.argv[4]))
        print('ready', flush=True)
        sys.stdin.read()
        release.set()
    else:
        sys.exit('unknown mode')


if __name__ == '__main__':
    main()
