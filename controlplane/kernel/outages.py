"""Which exceptions mean "a server this process depends on is down", and the reason code of each.

A dependency lost mid-request is answered 503 with a code (the request changed nothing: its transaction
never committed), never an uncoded 500: PostgreSQL unreachable or restarting is DATABASE_UNAVAILABLE,
Redis (the broker and cache) unreachable is BROKER_UNAVAILABLE. Used by the project's middleware and by
the ingest path, which runs without it.
"""

from __future__ import annotations

from django.db import InterfaceError, OperationalError

try:
    from kombu.exceptions import OperationalError as BrokerError
    from redis import ConnectionError as RedisConnectionError
    from redis import TimeoutError as RedisTimeoutError

    BROKER_ERRORS: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, BrokerError)
except ImportError:  # pragma: no cover - both are dependencies
    BROKER_ERRORS = ()

# SQLSTATE classes of a lost or refused connection: 08 (connection exception), 57P (operator intervention:
# admin shutdown, crash shutdown, cannot connect now). A deadlock or a timeout is not an outage.
_OUTAGE_SQLSTATES = ("08", "57P")


def outage_code(exc: BaseException) -> str | None:
    """DATABASE_UNAVAILABLE or BROKER_UNAVAILABLE when `exc` means that server is down; else None."""
    if isinstance(exc, InterfaceError):
        return "DATABASE_UNAVAILABLE"
    if isinstance(exc, OperationalError):
        sqlstate = getattr(exc.__cause__, "sqlstate", None)
        if sqlstate is None or sqlstate.startswith(_OUTAGE_SQLSTATES):
            return "DATABASE_UNAVAILABLE"
        return None
    if BROKER_ERRORS and isinstance(exc, BROKER_ERRORS):
        return "BROKER_UNAVAILABLE"
    return None
