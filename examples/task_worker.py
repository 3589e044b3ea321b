# task_worker.py — the distributed-process tutorial's worker as Python writes it:
# register the names only, connect(), ten get(timeout=1) attempts.
# examples/manager_demo.sh runs it beside the C workers. Usage: task_worker.py [port]
import sys, queue
from multiprocessing.managers import BaseManager


class QueueManager(BaseManager):
    pass


QueueManager.register('get_task_queue')
QueueManager.register('get_result_queue')
server_addr = '127.0.0.1'
port = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
print('Connect to server %s...' % server_addr)
m = QueueManager(address=(server_addr, port), authkey=b'abc')
m.connect()
task = m.get_task_queue()
result = m.get_result_queue()
for i in range(10):
    try:
        n = task.get(timeout=1)
        print('run task %d * %d...' % (n, n))
        r = '%d * %d = %d (python3)' % (n, n, n * n)
        result.put(r)
    except queue.Empty:
        print('task queue is empty.')
print('worker exit.')
