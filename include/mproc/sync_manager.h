/* mproc/sync_manager.h — the SyncManager: every shared type CPython's
 * multiprocessing.managers.SyncManager serves (Queue, JoinableQueue, Lock, RLock,
 * Semaphore, BoundedSemaphore, Condition, Event, Barrier, Value, Array, dict, list,
 * Namespace), served by a mproc manager to CPython 3.11-3.13 clients and to C
 * clients, plus typed shortcuts for the proxies of those types.
 *
 * Server:
 *
 *     mp_manager *m;
 *     mp_manager_new(&m, "127.0.0.1:5000", "abc", 3, NULL);
 *     mp_sync_manager_register(m);           // SyncManager's typeids
 *     mp_manager_serve_forever(m);
 *
 * and a CPython client, unchanged:
 *
 *     m = SyncManager(address=('127.0.0.1', 5000), authkey=b'abc'); m.connect()
 *     d = m.dict(); d['k'] = 1; lk = m.Lock(); lk.acquire(); ...
 *
 * A C client:
 *
 *     mp_proxy *d, *lk;
 *     mp_manager_create(m, "dict", NULL, NULL, &d);
 *     mp_proxy_dict_set_str(d, "k", mp_int(1));   // d['k'] = 1 (takes the value)
 *     mp_manager_create(m, "Lock", NULL, NULL, &lk);
 *     if (mp_proxy_acquire(lk, 1000) == 0) { ...; mp_proxy_release(lk); }
 *
 * Each served method behaves as the Python object's method behind CPython's
 * SyncManager, exceptions included (KeyError, IndexError, RuntimeError('cannot
 * release un-acquired lock'), threading.BrokenBarrierError, AttributeError from a
 * Namespace, queue.Empty, ...), with the messages of the server's Python version
 * (mp_manager_options.python_version; 3.13 by default).
 *
 * Beyond CPython:
 * - Ownership follows the connection (a CPython client thread makes all its calls
 *   on one connection): when a connection closes (the client exited or was
 *   killed), every Lock and RLock it holds is released, a Condition's lock it holds
 *   is released, the Semaphore / BoundedSemaphore units it acquired and did not
 *   release are given back (a release by another connection counts against the
 *   acquirer's units), and a Barrier it is waiting at is broken so the other parties
 *   get BrokenBarrierError instead of waiting forever. CPython keeps all of these
 *   forever.
 * - A waiter (acquire, Condition.wait, Event.wait, Barrier.wait, Queue.get) whose
 *   own client has gone takes nothing; waiters are woken when the server stops (the
 *   reply is a RemoteError) or dies (the client's EOFError).
 *
 * Differences, all refused with a clear error rather than done differently:
 * Condition(lock) with a lock proxy (the server makes its own RLock, as
 * Condition() does), Barrier(action=f) and list.sort(key=f) other than key=len (the
 * server runs no Python code), Semaphore with a float value, Array typecodes 'u'
 * and 'w', and Array initialised from bytes. SyncManager.Pool is not served.
 *
 * Threads and fork: as mproc/manager.h (the shortcuts are proxy calls).
 */
#ifndef MPROC_SYNC_MANAGER_H
#define MPROC_SYNC_MANAGER_H

#include <stdbool.h>
#include <stdint.h>

#include "mproc/export.h"
#include "mproc/manager.h"
#include "mproc/object.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Registers SyncManager's typeids on the server side of m, as CPython's
 * SyncManager.register calls: Queue and JoinableQueue (queue.Queue), Event, Lock,
 * RLock, Semaphore, BoundedSemaphore, Condition, Barrier, list, dict, Value, Array,
 * Namespace, and Iterator (what dict.__iter__ returns). Call before start /
 * serve_forever; other typeids may be registered beside them.
 * Errors: MP_EEXIST (one of the typeids is already registered; those before it
 * stay registered), MP_EBUSY (the server is running), MP_EINVAL, MP_ENOMEM. */
MP_EXTERN int mp_sync_manager_register(mp_manager *m);

/* The served type behind a SyncManager typeid ("Lock", "dict", "Queue", ...), or
 * NULL for a name SyncManager does not register. With it a server can serve one
 * shared object under a name of its own, as Python's register('get_lock',
 * callable=lambda: lock):
 *     mp_served *lock;
 *     mp_served_new(&lock, mp_sync_manager_type("Lock"), NULL, NULL);
 *     mp_manager_register(m, "get_lock", &(mp_manager_register_options){.object = lock});
 * The types are static; thread-safe. */
