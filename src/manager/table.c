/* table.c — the server's object table: ident -> (object, exposed names, refcount),
 * as CPython's id_to_obj and id_to_refcount (a hash index, so a request costs the
 * same with ten thousand objects served as with one), plus the references each persistent
 * channel owns, so that a channel that closes gives its references back.
 *
 * Every function here runs with the table's lock held by the caller (server.c's
 * server lock); objects leave the table through mp__mgr_table_drop, which returns
 * the object so the caller unrefs it after unlocking (a type's destroy may block). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager/table.h"

static size_t ident_hash(const char *ident)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (; *ident; ident++)
        h = (h ^ (unsigned char)*ident) * 1099511628211u;
    return (size_t)(h ^ (h >> 29));
}

/* The slot of ident in the index, or the empty slot where it would go. */
static size_t slot_of(const mp__mgr_table *t, const char *ident)
{
    size_t mask = t->nslots - 1, i = ident_hash(ident) & mask;
    while (t->index[i] != 0 && strcmp(t->entries[t->index[i] - 1].ident, ident) != 0)
        i = (i + 1) & mask;
    return i;
}

/* Makes the index twice cap's size and rehashes every entry into it. */
static int reindex(mp__mgr_table *t)
{
    size_t nslots = 32;
    while (nslots < 2 * t->cap)
        nslots *= 2;
    uint32_t *index = calloc(nslots, sizeof *index);
    if (index == NULL)
        return MP_ENOMEM;
    free(t->index);
    t->index = index;
    t->nslots = nslots;
    for (size_t e = 0; e < t->n; e++)
        t->index[slot_of(t, t->entries[e].ident)] = (uint32_t)(e + 1);
    return 0;
}

/* Empties slot i, then moves later entries of its probe run back over the hole
 * (backward-shift deletion: the index keeps no tombstones). */
static void unindex_slot(mp__mgr_table *t, size_t i)
{
    size_t mask = t->nslots - 1;
    t->index[i] = 0;
    for (size_t j = (i + 1) & mask; t->index[j] != 0; j = (j + 1) & mask) {
        size_t home = ident_hash(t->entries[t->index[j] - 1].ident) & mask;
        /* The entry at j may fill the hole at i unless its home lies in (i, j]. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            t->index[i] = t->index[j];
            t->index[j] = 0;
            i = j;
        }
    }
}

mp__mgr_entry *mp__mgr_table_find(mp__mgr_table *t, const char *ident)
{
    if (ident == NULL || t->n == 0)
        return NULL;
    uint32_t e = t->index[slot_of(t, ident)];
    return e != 0 ? &t->entries[e - 1] : NULL;
}

int mp__mgr_table_add(mp__mgr_table *t, mp_served *obj, mp_obj *exposed, mp__mgr_entry **out)
{
    char ident[32];
    snprintf(ident, sizeof ident, "%jx", (uintmax_t)(uintptr_t)obj);
    mp__mgr_entry *e = mp__mgr_table_find(t, ident);
    if (e != NULL) {
        /* The same object again (a callable returning a shared queue): as CPython,
         * one entry whose exposed list is the latest. */
        mp_obj_unref(e->exposed);
        e->exposed = exposed;
        *out = e;
        return 0;
    }
    if (t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 16;
        mp__mgr_entry *ne = realloc(t->entries, ncap * sizeof *ne);
        if (ne == NULL) {
            mp_obj_unref(exposed);
            return MP_ENOMEM;
        }
        t->entries = ne;
        t->cap = ncap;
        if (reindex(t) < 0) {
            mp_obj_unref(exposed);
            return MP_ENOMEM;
        }
    }
    e = &t->entries[t->n++];
    memset(e, 0, sizeof *e);
    memcpy(e->ident, ident, sizeof ident);
    e->obj = mp_served_ref(obj);
    e->exposed = exposed;
    e->refcount = 0;
    t->index[slot_of(t, ident)] = (uint32_t)t->n;
    *out = e;
    return 0;
}

mp_served *mp__mgr_table_drop(mp__mgr_table *t, mp__mgr_entry *e)
{
    mp_served *obj = e->obj;
    mp_obj_unref(e->exposed);
    size_t i = (size_t)(e - t->entries);
    unindex_slot(t, slot_of(t, e->ident));
    if (i != t->n - 1) {
        /* The last entry moves into the gap: its slot now names position i. */
        t->index[slot_of(t, t->entries[t->n - 1].ident)] = (uint32_t)(i + 1);
        t->entries[i] = t->entries[t->n - 1];
    }
    t->n--;
    return obj;
}

void mp__mgr_table_clear(mp__mgr_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        mp_obj_unref(t->entries[i].exposed);
        mp_served_unref(t->entries[i].obj);
    }
    free(t->entries);
    free(t->index);
    memset(t, 0, sizeof *t);
}

int mp__mgr_owned_add(mp__mgr_conn *c, const char *ident, long delta)
{
    for (size_t i = 0; i < c->nowned; i++) {
        if (strcmp(c->owned[i].ident, ident) == 0) {
            c->owned[i].count += delta;
            if (c->owned[i].count <= 0) {
                free(c->owned[i].ident);
                c->owned[i] = c->owned[--c->nowned];
            }
            return 0;
        }
    }
    if (delta <= 0)
        return 0;
    if (c->nowned == c->capowned) {
        size_t ncap = c->capowned ? c->capowned * 2 : 8;
        mp__mgr_owned *no = realloc(c->owned, ncap * sizeof *no);
        if (no == NULL)
            return MP_ENOMEM;
        c->owned = no;
        c->capowned = ncap;
    }
    char *id = strdup(ident);
    if (id == NULL)
        return MP_ENOMEM;
    c->owned[c->nowned].ident = id;
    c->owned[c->nowned].count = delta;
    c->nowned++;
    return 0;
}
