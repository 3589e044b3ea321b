/* manager/table.h — the server's object table (table.c). */
#ifndef MPROC_INTERNAL_MGR_TABLE_H
#define MPROC_INTERNAL_MGR_TABLE_H

#include "manager/mgr.h"

typedef struct mp__mgr_entry {
    char ident[32];  /* '%x' of the served object's address, as CPython's id() */
    mp_served *obj;  /* one reference */
    mp_obj *exposed; /* tuple of str, owned */
    long refcount;   /* CPython's id_to_refcount */
} mp__mgr_entry;

/* entries is dense (n of cap used, in no order); index is an open-addressing hash
 * of the idents with linear probing, nslots a power of two at least twice cap:
 * each slot holds 0 (empty) or 1 + the position of an entry, and every entry has
 * exactly one slot, reached from its ident's hash without crossing an empty one. */
typedef struct mp__mgr_table {
    mp__mgr_entry *entries;
    size_t n, cap;
    uint32_t *index;
    size_t nslots;
} mp__mgr_table;

/* The entry for ident, or NULL. Pointers stay valid until the next add or drop. */
MP__HIDDEN mp__mgr_entry *mp__mgr_table_find(mp__mgr_table *t, const char *ident);

/* The entry of obj, made with refcount 0 when obj is new; takes exposed. */
MP__HIDDEN int mp__mgr_table_add(mp__mgr_table *t, mp_served *obj, mp_obj *exposed,
                                 mp__mgr_entry **out);

/* Removes e and returns its object reference, for the caller to unref unlocked. */
MP__HIDDEN mp_served *mp__mgr_table_drop(mp__mgr_table *t, mp__mgr_entry *e);

/* Drops every entry (at server exit). */
MP__HIDDEN void mp__mgr_table_clear(mp__mgr_table *t);

/* Adds delta (positive or negative) to the references channel c owns of ident;
 * an owned count that reaches 0 is forgotten. Errors: MP_ENOMEM. */
MP__HIDDEN int mp__mgr_owned_add(mp__mgr_conn *c, const char *ident, long delta);

#endif /* MPROC_INTERNAL_MGR_TABLE_H */
