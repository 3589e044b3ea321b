# manager_proxy_setup, CPython side: connect() + get_queue() + the first call (qsize),
# as a worker starts; milliseconds each.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import manager_peer  # noqa: E402

if __name__ == '__main__':
    m = manager_peer.start_server()
    host, port = m.address
    print('%.6g ms' % (manager_peer.setup(host, port, 10) * 1e3))
    m.shutdown()
