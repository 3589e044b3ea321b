/* queue.c — Queue, SimpleQueue and JoinableQueue in shared memory.
 *
 * Layout. One block of arena memory per queue: a struct shared followed by a ring
 * of `cap` bytes (a power of two), and one memfd per queue (made at creation, so
 * every process forked afterwards has it under the same descriptor number) that
 * holds the messages too long for the ring; each process maps its block area of
 * blob_span = 4 * cap bytes (a constant) on first use. Not arena memory: a chunk
 * the arena maps after a fork exists only in the process that mapped it, so a
 * forked producer could not hand a block to its siblings; the memfd made before
 * the fork is the same file in all of them. Messages are records at 8-byte
 * aligned ring positions: an 8-byte header (kind << 56 | length) and a body,
 * padded to 8.
 *   WHOLE  a message that fits in the ring: header + payload.
 *   BLOB   a message that does not: header + the 8-byte position of its block,
 *          a range of the memfd holding its bytes (its length rounded up to whole
 *          pages; see blob_tail). The ring carries only this reference.
 *
 * Two sides, each serialized by a side lock (struct side_lock: a word naming the
 * holder process, taken with one compare-and-swap, given back with a plain store
 * and a fence, a holder's death found by its waiters), so the ring is a
 * single-producer single-consumer ring between the two current holders:
 *   put_lock  held by one producer for a whole put, including its waits for room
 *             and the copy of a long message into its block.
 *   get_lock  held by one consumer for a whole get, likewise.
 *
 * Shared words and who changes them:
 *   tail   (nput << 32 | tpos): written only by the put_lock holder.
 *   head   (nget << 32 | hpos): written only by the get_lock holder.
 *          tpos/hpos are byte positions modulo 2^32 (cap divides 2^32, so
 *          pos & (cap - 1) is the ring offset); nput/nget count records modulo
 *          2^32. Bytes in use = tpos - hpos, messages = nput - nget.
 *   head_seen  a past value of head kept by the put_lock holder, and tail_seen a
 *          past value of tail kept by the get_lock holder: each side reads the
 *          other's index only when its old copy says "full" / "empty". Indices
 *          only move forward, so an old copy only ever understates room or data.
 *          (Under ThreadSanitizer each side always reads afresh: TRUST_SEEN_INDEX.)
 *   blob_tail  position (bytes, modulo 2^64) where the next block goes: written
 *          only by the put_lock holder, which moves it past a block (reserving it)
 *          before writing the block's bytes. Positions only grow; a block at
 *          position p lives at offset p mod blob_span of the memfd's block area
 *          [0, blob_span) (wrapping at its end), so the area is reused, never
 *          reallocated. An oversized block (longer than the area) is only ever
 *          placed when no other block is live, and fills the file from offset 0.
 *   blob_over, blob_over_pos  the file was grown for the oversized block at
 *          blob_over_pos and not yet shrunk back to the area: under put_lock.
 *   data_seq, get_waiting   futex word a consumer sleeps on when the ring is empty,
 *          and a flag saying it sleeps. Only the get_lock holder sleeps on
 *          data_seq and sets the flag; it clears it when done waiting, and a
 *          producer that sees it set clears it (atomic exchange) before waking, so
 *          one wake-up costs one system call however many messages follow.
 *   space_seq, put_waiting  the same for the put_lock holder waiting for room.
 *   ndone  task_done count modulo 2^32 (JoinableQueue); unfinished = nput - ndone.
 *          Changed only by task_done, with a compare-and-swap that refuses to
 *          pass nput.
 *   join_waiters  how many join() callers sleep on ndone.
 *
 * Commit rule (why a death never half-delivers): a producer writes a record's
 * bytes beyond tpos, where no consumer looks, and publishes it with one atomic
 * store of tail as its last step (release order: the bytes are visible before the
 * new tail). A consumer copies a record out and frees it with one atomic store of
 * head, its last step. Each side's state is that single word, so a process killed
 * anywhere inside put or get leaves either the old word (the operation never
 * happened) or the new one (it happened). The next locker finds the lock word
 * naming a dead process (side_take_from_dead, after at most one
 * MP__DEATH_SLICE_MS of waiting), takes it over, finds the committed word valid
 * as it is and goes on. It also clears the side's sleeping flag, which only a
 * lock holder ever sets. Recovery writes nothing else, so a death during it is
 * recovered the same way (no state is ever beyond repair). The lock word names a
 * process, not a thread: a thread cannot end inside put or get short of its
 * whole process (neither waits at a cancellation point), except by an exec()
 * from another thread of the holder's process, which the word does not see.
 * (A robust pthread mutex did, but its lock and unlock cost 30 ns a message on
 * each side, the largest item of a put or a get.) The commits themselves are
 * release stores; the fence of the unlock that follows orders them before the
 * look at the other side's waiting flag (Sleeping, below).
 *
 * Blobs follow the same rule, because a block is only ever written before the
 * record naming it is committed and only reused after that record is consumed:
 *   - put: wait for room, reserve [blob_tail, +span) by storing blob_tail, copy
 *     the bytes in, then commit the BLOB record (it names the position). A
 *     producer killed before the commit leaves a reserved block that no record
 *     names: garbage that the area's reuse overwrites.
 *   - get: read the record at head, copy the block out (the block stays as it
 *     is), commit head. A consumer killed before its commit leaves record and
 *     block whole for the next consumer.
 *   - room (a producer, before placing each blob): the live blocks are exactly
 *     those named by BLOB records in [head, tail), which only the put_lock holder
 *     writes, so it walks them from head: the first one's position, or blob_tail
 *     if none, is `low`. A head read while a consumer copies still names that
 *     consumer's record, so low never passes a block being read. blob_tail - low
 *     is the area in use; a new block must keep it within blob_span (so it never
 *     overlaps a live one modulo blob_span), or be alone (used == 0): an oversized
 *     block is placed only then, and while it is live nothing else fits.
 *   - shrink: once low has passed blob_over_pos, the oversized block is consumed
 *     and the file is cut back to the area (ftruncate) under put_lock: by the
 *     consumer that took it, if put_lock is free then, else by the next long put.
 *     A death anywhere leaves blob_over set, so the next holder shrinks.
 * So a message of any size is delivered whole exactly once, or (killed before its
 * commit) never; the only loss is a consumer killed after its commit, that is
 * after it owns its copy. The area's memory (at most blob_span bytes, touched as
 * used) is kept for reuse until the queue is destroyed.
 *
 * Sleeping (Dekker style): a waiter spins briefly, then reads the sequence word,
 * sets its flag, re-checks the ring (all seq_cst) and only then futex-waits on
 * the sequence value it read (setting the flag again on every round); the other
 * side commits, unlocks, makes a seq_cst fence (side_unlock), then reads the flag
 * and, if set, clears it, bumps the sequence and wakes. Either the waiter sees the commit or the
 * committer sees the flag, and a bumped sequence makes a wait that starts late return at once.
 * The sequence is read before the flag is set: a committer that clears the flag then bumps the
 * sequence after the waiter read it, so the wait returns and the next round sets the flag again.
 * (Flag first, a commit freeing too little room could clear the flag and bump the sequence
 * between the two; the producer then slept with its flag clear, unseen by the gets that did free
 * enough, for a whole slice.) The
 * committer's wake-up is not part of its commit: one killed between the two never wakes the
 * sleeper, so every sleep (join's too) lasts at most SLEEP_SLICE_MS before the
 * sleeper re-checks the ring; a death costs a sleeper that much, never a hang.
 */
