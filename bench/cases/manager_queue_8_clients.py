# manager_queue_8_clients, CPython side: eight client processes against one CPython
# manager server, put+get pairs; microseconds per operation, aggregate (1 / ops per s).
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import manager_peer  # noqa: E402

if __name__ == '__main__':
    print('%.6g us' % (manager_peer.clients(8, 1000) * 1e6))
