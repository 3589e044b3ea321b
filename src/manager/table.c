/* table.c — the server's object table: ident -> (object, exposed names, refcount),
 * as CPython's id_to_obj and id_to_refcount, plus the references each persistent
 * channel owns, so that a channel that closes gives its references back.
 *
 * Every function here runs with the table's lock held by the caller (server.c's
 * server lock); objects leave the table through mp__mgr_table_drop, which returns
 * the object so the caller unrefs it after unlocking (a type's destroy may block). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager/table.h"

mp__mgr_entry *mp__mgr_table_find(mp__mgr_table *t, const char *ident)
{
    if (ident == NULL)
        return NULL;
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->entries[i].ident, ident) == 0)
            return &t->entries[i];
    return NULL;
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
    }
    e = &t->entries[t->n++];
    memset(e, 0, sizeof *e);
    memcpy(e->ident, ident, sizeof ident);
    e->obj = mp_served_ref(obj);
    e->exposed = exposed;
    e->refcount = 0;
    *out = e;
    return 0;
}

mp_served *mp__mgr_table_drop(mp__mgr_table *t, mp__mgr_entry *e)
{
    mp_served *obj = e->obj;
    mp_obj_unref(e->exposed);
    size_t i = (size_t)(e - t->entries);
    t->entries[i] = t->entries[--t->n];
    return obj;
}

void mp__mgr_table_clear(mp__mgr_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        mp_obj_unref(t->entries[i].exposed);
        mp_served_unref(t->entries[i].obj);
    }
    free(t->entries);
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
