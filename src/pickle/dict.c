/* dict.c — dict, set and frozenset: one insertion-ordered hash table.
 *
 * entries[0, used) hold (hash, key, value) in insertion order; a deleted entry has
 * key NULL and stays until the next resize. index has 1 << bits slots of entry
 * numbers (EMPTY, DUMMY after a delete), probed linearly from a Fibonacci-mixed
 * hash, and is kept at most 2/3 full counting DUMMY slots, so every probe sequence
 * ends at an EMPTY slot. Lookups are O(1) on average whatever the size. */
#include <stdlib.h>
#include <string.h>

#include "mproc/error.h"
#include "pickle/obj.h"

#define EMPTY 0xffffffffu
#define DUMMY 0xfffffffeu
#define MAX_ENTRIES 0xfffffff0u

static inline size_t slot_of(int64_t hash, uint8_t bits)
{
    return (size_t)(((uint64_t)hash * 0x9e3779b97f4a7c15ull) >> (64 - bits));
}

mp_obj *mp__table_new(mp_obj_kind kind, size_t hint)
{
    mp__table *t = (mp__table *)mp__alloc(sizeof *t, kind);
    if (t == NULL)
        return NULL;
    t->used = t->live = t->cap = 0;
    t->entries = NULL;
    t->index = NULL;
    t->bits = 0;
    if (hint > 0 && hint < MAX_ENTRIES) {
        t->entries = malloc(hint * sizeof *t->entries);
        if (t->entries != NULL)
            t->cap = hint;
    }
    return &t->h;
}

mp_obj *mp_dict_new(void)
{
    return mp__table_new(MP_OBJ_DICT, 0);
}
mp_obj *mp_set_new(void)
{
    return mp__table_new(MP_OBJ_SET, 0);
}
mp_obj *mp_frozenset_new(void)
{
    return mp__table_new(MP_OBJ_FROZENSET, 0);
}

static bool is_table(const mp_obj *o)
{
    if (o == NULL)
        return false;
    mp_obj_kind k = mp__kind(o);
    return k == MP_OBJ_DICT || k == MP_OBJ_SET || k == MP_OBJ_FROZENSET;
}

/* The entry number holding key, or -1; *slot gets the index slot that holds it, or
 * the first reusable slot on its probe sequence when absent. */
static int64_t find(const mp__table *t, const mp_obj *key, int64_t hash, size_t *slot)
{
    if (t->bits == 0) {
        *slot = 0;
        return -1;
    }
    size_t mask = ((size_t)1 << t->bits) - 1;
    size_t i = slot_of(hash, t->bits);
    size_t reuse = SIZE_MAX;
    for (;;) {
        uint32_t e = t->index[i];
        if (e == EMPTY) {
            *slot = reuse != SIZE_MAX ? reuse : i;
            return -1;
        }
        if (e == DUMMY) {
            if (reuse == SIZE_MAX)
                reuse = i;
        } else {
            const mp__entry *en = &t->entries[e];
            if (en->hash == hash && (en->key == key || mp_obj_equal(en->key, key))) {
                *slot = i;
                return e;
            }
        }
        i = (i + 1) & mask;
    }
}

/* Rebuilds the index for at least need live entries, compacting deleted entries. */
static int rebuild(mp__table *t, size_t need)
{
    uint8_t bits = 3;
    while (((size_t)1 << bits) * 2 < need * 3 + 3)
        bits++;
    uint32_t *index = malloc(((size_t)1 << bits) * sizeof *index);
    if (index == NULL)
        return MP_ENOMEM;
    memset(index, 0xff, ((size_t)1 << bits) * sizeof *index);
    if (t->live != t->used) {
        size_t j = 0;
        for (size_t i = 0; i < t->used; i++)
            if (t->entries[i].key != NULL)
                t->entries[j++] = t->entries[i];
        t->used = j;
    }
    size_t mask = ((size_t)1 << bits) - 1;
    for (size_t e = 0; e < t->used; e++) {
        size_t i = slot_of(t->entries[e].hash, bits);
        while (index[i] != EMPTY)
            i = (i + 1) & mask;
        index[i] = (uint32_t)e;
    }
    free(t->index);
    t->index = index;
    t->bits = bits;
    return 0;
}

