"""The tutorial's task worker, as the Python documentation and tutorials write it:
register the queue names only, connect(), take tasks with get(timeout=1), put one
result per task. Extra: a task of None ends the worker (so a test can stop a known
number of workers), and results carry the worker's name so a test can check that
every task was done exactly once.

    task_worker.py HOST:PORT [NAME] [IDLE_TIMEOUTS]

The authkey comes from MPROC_AUTHKEY (default 'abc', as the tutorial). The worker
exits 0 after a None task, or after IDLE_TIMEOUTS (default 10) empty gets in a row.
"""
import os
import queue
import sys
from multiprocessing.managers import BaseManager


class QueueManager(BaseManager):
    pass


QueueManager.register('get_task_queue')
QueueManager.register('get_result_queue')


def main():
    host, port = sys.argv[1].rsplit(':', 1)
    name = sys.argv[2] if len(sys.argv) > 2 else 'py%d' % os.getpid()
    idle_limit = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    m = QueueManager(address=(host, int(port)),
                     authkey=os.environ.get('MPROC_AUTHKEY', 'abc').encode())
    m.connect()
    task = m.get_task_queue()
    result = m.get_result_queue()
    idle = 0
    while idle < idle_limit:
        try:
            n = task.get(timeout=1)
        except queue.Empty:
            idle += 1
            continue
        idle = 0
        if n is None:
            break
        result.put('%s %d * %d = %d' % (name, n, n, n * n))
    return 0


if __name__ == '__main__':
    sys.exit(main())
