"""The CPython side of tests/test_manager.c: the distributed-process tutorial's master
and worker, written as the tutorial writes them, plus probes of a manager server.

    manager_peer.py worker HOST PORT KEY       ten task.get(timeout=1) attempts, as the tutorial
    manager_peer.py master KEY                 tutorial master on a free port; prints "PORT n" first
    manager_peer.py server KEY                 serves the two queues until shutdown; prints "PORT n"
    manager_peer.py empty HOST PORT KEY        get(timeout=1) on the empty result queue -> Empty
    manager_peer.py blockget HOST PORT KEY     prints READY, then task.get() with no timeout
    manager_peer.py wrongkey HOST PORT         connect with a wrong key -> AuthenticationError
    manager_peer.py probe HOST PORT KEY        exposed names, errors, fallbacks, control requests

Every mode prints what it saw, one fact a line, and exits 0 when all went as expected."""
import queue
import sys
import time
from multiprocessing.managers import BaseManager, RemoteError
from multiprocessing import AuthenticationError


class QueueManager(BaseManager):
    pass


def out(*a):
    print(*a, flush=True)


def worker(host, port, key):
    QueueManager.register('get_task_queue')
    QueueManager.register('get_result_queue')
    out('Connect to server %s...' % host)
    m = QueueManager(address=(host, port), authkey=key)
    m.connect()
    task = m.get_task_queue()
    result = m.get_result_queue()
    for i in range(10):
        try:
            n = task.get(timeout=1)
            out('run task %d * %d...' % (n, n))
            r = '%d * %d = %d' % (n, n, n * n)
            result.put(r)
        except queue.Empty:
            out('task queue is empty.')
    out('worker exit.')


task_queue = queue.Queue()
result_queue = queue.Queue()


def get_task():
    return task_queue


def get_result():
    return result_queue


def master(key, tasks=10):
    QueueManager.register('get_task_queue', callable=get_task)
    QueueManager.register('get_result_queue', callable=get_result)
    manager = QueueManager(address=('127.0.0.1', 0), authkey=key)
    manager.start()
    out('PORT %d' % manager.address[1])
    task = manager.get_task_queue()
    result = manager.get_result_queue()
    for i in range(tasks):
        n = 1000 + i
        out('Put task %d...' % n)
        task.put(n)
    out('Try get results...')
    for i in range(tasks):
        r = result.get(timeout=10)
        out('Result: %s' % r)
    manager.shutdown()
    out('master exit.')


def server(key):
    QueueManager.register('get_task_queue', callable=get_task)
    QueueManager.register('get_result_queue', callable=get_result)
    m = QueueManager(address=('127.0.0.1', 0), authkey=key)
    s = m.get_server()
    out('PORT %d' % s.address[1])
    s.serve_forever()


def connect(host, port, key):
    QueueManager.register('get_task_queue')
    QueueManager.register('get_result_queue')
    m = QueueManager(address=(host, port), authkey=key)
    m.connect()
    return m


def empty(host, port, key):
    m = connect(host, port, key)
    result = m.get_result_queue()
    t0 = time.monotonic()
    try:
        result.get(timeout=1)
        out('got an item?!')
        sys.exit(1)
    except queue.Empty:
        out('EMPTY after %.1f s' % (time.monotonic() - t0))


def blockget(host, port, key):
    m = connect(host, port, key)
    task = m.get_task_queue()
    task.qsize()  # opens the channel
    out('READY')
    out('GOT', task.get())


def wrongkey(host, port):
    try:
        connect(host, port, b'not the key')
    except AuthenticationError as e:
        out('AuthenticationError:', e)
        return
    out('connected with a wrong key?!')
    sys.exit(1)


def check(what, cond):
    out('%s: %s' % ('ok' if cond else 'FAIL', what))
    return cond


