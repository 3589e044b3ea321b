# bench/manager_peer.py — the CPython sides of the manager_* cases: a CPython
# manager server (queue.Queue as 'get_queue') and the clients that time it.
#   manager_peer.py server                 serve on a free port; prints "PORT n"
#   manager_peer.py pairs HOST PORT N      N put+get pairs of a small int; prints "<us> us" per pair
#   manager_peer.py setup HOST PORT N      connect + get_queue() + qsize(), N times; prints "<ms> ms" each
#   manager_peer.py clients K N            CPython server + K client processes x N pairs; prints
#                                          "<us> us" per operation (put and get each count), aggregate
import multiprocessing as mp
import queue
import sys
import time
from multiprocessing.managers import BaseManager

KEY = b'abc'
the_queue = queue.Queue()


def get_queue():
    return the_queue


class QueueManager(BaseManager):
    pass


def serve():
    QueueManager.register('get_queue', callable=get_queue)
    m = QueueManager(address=('127.0.0.1', 0), authkey=KEY)
    s = m.get_server()
    print('PORT %d' % s.address[1], flush=True)
    s.serve_forever()


def start_server():
    QueueManager.register('get_queue', callable=get_queue)
    m = QueueManager(address=('127.0.0.1', 0), authkey=KEY)
    m.start()
    return m


def client(host, port):
    class C(BaseManager):
        pass
    C.register('get_queue')
    m = C(address=(host, port), authkey=KEY)
    m.connect()
    return m


def pairs(host, port, n):
    q = client(host, port).get_queue()
    for _ in range(100):  # warm-up: channel open, first calls
        q.put(7)
        q.get()
    t0 = time.perf_counter()
    for _ in range(n):
        q.put(7)
        q.get()
    return (time.perf_counter() - t0) / n


def setup(host, port, n):
    total = 0.0
    for _ in range(n):
        t0 = time.perf_counter()
        m = client(host, port)
        q = m.get_queue()
        q.qsize()
        total += time.perf_counter() - t0
        del q, m
    return total / n


def client_proc(host, port, n, start, done):
    q = client(host, port).get_queue()
    q.qsize()
    start.wait()
    for _ in range(n):
        q.put(7)
        q.get()
    done.put(1)


def clients(k, n, host=None, port=None):
    ctx = mp.get_context('fork')
    m = None
    if host is None:
        m = start_server()
        host, port = m.address
    start = ctx.Event()
    done = ctx.Queue()
    procs = [ctx.Process(target=client_proc, args=(host, port, n, start, done)) for _ in range(k)]
    for p in procs:
        p.start()
    time.sleep(0.5)  # every client connected and warm
    t0 = time.perf_counter()
    start.set()
    for _ in range(k):
        done.get()
    t = time.perf_counter() - t0
    for p in procs:
        p.join()
    if m is not None:
        m.shutdown()
    return t / (2 * k * n)


def main():
    mode = sys.argv[1]
    if mode == 'server':
        serve()
    elif mode == 'pairs':
        print('%.6g us' % (pairs(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])) * 1e6))
    elif mode == 'setup':
        print('%.6g ms' % (setup(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])) * 1e3))
    elif mode == 'clients':
        print('%.6g us' % (clients(int(sys.argv[2]), int(sys.argv[3])) * 1e6))
    elif mode == 'clients_at':
        print('%.6g us' % (clients(int(sys.argv[4]), int(sys.argv[5]), sys.argv[2],
                                   int(sys.argv[3])) * 1e6))
    else:
        sys.exit('unknown mode')


if __name__ == '__main__':
    main()
