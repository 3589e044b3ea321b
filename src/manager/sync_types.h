/* manager/sync_types.h — the served types of the SyncManager (sync_locks.c,
 * sync_containers.c), registered by mp_sync_manager_register (sync_manager.c). */
#ifndef MPROC_MANAGER_SYNC_TYPES_H
#define MPROC_MANAGER_SYNC_TYPES_H

#include "core/util.h"
#include "mproc/manager.h"

MP__HIDDEN extern const mp_manager_type mp__sm_lock_type;
MP__HIDDEN extern const mp_manager_type mp__sm_rlock_type;
MP__HIDDEN extern const mp_manager_type mp__sm_semaphore_type;
MP__HIDDEN extern const mp_manager_type mp__sm_bounded_semaphore_type;
MP__HIDDEN extern const mp_manager_type mp__sm_condition_type;
MP__HIDDEN extern const mp_manager_type mp__sm_event_type;
MP__HIDDEN extern const mp_manager_type mp__sm_barrier_type;
MP__HIDDEN extern const mp_manager_type mp__sm_value_type;
MP__HIDDEN extern const mp_manager_type mp__sm_array_type;
MP__HIDDEN extern const mp_manager_type mp__sm_dict_type;
MP__HIDDEN extern const mp_manager_type mp__sm_list_type;
MP__HIDDEN extern const mp_manager_type mp__sm_namespace_type;
MP__HIDDEN extern const mp_manager_type mp__sm_iterator_type;

#endif