#include <assert.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/arena.h"
#include "linux/futex.h"
#include "mproc/queue.h"
#include "queue/queue.h"
#include "sync/sync.h"

#define DEFAULT_RING ((size_t)1 << 20)
#define MIN_RING ((size_t)4096)
#define MAX_RING ((size_t)1 << 30)
#define HDR 8u
#define SPIN 200
/* A side waiting for the other looks at its index once every SPIN_STRIDE pauses,
 * not at every one: each look takes the index's cache line away from the side
 * that writes it at every message, and a look that finds several messages (or
 * several messages' room) lets both run on undisturbed for a while. */
#define SPIN_STRIDE 8
#define ROOM_BATCH 4096u /* see room_fresh */
#define YIELDS 20
#define SLEEP_SLICE_MS 1000
#define MAX_MSG (((uint64_t)1 << 56) - 1) /* the length field of a record header */
#define NONBLOCK_GRACE_NS 200000000u
#define BLOB_REC 16u               /* header + the block's offset */
#define BLOB_PAGE ((uint64_t)4096) /* blocks are whole pages, so each is released whole */
#define BLOB_AREA_RINGS 4 /* the block area, and so the blob bytes queued at once: 4 rings */

/* Whether a side may trust head_seen / tail_seen, the copy of the other side's
 * index that an earlier lock holder, perhaps in another process, read. The
 * bytes that copy vouches for were published to that holder; ThreadSanitizer
 * cannot see a happens-before that runs through another process and would report
 * our ring copies as races, so under it each side reads the index afresh. */
#define TRUST_SEEN_INDEX (!MP__TSAN)

enum { KIND_WHOLE = 1, KIND_BLOB = 2 };
enum { Q_QUEUE, Q_SIMPLE, Q_JOINABLE };

/* A side lock: the word (the holder's mp__self_id, or 0; sync/sync.h's layout,
 * without its WAITERS bit) and, for sleepers, the protocol of the ring's own
 * waits (Sleeping, at the top of the file): a sleeper reads `seq`, sets
 * `waiting`, looks at the word again and futex-waits on seq; the releaser stores 0,
 * makes one full fence and, if waiting is set, clears it, bumps seq and wakes
 * every sleeper (each sets the flag again before it sleeps again). So a release
 * is a plain store and the fence, which also orders the holder's commit before
 * its look at the other side's waiting flag: two locked instructions a message
 * on each side, not the three of a lock word's exchange on top of a sequentially
 * consistent commit. */
struct side_lock {
    mp__lockword word;
    _Atomic uint32_t waiting; /* a locker may sleep on seq */
    _Atomic uint32_t seq;     /* futex; bumped by the releaser that clears waiting */
};

/* Each group on a cache line of its own, followed by an empty one: a line written
 * by one side and read by the other moves between cores, so the words each side
 * writes per message (its lock, its index) are kept apart from the words it only
 * reads, and 128 bytes apart, since CPUs fetch lines in adjacent pairs (the
 * block is only 64-byte aligned, so a group may share a pair with the padding
 * before or after it, never with another group). */
#define PAD(name) char name[64]
struct shared {
    uint32_t cap;       /* ring bytes, power of two; constant */
    uint32_t maxsize;   /* message limit, 0: none; constant */
    uint64_t blob_span; /* bytes of the block area (the budget); constant */
    PAD(pad0);
    alignas(64) struct side_lock put_lock; /* the producer side */
    uint64_t head_seen;                    /* a past value of head (room is at least as
                                              it says); under put_lock */
    _Atomic uint64_t blob_tail;            /* position of the next block; under put_lock */
    _Atomic uint64_t blob_over_pos; /* position of the last oversized block; under put_lock */
    _Atomic uint32_t blob_over;     /* the file may be longer than the area; under put_lock */
    PAD(pad1);
    alignas(64) struct side_lock get_lock; /* the consumer side */
    uint64_t tail_seen;                    /* a past value of tail; under get_lock */
    PAD(pad2);
    alignas(64) _Atomic uint64_t tail; /* nput << 32 | tpos; under put_lock */
    PAD(pad3);
    alignas(64) _Atomic uint64_t head; /* nget << 32 | hpos; under get_lock */
    PAD(pad4);
    alignas(
        64) _Atomic uint32_t data_seq; /* futex; bumped by the producer that clears get_waiting */
    _Atomic uint32_t get_waiting;      /* set by the get_lock holder before it sleeps;
                                          cleared by it or by the producer that wakes it */
    PAD(pad5);
    alignas(
        64) _Atomic uint32_t space_seq; /* futex; bumped by the consumer that clears put_waiting */
    _Atomic uint32_t put_waiting;       /* likewise for the put_lock holder */
    PAD(pad6);
    alignas(64) _Atomic uint32_t ndone; /* task_done count; CAS, never past nput */
    _Atomic uint32_t join_waiters;      /* join callers sleeping on ndone; atomic add */
    PAD(pad7);
    alignas(64) unsigned char ring[]; /* cap bytes of records */
};