MP_EXTERN const mp_manager_type *mp_sync_manager_type(const char *typeid);

/* ---- Lock, RLock, Semaphore, BoundedSemaphore, Condition ---- */

/* acquire(timeout=timeout_ms/1000): 0 when acquired, MP_ETIMEDOUT when not within
 * timeout_ms (-1: wait as long as it takes; 0: acquire(False)). */
MP_EXTERN int mp_proxy_acquire(mp_proxy *p, int timeout_ms);

/* release(): 0, or MP_EPERM when the server raised RuntimeError (a Lock not held,
 * an RLock or Condition held by another connection) or ValueError (a
 * BoundedSemaphore released too many times). */
MP_EXTERN int mp_proxy_release(mp_proxy *p);

/* Condition.wait(timeout): 0 when notified, MP_ETIMEDOUT; MP_EPERM when this
 * connection does not hold the condition's lock. notify(n) / notify_all():
 * 0 or MP_EPERM. */
MP_EXTERN int mp_proxy_condition_wait(mp_proxy *p, int timeout_ms);
MP_EXTERN int mp_proxy_condition_notify(mp_proxy *p, int n);
MP_EXTERN int mp_proxy_condition_notify_all(mp_proxy *p);

/* ---- Event ---- */

/* set() / clear(): 0. is_set(): 1 or 0. wait(timeout): 0 when the event is set,
 * MP_ETIMEDOUT when it was not within timeout_ms (-1: forever). */
MP_EXTERN int mp_proxy_event_set(mp_proxy *p);
MP_EXTERN int mp_proxy_event_clear(mp_proxy *p);
MP_EXTERN int mp_proxy_event_is_set(mp_proxy *p);
MP_EXTERN int mp_proxy_event_wait(mp_proxy *p, int timeout_ms);

/* ---- Barrier ---- */

/* wait(timeout): the arrival index (0 .. parties-1, >= 0), or MP_EBROKEN when the
 * barrier is or becomes broken (BrokenBarrierError: a timeout, abort, reset, or a
 * party that went away). abort() / reset(): 0. */
MP_EXTERN int mp_proxy_barrier_wait(mp_proxy *p, int timeout_ms);
MP_EXTERN int mp_proxy_barrier_abort(mp_proxy *p);
MP_EXTERN int mp_proxy_barrier_reset(mp_proxy *p);

/* ---- dict ---- */

/* d[key] = value. Takes the references to key and value, also on failure.
 * Errors: MP_ETYPE (key unhashable: TypeError), and those of mp_proxy_call. */
MP_EXTERN int mp_proxy_dict_set(mp_proxy *p, mp_obj *key, mp_obj *value);
MP_EXTERN int mp_proxy_dict_set_str(mp_proxy *p, const char *key, mp_obj *value);

/* d[key]: a new reference in *value; MP_ENOENT when the key is absent (KeyError).
 * The caller keeps key. */
MP_EXTERN int mp_proxy_dict_get(mp_proxy *p, const mp_obj *key, mp_obj **value);
MP_EXTERN int mp_proxy_dict_get_str(mp_proxy *p, const char *key, mp_obj **value);

/* del d[key]: 0 or MP_ENOENT. The caller keeps key. */
MP_EXTERN int mp_proxy_dict_del(mp_proxy *p, const mp_obj *key);

/* ---- list ---- */

/* l.append(item); takes the reference to item, also on failure. */
MP_EXTERN int mp_proxy_list_append(mp_proxy *p, mp_obj *item);

/* l[index] (negative counts from the end): a new reference in *item; MP_ERANGE when
 * out of range (IndexError). */
MP_EXTERN int mp_proxy_list_get(mp_proxy *p, int64_t index, mp_obj **item);

/* ---- dict, list, Array ---- */

/* len(x): the length (>= 0) or a negative code. */
MP_EXTERN int64_t mp_proxy_len(mp_proxy *p);

/* ---- Value ---- */

/* v.get(): a new reference in *value. v.set(value): takes the reference. */
MP_EXTERN int mp_proxy_value_get(mp_proxy *p, mp_obj **value);
MP_EXTERN int mp_proxy_value_set(mp_proxy *p, mp_obj *value);

#ifdef __cplusplus
}
#endif

#endif /* MPROC_SYNC_MANAGER_H */
