/* mproc.h — Python's multiprocessing and subprocess for C on Linux.
 * Includes every public header; each one documents its own functions. */
#ifndef MPROC_H
#define MPROC_H

#include "mproc/connection.h"
#include "mproc/error.h"
#include "mproc/listener.h"
#include "mproc/manager.h"
#include "mproc/object.h"
#include "mproc/object_io.h"
#include "mproc/pickle.h"
#include "mproc/pool.h"
#include "mproc/process.h"
#include "mproc/queue.h"
#include "mproc/shared.h"
#include "mproc/shlex.h"
#include "mproc/subprocess.h"
#include "mproc/sync.h"
#include "mproc/sync_manager.h"
#include "mproc/timeout.h"
#include "mproc/version.h"

#endif /* MPROC_H */
