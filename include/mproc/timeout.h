/* mproc/timeout.h — the one rule for timeouts, in milliseconds.
 *
 * A timeout_ms argument of a function: -1 waits forever, 0 does not block (it
 * only checks, and fails with the function's timeout code when it would have to
 * wait), n > 0 waits up to n ms. Anything below -1 is MP_EINVAL.
 *
 * A *_timeout_ms field of an options struct: 0, the zero value, is the default:
 * Python's where Python has the option (timeout=None, no limit, for
 * mp_run_options.timeout_ms and mp_barrier_options.timeout_ms), else the default
 * deadline the header names (mp_listener_options, mp_client_options,
 * mp_auth_options: MP_HANDSHAKE_TIMEOUT_DEFAULT_MS, MP_CONNECT_TIMEOUT_DEFAULT_MS);
 * -1 is no limit; n > 0 is n ms; MP_TIMEOUT_NOW is an immediate timeout (Python's
 * timeout=0). Anything else below -1 is MP_EINVAL.
 */
#ifndef MPROC_TIMEOUT_H
#define MPROC_TIMEOUT_H

/* An options field's immediate timeout (Python's timeout=0). Only for fields:
 * a timeout_ms argument says 0 for that, and refuses MP_TIMEOUT_NOW (MP_EINVAL). */
#define MP_TIMEOUT_NOW (-2)

#endif /* MPROC_TIMEOUT_H */
