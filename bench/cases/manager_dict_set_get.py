# manager_dict_set_get, CPython side: the same python3 client (d[k] = v; d[k]) against
# CPython's own SyncManager server.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import sync_peer  # noqa: E402

if __name__ == '__main__':
    srv = sync_peer.start_cpython()
    host, port = srv.address
    print('%.6g us' % (sync_peer.dict_rounds(sync_peer.connect(host, port), 5000) * 1e6))
    srv.shutdown()
