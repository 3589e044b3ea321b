# manager_python_client, CPython side: a python3 client's put+get pairs against a
# CPython manager server (the mproc side runs the same client against mproc's).
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import manager_peer  # noqa: E402

if __name__ == '__main__':
    m = manager_peer.start_server()
    host, port = m.address
    print('%.6g us' % (manager_peer.pairs(host, port, 5000) * 1e6))
    m.shutdown()
