# manager_100_clients, CPython side: CPython's manager server (queue.Queue as
# 'get_queue'), driven by the same 100 C client threads as the mproc side (this
# case's binary in "drive" mode), so the two columns compare the servers.
# The binary is found in $MPROC_BUILD/bench (default: <repo>/build/bench).
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))
import manager_peer  # noqa: E402

if __name__ == '__main__':
    build = os.environ.get('MPROC_BUILD', os.path.join(HERE, '..', '..', 'build'))
    exe = os.path.join(build, 'bench', 'bench_manager_100_clients')
    m = manager_peer.start_server()
    host, port = m.address
    try:
        out = subprocess.run([exe, 'drive', host, str(port)], capture_output=True, text=True,
                             timeout=600, check=True).stdout
    finally:
        m.shutdown()
    print(out.strip())