struct mp_queue {
    struct shared *s;
    int blob_fd;              /* the memfd of blocks: the same number in every process */
    _Atomic(char *) blob_map; /* this process's mapping of the block area, or NULL */
    uint64_t creator;         /* the process whose destroy frees s: pid and start time, so a
                                 later process given the same pid is not taken for it */
    int kind;                 /* Q_QUEUE, Q_SIMPLE or Q_JOINABLE */
    _Atomic bool closed;      /* close() was called in this process */
};

struct mp_simple_queue {
    mp_queue q;
};
struct mp_joinable_queue {
    mp_queue q;
};

void (*mp__queue_fault_hook)(int point);

static inline void fault(int point)
{
    if (mp__queue_fault_hook != NULL)
        mp__queue_fault_hook(point);
}

static inline uint32_t pos_of(uint64_t w)
{
    return (uint32_t)w;
}
static inline uint32_t cnt_of(uint64_t w)
{
    return (uint32_t)(w >> 32);
}
static inline uint64_t word(uint32_t cnt, uint32_t pos)
{
    return (uint64_t)cnt << 32 | pos;
}
static inline uint64_t round8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

/* mp__futex_wait_slice for at most SLEEP_SLICE_MS (see Sleeping above): the end
 * of a slice is reported as a wake-up (0), the end of d as MP_ETIMEDOUT. */
static int sleep_on(_Atomic uint32_t *word, uint32_t expected, const mp__deadline *d)
{
    int rc = mp__futex_wait_slice(word, expected, d, SLEEP_SLICE_MS);
    return rc == MP_ETIMEDOUT && !mp__deadline_passed(d) ? 0 : rc;
}

/* ---- creation ---- */

static int queue_create(mp_queue **out, int kind, size_t maxsize, const mp_queue_options *opt)
{
    if (out == NULL)
        return MP_EINVAL;
    size_t want = opt != NULL && opt->ring_bytes != 0 ? opt->ring_bytes : DEFAULT_RING;
    if (want > MAX_RING)
        return MP_EINVAL;
    size_t cap = MIN_RING;
    while (cap < want)
        cap <<= 1;
    mp_queue *q = calloc(1, kind == Q_QUEUE    ? sizeof(mp_queue)
                            : kind == Q_SIMPLE ? sizeof(mp_simple_queue)
                                               : sizeof(mp_joinable_queue));
    if (q == NULL)
        return MP_ENOMEM;
    q->blob_fd = memfd_create("mproc-queue", MFD_CLOEXEC);
    if (q->blob_fd < 0) {
        int err = errno == EMFILE || errno == ENFILE ? MP_EMFILE : MP_ENOMEM;
        free(q);
        return err;
    }
    struct shared *s = mp__shm_alloc(sizeof *s + cap);
    if (s == NULL) {
        mp__close_fd(q->blob_fd);
        free(q);
        return MP_ENOMEM;
    }
    s->cap = (uint32_t)cap;
    s->maxsize = maxsize > INT32_MAX ? 0 : (uint32_t)maxsize;
    s->blob_span = (uint64_t)cap * BLOB_AREA_RINGS;
    if (ftruncate(q->blob_fd, (off_t)s->blob_span) != 0) {
        mp__shm_free(s);
        mp__close_fd(q->blob_fd);
        free(q);
        return MP_ENOMEM;
    }
    q->s = s;
    q->creator = mp__self_id();
    q->kind = kind;
    *out = q;
    return 0;
}

static void queue_destroy(mp_queue *q)
{
    if (q == NULL)
        return;
    char *m = atomic_load(&q->blob_map);
    if (m != NULL)
        munmap(m, (size_t)q->s->blob_span);
    if (q->creator == mp__self_id())
        mp__shm_free(q->s);
    mp__close_fd(q->blob_fd);
    free(q);
}

/* ---- the two side locks ---- */

/* If the holder recorded in v has ended, takes the word over (true); as lock.c's
 * take_from_dead. A holder with our pid but another start time is an earlier
 * process, dead. */
static bool side_take_from_dead(struct side_lock *l, uint64_t v, uint64_t me)
{
    if ((v & MP__LOCK_PID_MASK) == 0 || v == me || mp__id_alive(v))
        return false;
    return atomic_compare_exchange_strong(&l->word, &v, me);
}

/* The sleeping part of side_lock: 0, MP_EOWNERDEAD or MP_ETIMEDOUT. A holder's
 * death is looked for after each slice of sleep that ends without a wake-up. */
static int side_lock_slow(struct side_lock *l, uint64_t me, const mp__deadline *d)
{
    for (;;) {
        uint64_t v = atomic_load(&l->word);
        if (v == 0) {
            if (atomic_compare_exchange_strong(&l->word, &v, me))
                return 0;
            continue;
        }
        /* seq before the flag: a releaser that clears our flag bumps seq after,
         * so the wait returns at once. (Flag first, a releaser could clear it
         * and bump seq before we read it, and the word, free then taken by the
         * same process again, look unchanged: a sleep nobody ends.) */
        uint32_t seq = atomic_load(&l->seq);
        atomic_store(&l->waiting, 1);
        if (atomic_load(&l->word) != v)
            continue;
        if (mp__futex_wait_slice(&l->seq, seq, d, MP__DEATH_SLICE_MS) == MP_ETIMEDOUT) {
            if (side_take_from_dead(l, v, me))
                return MP_EOWNERDEAD;
            if (mp__deadline_passed(d))
                return MP_ETIMEDOUT;
        }
    }
}

/* Takes a side lock: a compare-and-swap when it is free (the whole cost of an
 * uncontended put or get), else a short spin, else sleep (side_lock_slow).
 * nonblocking: fail with MP_ETIMEDOUT instead of waiting, unless the holder is
 * only busy copying (its waiting flag is clear), which ends in a moment. */