/* Takes key and value (value NULL for sets). */
static int table_insert(mp__table *t, mp_obj *key, mp_obj *value, int64_t hash)
{
    size_t slot;
    int64_t e = find(t, key, hash, &slot);
    if (e >= 0) {
        mp__entry *en = &t->entries[e];
        if (value != NULL) {
            mp_obj *old = en->value;
            en->value = value;
            mp_obj_unref(old);
        }
        mp_obj_unref(key);
        return 0;
    }
    int rc = 0;
    if (t->used >= MAX_ENTRIES) {
        rc = MP_ENOMEM;
        goto out_drop;
    }
    if (t->used == t->cap) {
        size_t cap = t->cap < 8 ? 8 : t->cap * 2;
        mp__entry *en = realloc(t->entries, cap * sizeof *en);
        if (en == NULL) {
            rc = MP_ENOMEM;
            goto out_drop;
        }
        t->entries = en;
        t->cap = cap;
    }
    /* Count DUMMY slots as used so the index never fills up. */
    size_t slots = t->bits ? (size_t)1 << t->bits : 0;
    if ((t->used + 1) * 3 > slots * 2) {
        rc = rebuild(t, t->live + 1);
        if (rc < 0)
            goto out_drop;
        find(t, key, hash, &slot);
    }
    t->entries[t->used] = (mp__entry){.hash = hash, .key = key, .value = value};
    t->index[slot] = (uint32_t)t->used;
    t->used++;
    t->live++;
    uint32_t d = 0;
    if (!mp__is_tagged(key))
        d = key->depth;
    if (value != NULL && !mp__is_tagged(value) && value->depth > d)
        d = value->depth;
    if (d >= t->h.depth)
        t->h.depth = mp__sat16(d + 1);
    return 0;
out_drop:
    mp_obj_unref(key);
    mp_obj_unref(value);
    return rc;
}

int mp__table_set(mp_obj *o, mp_obj *key, mp_obj *value)
{
    int64_t hash;
    int rc = mp__hash(key, &hash, 0);
    if (rc < 0) {
        mp_obj_unref(key);
        mp_obj_unref(value);
        return rc;
    }
    return table_insert((mp__table *)o, key, value, hash);
}

int mp_dict_set(mp_obj *d, mp_obj *key, mp_obj *value)
{
    int rc = 0;
    if (d == NULL || key == d || value == d)
        rc = MP_EINVAL;
    else if (key == NULL || value == NULL)
        rc = MP_ENOMEM;
    else if (mp__kind(d) != MP_OBJ_DICT)
        rc = MP_ETYPE;
    if (rc < 0) {
        if (key != d)
            mp_obj_unref(key);
        if (value != d)
            mp_obj_unref(value);
        return rc;
    }
    return mp__table_set(d, key, value);
}

int mp_dict_set_str(mp_obj *d, const char *key, mp_obj *value)
{
    if (key == NULL) {
        if (value != d)
            mp_obj_unref(value);
        return MP_EINVAL;
    }
    mp_obj *k = mp_str_c(key);
    if (k == NULL) {
        if (value != d)
            mp_obj_unref(value);
        return MP_ENOMEM;
    }
    return mp_dict_set(d, k, value);
}

int mp_dict_set_ref(mp_obj *d, const mp_obj *key, const mp_obj *value)
{
    if (d == NULL || key == NULL || value == NULL || key == d || value == d)
        return MP_EINVAL;
    return mp_dict_set(d, mp_obj_ref(key), mp_obj_ref(value));
}

static const mp__entry *lookup(const mp_obj *t, const mp_obj *key)
{
    if (!is_table(t) || key == NULL)
        return NULL;
    int64_t hash;
    if (mp__hash(key, &hash, 0) < 0)
        return NULL;
    size_t slot;
    int64_t e = find((const mp__table *)t, key, hash, &slot);
    return e >= 0 ? &((const mp__table *)t)->entries[e] : NULL;
}

