# manager_server_memory, CPython side: CPython's manager server process (queue.Queue
# as 'get_queue') holding 10,000 queued 64-byte items with 100 idle client channels
# (authenticated connections that sent accept_connection, as a client thread's
# first call opens); its VmRSS in KiB.
import os
import sys
import time
from multiprocessing.connection import Client

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
    q = manager_peer.client(*m.address).get_queue()
    item = b'x' * 64
    for _ in range(10000):
        q.put(item)
    channels = []
    for i in range(100):
        c = Client(m.address, authkey=manager_peer.KEY)
        c.send((None, 'accept_connection', ('idle%d' % i,), {}))
        c.recv()
        channels.append(c)
    time.sleep(0.2)
    kib = rss_kib(m._process.pid)
    for c in channels:
        c.close()
    m.shutdown()
    print('%d KiB' % kib)