static inline int side_lock(struct side_lock *l, _Atomic uint32_t *waiting, const mp__deadline *d,
                            bool nonblocking)
{
    uint64_t me = mp__self_id();
    uint64_t v = 0;
    if (__builtin_expect(atomic_compare_exchange_strong(&l->word, &v, me), 1))
        return 0;
    for (int i = 0; i < SPIN; i++) {
        mp__cpu_relax();
        v = 0;
        if (atomic_load_explicit(&l->word, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong(&l->word, &v, me))
            return 0;
    }
    int r = MP_ETIMEDOUT;
    if (!nonblocking) {
        r = side_lock_slow(l, me, d);
    } else {
        /* A holder that is only copying finishes in a moment; one that sleeps
         * waits for the same thing we would. Bounded, for a holder that is
         * stopped; a dead one is taken over, at the start and at the end. */
        uint64_t give_up = mp__now_ns() + NONBLOCK_GRACE_NS;
        for (bool first = true; r == MP_ETIMEDOUT; first = false) {
            v = 0;
            if (atomic_compare_exchange_strong(&l->word, &v, me)) {
                r = 0;
                break;
            }
            bool last = atomic_load(waiting) || mp__now_ns() > give_up;
            if ((first || last) && side_take_from_dead(l, v, me))
                r = MP_EOWNERDEAD;
            else if (last)
                break;
            else
                sched_yield();
        }
    }
    if (r == MP_EOWNERDEAD) { /* its commits are whole: clear its sleeping flag */
        atomic_store(waiting, 0);
        r = 0;
    }
    return r;
}

/* Gives a side lock back (see struct side_lock), then wakes sleepers on it and,
 * when the holder committed a record or freed one (other_waiting not NULL), the
 * other side's holder if it sleeps for that (Sleeping, at the top of the file):
 * one fence orders both stores before both looks. */
static inline void side_unlock(struct side_lock *l, _Atomic uint32_t *other_waiting,
                               _Atomic uint32_t *other_seq)
{
    atomic_store_explicit(&l->word, 0, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    if (__builtin_expect(atomic_load_explicit(&l->waiting, memory_order_relaxed) != 0, 0) &&
        atomic_exchange(&l->waiting, 0)) {
        atomic_fetch_add(&l->seq, 1);
        mp__futex_wake(&l->seq, INT32_MAX);
    }
    if (other_waiting != NULL && atomic_load_explicit(other_waiting, memory_order_relaxed) &&
        atomic_exchange(other_waiting, 0)) {
        atomic_fetch_add(other_seq, 1);
        mp__futex_wake(other_seq, INT32_MAX);
    }
}

/* Takes a side lock if it is free (recovering it from a dead holder as side_lock
 * does); false when another holds it. */
static bool side_trylock(struct side_lock *l, _Atomic uint32_t *waiting)
{
    uint64_t me = mp__self_id();
    uint64_t v = 0;
    if (atomic_compare_exchange_strong(&l->word, &v, me))
        return true;
    if (!side_take_from_dead(l, v, me))
        return false;
    atomic_store(waiting, 0);
    return true;
}

/* ---- ring copies ---- */

static inline void ring_write(struct shared *s, uint32_t pos, const void *src, size_t n)
{
    uint32_t off = pos & (s->cap - 1);
    size_t first = s->cap - off < n ? s->cap - off : n;
    if (first > 0)
        memcpy(s->ring + off, src, first);
    if (n > first)
        memcpy(s->ring, (const char *)src + first, n - first);
}

static inline void ring_read(const struct shared *s, uint32_t pos, void *dst, size_t n)
{
    uint32_t off = pos & (s->cap - 1);
    size_t first = s->cap - off < n ? s->cap - off : n;
    if (first > 0)
        memcpy(dst, s->ring + off, first);
    if (n > first)
        memcpy((char *)dst + first, s->ring, n - first);
}

static inline uint64_t ring_header(const struct shared *s, uint32_t pos)
{
    uint64_t h;
    memcpy(&h, s->ring + (pos & (s->cap - 1)), sizeof h);
    return h;
}

/* ---- producer side ---- */

static inline bool room_against(const struct shared *s, uint64_t tail, uint64_t head, uint32_t need,
                                bool counts)
{
    if (s->cap - (pos_of(tail) - pos_of(head)) < need)
        return false;
    return !counts || s->maxsize == 0 || cnt_of(tail) - cnt_of(head) < s->maxsize;
}

/* Checks against head_seen first, and reads the shared head only when that is not
 * enough: head only moves forward, so an old value never overstates the room. */
static inline bool has_room(struct shared *s, uint64_t tail, uint32_t need, bool counts)
{
    if (TRUST_SEEN_INDEX && room_against(s, tail, s->head_seen, need, counts))
        return true;
    s->head_seen = atomic_load(&s->head);
    return room_against(s, tail, s->head_seen, need, counts);
}

/* has_room after head_seen said no: reads head. When that shows room but less
 * than a batch beyond need (the ring is nearly full: consumers are the slower
 * side and each put would read head again, taking its cache line from the
 * consumer that writes it at every get), waits a short while (at most the SPIN
 * pauses, never for put_nowait) for a batch of room, so that the next puts
 * need not read head at all. The put goes ahead with the room it has either
 * way: this only spaces the reads of head out. */
static bool room_fresh(struct shared *s, uint64_t tail, uint32_t need, const mp__deadline *d)
{
    s->head_seen = atomic_load(&s->head);
    if (!room_against(s, tail, s->head_seen, need, true))
        return false;
    uint32_t batch = s->cap / 8 < ROOM_BATCH ? s->cap / 8 : ROOM_BATCH;
    if (mp__deadline_is_now(d))
        return true;
    for (int i = 1; i <= SPIN; i++) {
        if (s->cap - (pos_of(tail) - pos_of(s->head_seen)) >= need + batch)
            break;
        mp__cpu_relax();
        if (i % SPIN_STRIDE == 0)
            s->head_seen = atomic_load(&s->head);
    }
    return true;
}

/* Waits (holding put_lock) until `need` ring bytes are free and, when counts, fewer
 * than maxsize messages are queued. */
static int wait_room(struct shared *s, uint64_t tail, uint32_t need, bool counts,
                     const mp__deadline *d)
{
    if (mp__deadline_is_now(d))
        return has_room(s, tail, need, counts) ? 0 : MP_ETIMEDOUT;
    for (int i = 1; i <= SPIN; i++) {
        mp__cpu_relax();
        if (i % SPIN_STRIDE == 0 && has_room(s, tail, need, counts))
            return 0;
    }
    for (int i = 0; i < YIELDS && !mp__deadline_passed(d); i++) {
        if (has_room(s, tail, need, counts))
            return 0;
        sched_yield(); /* may cost a scheduler slice on a busy CPU: see the deadline */
    }
    for (;;) {
        /* seq before the flag, as in side_lock_slow: a consumer that clears the
         * flag bumps seq after, so the wait returns at once. (Flag first, one
         * could clear it and bump seq before we read it while freeing too
         * little: we would sleep with the flag clear, no later get would wake
         * us, and the put would wait out a whole SLEEP_SLICE_MS.) */
        uint32_t seq = atomic_load(&s->space_seq);
        atomic_store(&s->put_waiting, 1);
        fault(MP__QF_ROOM_WAIT_FLAGGED);
        if (has_room(s, tail, need, counts))
            break;
        int rc = sleep_on(&s->space_seq, seq, d);
        if (rc == MP_ETIMEDOUT && !has_room(s, tail, need, counts)) {
            atomic_store(&s->put_waiting, 0);
            return MP_ETIMEDOUT;
        }
    }
    atomic_store(&s->put_waiting, 0);
    return 0;
}

/* The commit of a put; side_unlock then wakes a sleeping consumer. */
static inline void commit_tail(struct shared *s, uint64_t tail)
{
    atomic_store_explicit(&s->tail, tail, memory_order_release);
    fault(MP__QF_PUT_AFTER_COMMIT);
}

/* Appends one record at tail (room already checked) and commits it. */
static inline uint64_t put_record(struct shared *s, uint64_t tail, int kind, uint64_t len,
                                  const void *buf, size_t n)
{
    uint64_t h = (uint64_t)kind << 56 | len;
    ring_write(s, pos_of(tail), &h, HDR);
    ring_write(s, pos_of(tail) + HDR, buf, n);
    fault(MP__QF_PUT_BEFORE_COMMIT);
    tail = word(cnt_of(tail) + 1, pos_of(tail) + HDR + (uint32_t)round8(n));
    commit_tail(s, tail);
    return tail;
}

/* ---- blobs: messages longer than the ring, in blocks of the memfd ---- */

static uint64_t blob_span(uint64_t len)
{
    return (len + BLOB_PAGE - 1) & ~(BLOB_PAGE - 1);
}

/* This process's mapping of the block area [0, span_bytes) of the memfd, made on
 * first use (a child forked later inherits it). NULL when out of memory. */
static char *blob_area(mp_queue *q)
{
    char *m = atomic_load_explicit(&q->blob_map, memory_order_acquire);
    if (m != NULL)
        return m;
    size_t n = (size_t)q->s->blob_span;
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, q->blob_fd, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (!atomic_compare_exchange_strong(&q->blob_map, &m, (char *)p)) {
        munmap(p, n); /* another thread of ours mapped it first */
        return m;
    }
    return p;
}

/* Copies n bytes between buf and the block at position pos (write: into the
 * block), calling the fault hook half way. A block of at most blob_span bytes is
 * in the area at pos modulo blob_span (it may wrap); a longer one fills the file
 * from offset 0 and is mapped for the copy alone. 0 or MP_ENOMEM. */
static int blob_copy(mp_queue *q, bool write, uint64_t pos, void *buf, size_t n, int half_point)
{
    uint64_t span_bytes = q->s->blob_span;
    char *base;
    size_t off, first;
    if (blob_span(n) > span_bytes) {
        base = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, q->blob_fd, 0);
        if (base == MAP_FAILED)
            return MP_ENOMEM;
        off = 0;
        first = n;
    } else {
        base = blob_area(q);
        if (base == NULL)
            return MP_ENOMEM;
        off = (size_t)(pos % span_bytes);
        first = span_bytes - off < n ? (size_t)(span_bytes - off) : n;
    }
    /* Two halves, so that tests can kill us in the middle. */
    size_t half = n / 2, done = 0;
    while (done < n) {
        size_t k = (done < half ? half : n) - done;
        for (size_t left = k; left > 0;) { /* at most the part before the wrap */
            size_t at = done, piece = left;
            char *area = at < first ? base + off + at : base + (at - first);
            if (at < first && piece > first - at)
                piece = first - at;
            if (write)
                memcpy(area, (const char *)buf + at, piece);
            else
                memcpy((char *)buf + at, area, piece);
            done += piece;
            left -= piece;
        }
        if (done == half)
            fault(half_point);
    }
    if (blob_span(n) > span_bytes)
        munmap(base, n);
    return 0;
}

/* The sweep (see the top of the file), under put_lock: the position of the oldest
 * block a record in [head, tail) names, or blob_tail when none does. Those records
 * are ours and stay as they are while we read them. Once the oversized block (if
 * any) is older than that, it is gone: the file shrinks back to the area. */
static uint64_t blob_low(mp_queue *q, uint64_t tail)
{
    struct shared *s = q->s;
    uint64_t head = atomic_load(&s->head);
    uint64_t low = atomic_load_explicit(&s->blob_tail, memory_order_relaxed);
    for (uint32_t p = pos_of(head); p != pos_of(tail);) {
        uint64_t h = ring_header(s, p);
        if ((int)(h >> 56) == KIND_BLOB) {
            ring_read(s, p + HDR, &low, sizeof low);
            break;
        }
        p += HDR + (uint32_t)round8(h & MAX_MSG);
    }
    if (atomic_load_explicit(&s->blob_over, memory_order_relaxed) &&
        (int64_t)(low - atomic_load_explicit(&s->blob_over_pos, memory_order_relaxed)) > 0) {
        if (ftruncate(q->blob_fd, (off_t)s->blob_span) == 0)
            atomic_store(&s->blob_over, 0);
    }
    return low;
}

static bool blob_room(mp_queue *q, uint64_t tail, uint64_t span)
{
    uint64_t used =
        atomic_load_explicit(&q->s->blob_tail, memory_order_relaxed) - blob_low(q, tail);
    return used == 0 || (used <= q->s->blob_span && span <= q->s->blob_span - used);
}

/* Waits (holding put_lock) until a block of span bytes fits beside the live ones:
 * consumers taking blobs make room, and commit_head wakes us as for ring room. */
static int wait_blob_room(mp_queue *q, uint64_t tail, uint64_t span, const mp__deadline *d)
{
    struct shared *s = q->s;
    if (blob_room(q, tail, span))
        return 0;
    if (mp__deadline_is_now(d))
        return MP_ETIMEDOUT;
    for (int i = 0; i < YIELDS && !mp__deadline_passed(d); i++) {
        sched_yield(); /* may cost a scheduler slice on a busy CPU: see the deadline */
        if (blob_room(q, tail, span))
            return 0;
    }
    for (;;) {
        uint32_t seq = atomic_load(&s->space_seq); /* before the flag: see wait_room */
        atomic_store(&s->put_waiting, 1);
        fault(MP__QF_ROOM_WAIT_FLAGGED);
        if (blob_room(q, tail, span))
            break;
        int rc = sleep_on(&s->space_seq, seq, d);
        if (rc == MP_ETIMEDOUT && !blob_room(q, tail, span)) {
            atomic_store(&s->put_waiting, 0);
            return MP_ETIMEDOUT;
        }
    }
    atomic_store(&s->put_waiting, 0);
    return 0;
}

/* A message that does not fit the ring: its bytes into a block, then a BLOB record
 * naming it (holding put_lock). */
static int put_blob(mp_queue *q, uint64_t tail, const void *buf, size_t len, const mp__deadline *d)
{
    struct shared *s = q->s;
    int rc = wait_room(s, tail, BLOB_REC, true, d);
    uint64_t span = blob_span(len);
    if (rc == 0)
        rc = wait_blob_room(q, tail, span, d);
    if (rc != 0)
        return rc;
    uint64_t pos = atomic_load_explicit(&s->blob_tail, memory_order_relaxed);
    if (span > s->blob_span) { /* alone in the queue (blob_room): the file from 0 */
        atomic_store(&s->blob_over_pos, pos);
        atomic_store(&s->blob_over, 1); /* before growing: a death here still shrinks */
        if (span > (uint64_t)INT64_MAX || ftruncate(q->blob_fd, (off_t)span) != 0)
            return MP_ENOMEM; /* the next sweep shrinks what did grow */
    }
    atomic_store(&s->blob_tail, pos + span); /* reserved: a death from here on leaves garbage */
    rc = blob_copy(q, true, pos, (void *)buf, len, MP__QF_BLOB_HALF_WRITTEN);
    if (rc != 0) {
        atomic_store(&s->blob_tail, pos); /* nothing names the block: give it back */
        return rc;
    }
    put_record(s, tail, KIND_BLOB, len, &pos, sizeof pos);
    return 0;
}

static int queue_put(mp_queue *q, const void *buf, size_t len, int timeout_ms)
{
    if (q == NULL || (buf == NULL && len > 0) || (uint64_t)len > MAX_MSG)
        return MP_EINVAL;
    mp__deadline d;
    int rc = mp__deadline_init(&d, timeout_ms);
    if (rc != 0)
        return rc;
    if (atomic_load(&q->closed))
        return MP_ECLOSED;
    struct shared *s = q->s;
    rc = side_lock(&s->put_lock, &s->put_waiting, &d, timeout_ms == 0);
    if (rc != 0)
        return rc == MP_ETIMEDOUT ? MP_EFULL : rc;
    uint64_t tail = atomic_load_explicit(&s->tail, memory_order_relaxed);
    if (len <= s->cap - HDR && HDR + round8(len) <= s->cap) {
        uint32_t need = HDR + (uint32_t)round8(len);
        if (TRUST_SEEN_INDEX && room_against(s, tail, s->head_seen, need, true))
            rc = 0;
        else
            rc = room_fresh(s, tail, need, &d) ? 0 : wait_room(s, tail, need, true, &d);
        if (rc == 0)
            put_record(s, tail, KIND_WHOLE, len, buf, len);
    } else {
        rc = put_blob(q, tail, buf, len, &d);
    }
    side_unlock(&s->put_lock, rc == 0 ? &s->get_waiting : NULL, &s->data_seq);
    return rc == MP_ETIMEDOUT ? MP_EFULL : rc;
}

/* ---- consumer side ---- */

/* Marks one task done unless none is unfinished; wakes joiners at zero. */
static int done_one(struct shared *s)
{
    uint32_t d = atomic_load(&s->ndone);
    do {
        if (cnt_of(atomic_load(&s->tail)) == d)
            return MP_ERANGE;
    } while (!atomic_compare_exchange_weak(&s->ndone, &d, d + 1));
    fault(MP__QF_DONE_BEFORE_WAKE);
    if (cnt_of(atomic_load(&s->tail)) == d + 1 && atomic_load(&s->join_waiters) > 0)
        mp__futex_wake(&s->ndone, INT32_MAX);
    return 0;
}

/* The commit of a get; side_unlock then wakes a sleeping producer. */
static inline void commit_head(struct shared *s, uint64_t head)
{
    atomic_store_explicit(&s->head, head, memory_order_release);
    fault(MP__QF_GET_AFTER_COMMIT);
}

/* Waits (holding get_lock) for a record at head. */
static inline bool has_data(struct shared *s, uint64_t head)
{
    if (TRUST_SEEN_INDEX && pos_of(s->tail_seen) != pos_of(head))
        return true;
    s->tail_seen = atomic_load(&s->tail);
    return pos_of(s->tail_seen) != pos_of(head);
}

static int wait_data(struct shared *s, uint64_t head, const mp__deadline *d)
{
    if (mp__deadline_is_now(d))
        return has_data(s, head) ? 0 : MP_ETIMEDOUT;
    for (int i = 1; i <= SPIN; i++) {
        mp__cpu_relax();
        if (i % SPIN_STRIDE == 0 && has_data(s, head))
            return 0;
    }
    for (int i = 0; i < YIELDS && !mp__deadline_passed(d); i++) {
        if (has_data(s, head))
            return 0;
        sched_yield(); /* may cost a scheduler slice on a busy CPU: see the deadline */
    }
    int rc = 0;
    for (;;) {
        uint32_t seq = atomic_load(&s->data_seq); /* before the flag: see wait_room */
        atomic_store(&s->get_waiting, 1);
        if (has_data(s, head))
            break;
        rc = sleep_on(&s->data_seq, seq, d);
        if (rc == MP_ETIMEDOUT) {
            if (has_data(s, head))
                rc = 0;
            break;
        }
        rc = 0;
    }
    atomic_store(&s->get_waiting, 0);
    return rc;
}

struct dest {
    void *buf;  /* caller's buffer (into) or NULL (allocate) */
    size_t cap; /* caller's buffer size */
    void *out;  /* allocated result */
    size_t len; /* message length */
};

/* Where a message of n bytes goes; MP_ETOOSHORT / MP_ENOMEM leave it in the queue. */
static int dest_prepare(struct dest *dst, uint64_t n)
{
    dst->len = n > SIZE_MAX ? SIZE_MAX : (size_t)n;
    if (dst->buf != NULL || dst->cap > 0)
        return n > dst->cap ? MP_ETOOSHORT : 0;
    if (n > SIZE_MAX - 1)
        return MP_ENOMEM;
    dst->out = malloc(n > 0 ? (size_t)n : 1);
    return dst->out == NULL ? MP_ENOMEM : 0;
}

static char *dest_bytes(struct dest *dst)
{
    return dst->out != NULL ? dst->out : dst->buf;
}

static void dest_drop(struct dest *dst)
{
    free(dst->out);
    dst->out = NULL;
}

static int queue_get(mp_queue *q, struct dest *dst, int timeout_ms)
{
    mp__deadline d;
    int rc = mp__deadline_init(&d, timeout_ms);
    if (rc != 0)
        return rc;
    if (atomic_load(&q->closed))
        return MP_ECLOSED;
    struct shared *s = q->s;
    rc = side_lock(&s->get_lock, &s->get_waiting, &d, timeout_ms == 0);
    if (rc != 0)
        return rc == MP_ETIMEDOUT ? MP_EEMPTY : rc;
    uint64_t head = atomic_load_explicit(&s->head, memory_order_relaxed);
    bool oversized = false; /* took a block longer than the area: shrink the file */
    rc = has_data(s, head) ? 0 : wait_data(s, head, &d);
    if (rc == 0) {
        uint64_t h = ring_header(s, pos_of(head));
        uint64_t len = h & MAX_MSG;
        rc = dest_prepare(dst, len);
        if (rc == 0 && (int)(h >> 56) == KIND_WHOLE) {
            ring_read(s, pos_of(head) + HDR, dest_bytes(dst), (size_t)len);
            fault(MP__QF_GET_BEFORE_COMMIT);
            commit_head(s, word(cnt_of(head) + 1, pos_of(head) + HDR + (uint32_t)round8(len)));
        } else if (rc == 0) { /* KIND_BLOB: the block stays whole until head moves */
            uint64_t pos;
            ring_read(s, pos_of(head) + HDR, &pos, sizeof pos);
            rc = blob_copy(q, false, pos, dest_bytes(dst), (size_t)len, MP__QF_GET_BLOB_HALF_READ);
            if (rc == 0) {
                fault(MP__QF_GET_BEFORE_COMMIT);
                commit_head(s, word(cnt_of(head) + 1, pos_of(head) + BLOB_REC));
                oversized = blob_span(len) > s->blob_span;
            }
        }
    }
    side_unlock(&s->get_lock, rc == 0 ? &s->put_waiting : NULL, &s->space_seq);
    if (oversized) { /* give its memory back now if no producer is busy; else the next will */
        fault(MP__QF_GET_BLOB_TAKEN);
        if (side_trylock(&s->put_lock, &s->put_waiting)) {
            blob_low(q, atomic_load(&s->tail));
            side_unlock(&s->put_lock, NULL, NULL);
        }
    }
    if (rc == MP_ETIMEDOUT)
        rc = MP_EEMPTY;
    if (rc != 0 && rc != MP_ETOOSHORT)
        dest_drop(dst);
    return rc;
}

static int queue_get_alloc(mp_queue *q, void **out, size_t *len, int timeout_ms)
{
    if (q == NULL || out == NULL || len == NULL)
        return MP_EINVAL;
    struct dest dst = {0};
    int rc = queue_get(q, &dst, timeout_ms);
    if (rc == 0) {
        *out = dst.out;
        *len = dst.len;
    }
    return rc;
}

static int queue_get_into(mp_queue *q, void *buf, size_t cap, size_t *len, int timeout_ms)
{
    if (q == NULL || len == NULL || (buf == NULL && cap > 0))
        return MP_EINVAL;
    /* A zero-sized buffer still means "into": mark it with cap and a dummy. */
    char dummy;
    struct dest dst = {.buf = buf != NULL ? buf : &dummy, .cap = cap};
    int rc = queue_get(q, &dst, timeout_ms);
    if (rc == 0 || rc == MP_ETOOSHORT)
        *len = dst.len;
    return rc;
}

/* head and tail as they were at one instant: tail read between two equal reads of
 * head. Reading head once, then tail, can pair an old head with a tail many puts
 * later (qsize above maxsize); after a few tries under heavy traffic it settles for
 * that, still never below zero since head is read before tail. */
static void snapshot(struct shared *s, uint64_t *head, uint64_t *tail)
{
    uint64_t h = atomic_load(&s->head);
    uint64_t t = atomic_load(&s->tail);
    for (int i = 0; i < 64; i++) {
        uint64_t again = atomic_load(&s->head);
        if (again == h)
            break;
        h = again;
        t = atomic_load(&s->tail);
    }
    *head = h;
    *tail = t;
}

static int queue_qsize(mp_queue *q)
{
    if (q == NULL)
        return MP_EINVAL;
    if (atomic_load(&q->closed))
        return MP_ECLOSED;
    uint64_t head, tail;
    snapshot(q->s, &head, &tail);
    uint32_t n = cnt_of(tail) - cnt_of(head);
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

static bool queue_empty(mp_queue *q)
{
    return q != NULL && queue_qsize(q) == 0;
}

static bool queue_full(mp_queue *q)
{
    if (q == NULL)
        return false;
    struct shared *s = q->s;
    uint64_t head, tail;
    snapshot(s, &head, &tail);
    if (s->cap - (pos_of(tail) - pos_of(head)) < HDR)
        return true;
    return s->maxsize != 0 && cnt_of(tail) - cnt_of(head) >= s->maxsize;
}

static int queue_close(mp_queue *q)
{
    if (q == NULL)
        return MP_EINVAL;
    atomic_store(&q->closed, true);
    return 0;
}

void mp__queue_skew(mp_queue *q, uint32_t cnt, uint32_t pos)
{
    struct shared *s = q->s;
    assert(pos % 8 == 0 && atomic_load(&s->head) == atomic_load(&s->tail));
    atomic_store(&s->head, word(cnt, pos));
    atomic_store(&s->tail, word(cnt, pos));
    s->head_seen = s->tail_seen = word(cnt, pos);
    atomic_store(&s->ndone, cnt);
}

uint64_t mp__queue_blob_bytes(mp_queue *q)
{
    struct stat st;
    return fstat(q->blob_fd, &st) == 0 ? (uint64_t)st.st_blocks * 512 : UINT64_MAX;
}

/* ---- Queue ---- */

int mp_queue_new(mp_queue **out, size_t maxsize, const mp_queue_options *opt)
{
    return queue_create(out, Q_QUEUE, maxsize, opt);
}

int mp_queue_put(mp_queue *q, const void *buf, size_t len, int timeout_ms)
{
    return queue_put(q, buf, len, timeout_ms);
}

int mp_queue_put_nowait(mp_queue *q, const void *buf, size_t len)
{
    return queue_put(q, buf, len, 0);
}

int mp_queue_get(mp_queue *q, void **out, size_t *len, int timeout_ms)
{
    return queue_get_alloc(q, out, len, timeout_ms);
}

int mp_queue_get_into(mp_queue *q, void *buf, size_t cap, size_t *len, int timeout_ms)
{
    return queue_get_into(q, buf, cap, len, timeout_ms);
}

int mp_queue_get_nowait(mp_queue *q, void **out, size_t *len)
{
    return queue_get_alloc(q, out, len, 0);
}
int mp_queue_qsize(mp_queue *q)
{
    return queue_qsize(q);
}
bool mp_queue_empty(mp_queue *q)
{
    return queue_empty(q);
}
bool mp_queue_full(mp_queue *q)
{
    return queue_full(q);
}
int mp_queue_close(mp_queue *q)
{
    return queue_close(q);
}
void mp_queue_destroy(mp_queue *q)
{
    queue_destroy(q);
}

/* ---- SimpleQueue ---- */

int mp_simple_queue_new(mp_simple_queue **out, const mp_queue_options *opt)
{
    if (out == NULL)
        return MP_EINVAL;
    mp_queue *q;
    int rc = queue_create(&q, Q_SIMPLE, 0, opt);
    if (rc == 0)
        *out = (mp_simple_queue *)q;
    return rc;
}

int mp_simple_queue_put(mp_simple_queue *q, const void *buf, size_t len)
{
    return queue_put(q != NULL ? &q->q : NULL, buf, len, -1);
}

int mp_simple_queue_get(mp_simple_queue *q, void **out, size_t *len)
{
    return queue_get_alloc(q != NULL ? &q->q : NULL, out, len, -1);
}

bool mp_simple_queue_empty(mp_simple_queue *q)
{
    return q != NULL && queue_empty(&q->q);
}
int mp_simple_queue_close(mp_simple_queue *q)
{
    return queue_close(q != NULL ? &q->q : NULL);
}
void mp_simple_queue_destroy(mp_simple_queue *q)
{
    queue_destroy(q != NULL ? &q->q : NULL);
}

/* ---- JoinableQueue ---- */

#define JQ(q) ((q) != NULL ? &(q)->q : NULL)

int mp_joinable_queue_new(mp_joinable_queue **out, size_t maxsize, const mp_queue_options *opt)
{
    if (out == NULL)
        return MP_EINVAL;
    mp_queue *q;
    int rc = queue_create(&q, Q_JOINABLE, maxsize, opt);
    if (rc == 0)
        *out = (mp_joinable_queue *)q;
    return rc;
}

int mp_joinable_queue_put(mp_joinable_queue *q, const void *buf, size_t len, int timeout_ms)
{
    return queue_put(JQ(q), buf, len, timeout_ms);
}

int mp_joinable_queue_put_nowait(mp_joinable_queue *q, const void *buf, size_t len)
{
    return queue_put(JQ(q), buf, len, 0);
}

int mp_joinable_queue_get(mp_joinable_queue *q, void **out, size_t *len, int timeout_ms)
{
    return queue_get_alloc(JQ(q), out, len, timeout_ms);
}

int mp_joinable_queue_get_into(mp_joinable_queue *q, void *buf, size_t cap, size_t *len,
                               int timeout_ms)
{
    return queue_get_into(JQ(q), buf, cap, len, timeout_ms);
}

int mp_joinable_queue_get_nowait(mp_joinable_queue *q, void **out, size_t *len)
{
    return queue_get_alloc(JQ(q), out, len, 0);
}

int mp_joinable_queue_qsize(mp_joinable_queue *q)
{
    return queue_qsize(JQ(q));
}
bool mp_joinable_queue_empty(mp_joinable_queue *q)
{
    return queue_empty(JQ(q));
}
bool mp_joinable_queue_full(mp_joinable_queue *q)
{
    return queue_full(JQ(q));
}
int mp_joinable_queue_close(mp_joinable_queue *q)
{
    return queue_close(JQ(q));
}
void mp_joinable_queue_destroy(mp_joinable_queue *q)
{
    queue_destroy(JQ(q));
}

int mp_joinable_queue_task_done(mp_joinable_queue *q)
{
    if (q == NULL)
        return MP_EINVAL;
    if (atomic_load(&q->q.closed))
        return MP_ECLOSED;
    return done_one(q->q.s);
}

int mp_joinable_queue_join(mp_joinable_queue *q, int timeout_ms)
{
    if (q == NULL)
        return MP_EINVAL;
    mp__deadline d;
    int rc = mp__deadline_init(&d, timeout_ms);
    if (rc != 0)
        return rc;
    if (atomic_load(&q->q.closed))
        return MP_ECLOSED;
    struct shared *s = q->q.s;
    atomic_fetch_add(&s->join_waiters, 1);
    for (;;) {
        uint32_t done = atomic_load(&s->ndone);
        if (cnt_of(atomic_load(&s->tail)) == done) {
            rc = 0;
            break;
        }
        rc = sleep_on(&s->ndone, done, &d);
        if (rc == MP_ETIMEDOUT) {
            if (cnt_of(atomic_load(&s->tail)) == atomic_load(&s->ndone))
                rc = 0;
            break;
        }
    }
    atomic_fetch_sub(&s->join_waiters, 1);
    return rc;
}
