/* queue/conn.h — what mp_wait and the tests need from connection.c. */
#ifndef MPROC_INTERNAL_CONN_H
#define MPROC_INTERNAL_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "mproc/connection.h"

/* The largest frame header: -1 then a 64-bit length. */
#define MP__FRAME_HEADER_MAX 12

/* Writes CPython's frame header for a payload of len bytes into out and returns
 * its length: 4 bytes (big-endian int32) up to 0x7fffffff, else 12 (-1, then a
 * big-endian uint64). */
MP__HIDDEN size_t mp__frame_header(uint64_t len, unsigned char out[MP__FRAME_HEADER_MAX]);

/* True when c holds received bytes (or a known message header) that its
 * descriptor no longer shows, so a receive would not block. */
MP__HIDDEN bool mp__conn_has_buffered(const mp_conn *c);

#endif /* MPROC_INTERNAL_CONN_H */
