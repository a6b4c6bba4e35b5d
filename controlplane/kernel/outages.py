"""Which exceptions mean "a server this process depends on is down", and the reason code of each.

A dependency lost mid-request is answered 503 with a code (the request changed nothing: its transaction
never committed), never an uncoded 500: PostgreSQL unreachable or restarting is DATABASE_UNAVAILABLE,
Redis (the broker and cache) unreachable is BROKER_UNAVAILABLE, and every connection in use (the
process's pool gave none within DATABASE_POOL_TIMEOUT, or PostgreSQL has no connection slot left) is
DATABASE_BUSY: a server that is up but full, retried after a shorter wait. Used by the project's
middleware and by the ingest path, which runs without it.
"""

from __future__ import annotations

import time

from django.db import InterfaceError, OperationalError

try:
    from kombu.exceptions import OperationalError as BrokerError
    from redis import ConnectionError as RedisConnectionError
    from redis import TimeoutError as RedisTimeoutError

    BROKER_ERRORS: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, BrokerError)
except ImportError:  # pragma: no cover - both are dependencies
    BROKER_ERRORS = ()

try:
    from psycopg_pool import PoolTimeout, TooManyRequests

    POOL_ERRORS: tuple[type[BaseException], ...] = (PoolTimeout, TooManyRequests)
except ImportError:  # pragma: no cover - a dependency (psycopg-pool)
    POOL_ERRORS = ()

# SQLSTATE classes of a lost or refused connection: 08 (connection exception), 57P (operator intervention:
# admin shutdown, crash shutdown, cannot connect now). A deadlock or a timeout is not an outage.
_OUTAGE_SQLSTATES = ("08", "57P")
# too_many_connections ("sorry, too many clients already", "remaining connection slots are reserved").
_BUSY_SQLSTATES = ("53300",)
# A refused connection carries no SQLSTATE (the session never started): the server's message says it.
_BUSY_TEXT = ("too many clients", "remaining connection slots are reserved")
# How long a client waits before it retries, by code (the Retry-After header).
RETRY_AFTER_SECONDS = {"DATABASE_BUSY": 1, "DATABASE_UNAVAILABLE": 5, "BROKER_UNAVAILABLE": 5}


# Per pool: the connection errors it had counted when last asked, and when that count last grew.
_connection_errors: dict[int, tuple[int, float]] = {}
# A pool that failed to open a connection this recently is taken to be facing a server that is down.
_FAILING_FOR_SECONDS = 30.0


def _pool_failing_to_connect() -> bool:
    """Whether the pool that timed out failed to open a connection in the last _FAILING_FOR_SECONDS: then
    the server is down or restarting (DATABASE_UNAVAILABLE), not merely full (DATABASE_BUSY)."""
    from django.db import connection

    pool = getattr(connection, "pool", None)
    if pool is None:
        return False
    errors, now = pool.get_stats().get("connections_errors", 0), time.monotonic()
    seen, grew_at = _connection_errors.get(id(pool), (0, float("-inf")))
    if errors > seen:
        seen, grew_at = errors, now
        _connection_errors[id(pool)] = (seen, grew_at)
    return now - grew_at < _FAILING_FOR_SECONDS


def outage_code(exc: BaseException) -> str | None:
    """DATABASE_UNAVAILABLE or BROKER_UNAVAILABLE when `exc` means that server is down, DATABASE_BUSY
    when it is up but has no connection to give; else None."""
    if POOL_ERRORS and isinstance(exc.__cause__ if isinstance(exc, OperationalError) else exc, POOL_ERRORS):
        return "DATABASE_UNAVAILABLE" if _pool_failing_to_connect() else "DATABASE_BUSY"
    if isinstance(exc, InterfaceError):
        return "DATABASE_UNAVAILABLE"
    if isinstance(exc, OperationalError):
        sqlstate = getattr(exc.__cause__, "sqlstate", None)
        if sqlstate in _BUSY_SQLSTATES or (sqlstate is None and any(t in str(exc) for t in _BUSY_TEXT)):
            return "DATABASE_BUSY"
        if sqlstate is None or sqlstate.startswith(_OUTAGE_SQLSTATES):
            return "DATABASE_UNAVAILABLE"
        return None
    if BROKER_ERRORS and isinstance(exc, BROKER_ERRORS):
        return "BROKER_UNAVAILABLE"
    return None