def probe(host, port, key):
    from multiprocessing.connection import Client
    m = connect(host, port, key)
    task = m.get_task_queue()
    good = True
    names = sorted(task._exposed_)
    good &= check('exposed %s' % ','.join(names), 'get' in names and 'put' in names)
    task.put(('tuple', 1, 2.5, None, b'bytes', [1, 2], {'k': 'v'}))
    good &= check('round trip of a tuple',
                  task.get(timeout=1) == ('tuple', 1, 2.5, None, b'bytes', [1, 2], {'k': 'v'}))
    good &= check('qsize 0', task.qsize() == 0 and task.empty() and not task.full())
    try:
        task._callmethod('nosuch')
        good &= check('unknown method raised', False)
    except RemoteError as e:
        good &= check('unknown method -> RemoteError', 'nosuch' in str(e))
    good &= check('repr fallback', 'Queue' in str(task))
    try:
        task.get(False)
        good &= check('get(False) raised', False)
    except queue.Empty:
        good &= check('get(False) -> queue.Empty', True)
    try:
        task.task_done()
        task.task_done()
        good &= check('task_done too often raised', False)
    except ValueError as e:
        good &= check('task_done too often -> ValueError', 'too many' in str(e))
    try:
        task.get(nosuch=1)
        good &= check('bad keyword raised', False)
    except TypeError as e:
        good &= check('bad keyword -> TypeError', 'nosuch' in str(e))
    conn = Client((host, port), authkey=key)
    conn.send((None, 'number_of_objects', (), {}))
    kind, n = conn.recv()
    good &= check('number_of_objects %r' % (n,), kind == '#RETURN' and isinstance(n, int) and n >= 1)
    conn.close()
    conn = Client((host, port), authkey=key)
    conn.send((None, 'bogus', (), {}))
    kind, text = conn.recv()
    good &= check('bogus request -> #TRACEBACK', kind == '#TRACEBACK' and 'unrecognized' in text)
    conn.close()
    conn = Client((host, port), authkey=key)
    conn.send((None, 'debug_info', (), {}))
    kind, text = conn.recv()
    good &= check('debug_info', kind == '#RETURN' and 'refcount=' in text)
    conn.close()
    conn = Client((host, port), authkey=key)
    conn.send((None, 'get_methods', (task._token,), {}))
    kind, methods = conn.recv()
    good &= check('get_methods', kind == '#RETURN' and 'get' in methods)
    conn.close()
    conn = Client((host, port), authkey=key)
    conn.send((None, 'create', ('no_such_typeid',), {}))
    kind, text = conn.recv()
    good &= check('create of an unknown typeid -> #TRACEBACK', kind == '#TRACEBACK' and 'KeyError' in text)
    conn.close()
    # Garbage on an authenticated channel: a traceback, and the channel goes on.
    conn = Client((host, port), authkey=key)
    conn.send((None, 'accept_connection', ('probe',), {}))
    conn.recv()
    conn.send_bytes(b'\x80\x04garbage')
    kind, text = conn.recv()
    good &= check('garbage pickle -> #TRACEBACK', kind == '#TRACEBACK')
    conn.send((task._id, 'qsize', (), {}))
    good &= check('channel still serves', conn.recv() == ('#RETURN', 0))
    conn.close()
    sys.exit(0 if good else 1)


def main():
    mode = sys.argv[1]
    if mode == 'worker':
        worker(sys.argv[2], int(sys.argv[3]), sys.argv[4].encode())
    elif mode == 'master':
        master(sys.argv[2].encode())
    elif mode == 'server':
        server(sys.argv[2].encode())
    elif mode == 'empty':
        empty(sys.argv[2], int(sys.argv[3]), sys.argv[4].encode())
    elif mode == 'blockget':
        blockget(sys.argv[2], int(sys.argv[3]), sys.argv[4].encode())
    elif mode == 'wrongkey':
        wrongkey(sys.argv[2], int(sys.argv[3]))
    elif mode == 'probe':
        probe(sys.argv[2], int(sys.argv[3]), sys.argv[4].encode())
    else:
        sys.exit('unknown mode ' + mode)


if __name__ == '__main__':
    main()