mp_obj *mp_dict_get(const mp_obj *d, const mp_obj *key)
{
    if (d == NULL || mp__kind(d) != MP_OBJ_DICT)
        return NULL;
    const mp__entry *e = lookup(d, key);
    return e ? e->value : NULL;
}

mp_obj *mp_dict_get_str(const mp_obj *d, const char *key)
{
    if (d == NULL || key == NULL || mp__kind(d) != MP_OBJ_DICT)
        return NULL;
    /* A str key on the stack: same layout as a heap str, never referenced. */
    size_t n = strlen(key);
    union {
        mp__bytes b;
        char space[sizeof(mp__bytes) + 64];
    } u;
    mp__bytes *k = n < 63 ? &u.b : malloc(sizeof *k + n + 1);
    if (k == NULL)
        return NULL;
    k->h = (mp_obj){.refs = 1, .kind = MP_OBJ_STR, .flags = MP__IMMORTAL};
    k->len = n;
    k->hash = -1;
    memcpy(k->data, key, n + 1);
    mp_obj *r = NULL;
    if (mp__utf8_valid((const unsigned char *)key, n))
        r = mp_dict_get(d, &k->h);
    if (k != &u.b)
        free(k);
    return r;
}

int mp_dict_del(mp_obj *d, const mp_obj *key)
{
    if (d == NULL || key == NULL)
        return MP_EINVAL;
    if (mp__kind(d) != MP_OBJ_DICT)
        return MP_ETYPE;
    int64_t hash;
    int rc = mp__hash(key, &hash, 0);
    if (rc < 0)
        return rc;
    mp__table *t = (mp__table *)d;
    size_t slot;
    int64_t e = find(t, key, hash, &slot);
    if (e < 0)
        return MP_ENOENT;
    mp__entry *en = &t->entries[e];
    mp_obj *k = en->key, *v = en->value;
    en->key = en->value = NULL;
    t->index[slot] = DUMMY;
    t->live--;
    mp_obj_unref(k);
    mp_obj_unref(v);
    return 0;
}

bool mp_dict_next(const mp_obj *d, size_t *iter, mp_obj **key, mp_obj **value)
{
    if (d == NULL || iter == NULL || mp__kind(d) != MP_OBJ_DICT)
        return false;
    const mp__table *t = (const mp__table *)d;
    while (*iter < t->used) {
        const mp__entry *e = &t->entries[(*iter)++];
        if (e->key != NULL) {
            if (key)
                *key = e->key;
            if (value)
                *value = e->value;
            return true;
        }
    }
    return false;
}

int mp_set_add(mp_obj *s, mp_obj *item)
{
    int rc = 0;
    if (s == NULL || item == s)
        rc = MP_EINVAL;
    else if (item == NULL)
        rc = MP_ENOMEM;
    else if (mp__kind(s) != MP_OBJ_SET && mp__kind(s) != MP_OBJ_FROZENSET)
        rc = MP_ETYPE;
    if (rc < 0) {
        if (item != s)
            mp_obj_unref(item);
        return rc;
    }
    return mp__table_set(s, item, NULL);
}

bool mp_set_contains(const mp_obj *s, const mp_obj *item)
{
    if (s == NULL || (mp__kind(s) != MP_OBJ_SET && mp__kind(s) != MP_OBJ_FROZENSET))
        return false;
    return lookup(s, item) != NULL;
}

bool mp_set_next(const mp_obj *s, size_t *iter, mp_obj **item)
{
    if (s == NULL || iter == NULL || (mp__kind(s) != MP_OBJ_SET && mp__kind(s) != MP_OBJ_FROZENSET))
        return false;
    const mp__table *t = (const mp__table *)s;
    while (*iter < t->used) {
        const mp__entry *e = &t->entries[(*iter)++];
        if (e->key != NULL) {
            if (item)
                *item = e->key;
            return true;
        }
    }
    return false;
}
