# manager_server_memory, CPython side: CPython's manager server process (queue.Queue
# as 'get_queue') holding 10,000 queued 64-byte items with 100 idle client channels
# (threads of this client that each made one call); its VmRSS in KiB.
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import manager_peer  # noqa: E402


def rss_kib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return -1


if __name__ == '__main__':
    m = manager_peer.start_server()
    host, port = m.address
    q = manager_peer.client(host, port).get_queue()
    item = b'x' * 64
    for _ in range(10000):
        q.put(item)
    release = threading.Event()
    ready = threading.Barrier(101)

    def idle():
        c = manager_peer.client(host, port).get_queue()
        c.qsize()
        ready.wait()
        release.wait()
    ts = [threading.Thread(target=idle, daemon=True) for _ in range(100)]
    for t in ts:
        t.start()
    ready.wait()
    time.sleep(0.2)
    kib = rss_kib(m._process.pid)
    release.set()
    for t in ts:
        t.join()
    m.shutdown()
    print('%d KiB' % kib)
