"""Across hosts, as far as one machine can show it: mproc-manager in one network
namespace, workers in four others, each linked to the server's namespace by a veth
pair with its own subnet, so every worker reaches the server over a real (virtual)
network interface and not over loopback.

    netns_scaleout.py --manager BIN --c-worker BIN [--workers N] [--tasks N]

The master runs in the server's namespace: it puts TASKS numbers and one None per
worker on get_task_queue, then reads TASKS results from get_result_queue and checks
that every task was done exactly once and nothing else came back. Workers alternate
between the C worker (--c-worker) and tests/task_worker.py.

Exit status: 0 pass, 1 fail, 77 when namespaces cannot be made here (not root, no
`ip`, no veth support), with the reason on stdout.
"""
import argparse
import os
import queue
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = 'netns-test-key'


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=30)


class Net:
    def __init__(self, prefix, nworkers_ns):
        self.prefix = prefix
        self.srv = prefix + 's'
        self.wns = ['%sw%d' % (prefix, i) for i in range(1, nworkers_ns + 1)]
        self.made = []

    def up(self):
        for ns in [self.srv] + self.wns:
            sh('ip', 'netns', 'add', ns)
            self.made.append(ns)
            sh('ip', '-n', ns, 'link', 'set', 'lo', 'up')
        for i, ns in enumerate(self.wns, 1):
            a, b = '%sa%d' % (self.prefix, i), '%sb%d' % (self.prefix, i)
            sh('ip', 'link', 'add', a, 'type', 'veth', 'peer', 'name', b)
            sh('ip', 'link', 'set', a, 'netns', self.srv)
            sh('ip', 'link', 'set', b, 'netns', ns)
            sh('ip', '-n', self.srv, 'addr', 'add', '10.231.%d.1/24' % i, 'dev', a)
            sh('ip', '-n', ns, 'addr', 'add', '10.231.%d.2/24' % i, 'dev', b)
            sh('ip', '-n', self.srv, 'link', 'set', a, 'up')
            sh('ip', '-n', ns, 'link', 'set', b, 'up')

    def server_ip(self, i):
        return '10.231.%d.1' % (i + 1)

    def down(self):
        for ns in self.made:
            sh('ip', 'netns', 'del', ns, check=False)


def in_ns(ns, argv):
    return ['ip', 'netns', 'exec', ns] + argv


def master(address, tasks, nworkers):
    """Runs inside the server's namespace (the driver re-executes itself)."""
    from multiprocessing.managers import BaseManager

    class M(BaseManager):
        pass
    M.register('get_task_queue')
    M.register('get_result_queue')
    host, port = address.rsplit(':', 1)
    m = M(address=(host, int(port)), authkey=KEY.encode())
    for attempt in range(100):
        try:
            m.connect()
            break
        except OSError:
            time.sleep(0.1)
    t, r = m.get_task_queue(), m.get_result_queue()
    for n in range(tasks):
        t.put(n)
    for _ in range(nworkers):
        t.put(None)
    seen = {}
    who = set()
    deadline = time.monotonic() + 120
    while len(seen) < tasks and time.monotonic() < deadline:
        try:
            line = r.get(timeout=5)
        except queue.Empty:
            continue
        name, n = line.split(' ')[0], int(line.split(' ')[1])
        seen[n] = seen.get(n, 0) + 1
        who.add(name.rstrip('0123456789'))
    missing = [n for n in range(tasks) if n not in seen]
    dup = [n for n, c in seen.items() if c != 1]
    extra = 0
    try:
        while True:
            r.get(timeout=1)
            extra += 1
    except queue.Empty:
        pass
    print('master: %d tasks, %d results, missing %d, duplicated %d, extra %d, kinds %s' %
          (tasks, len(seen), len(missing), len(dup), extra, sorted(who)))
    return 0 if not missing and not dup and extra == 0 else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--manager')
    ap.add_argument('--c-worker')
    ap.add_argument('--workers', type=int, default=20)
    ap.add_argument('--tasks', type=int, default=400)
    ap.add_argument('--master', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.master:
        return master(a.master, a.tasks, a.workers)
    if os.geteuid() != 0:
        print('skip: network namespaces need root')
        return 77
    if shutil.which('ip') is None:
        print('skip: no ip(8) command')
        return 77
    net = Net('mp%d' % (os.getpid() % 100000), 4)
    procs = []
    env = dict(os.environ, MPROC_AUTHKEY=KEY)
    try:
        try:
            net.up()
        except (subprocess.CalledProcessError, OSError) as e:
            err = getattr(e, 'stderr', '') or str(e)
            print('skip: cannot make network namespaces and veth links here: %s' % err.strip())
            return 77
        server = subprocess.Popen(in_ns(net.srv, [a.manager, '--listen', ':5000', '--quiet',
                                                   '--queue', 'get_task_queue',
                                                   '--queue', 'get_result_queue']), env=env)
        procs.append(server)
        time.sleep(0.3)
        for w in range(a.workers):
            i = w % len(net.wns)
            addr = '%s:5000' % net.server_ip(i)
            if w % 2 == 0:
                argv = [a.c_worker, addr, 'c%d' % w, '30']
            else:
                argv = [sys.executable, os.path.join(HERE, 'task_worker.py'), addr,
                        'py%d' % w, '30']
            procs.append(subprocess.Popen(in_ns(net.wns[i], argv), env=env))
        m = subprocess.run(in_ns(net.srv, [sys.executable, os.path.abspath(__file__),
                                           '--master', '127.0.0.1:5000',
                                           '--tasks', str(a.tasks),
                                           '--workers', str(a.workers)]),
                           env=env, timeout=300)
        bad = 0
        for p in procs[1:]:
            try:
                if p.wait(timeout=60) != 0:
                    bad += 1
            except subprocess.TimeoutExpired:
                bad += 1
        print('workers: %d of %d exited non-zero or hung' % (bad, a.workers))
        return 0 if m.returncode == 0 and bad == 0 else 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        net.down()


if __name__ == '__main__':
    sys.exit(main())
