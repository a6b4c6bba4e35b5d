"""Forking a process that holds database connections.

A forked child must not use its parent's connections: two processes on one PostgreSQL session corrupt its
protocol. Without a pool, closing every connection before the fork was enough. With Django's psycopg pool
(`DATABASES[...]["OPTIONS"]["pool"]`, docs/operations.md) a closed connection only goes back to the pool,
still open, and the child would take it from its copy of the pool: so the pools are closed too. The child
builds its own pool (lazily, on its first query), and so does the parent afterwards.

A forked child that needs one connection connects without a pool (`database_unpooled`).

Forks happen only outside request threads (`ledger verify --workers N` in the CLI or a worker, the test
suite, the benchmarks), so closing the process's pool there takes nothing from a concurrent request.
"""

from __future__ import annotations


def database_close_for_fork() -> None:
    """Close every database connection of this process, and each connection pool, before a fork (and in a
    forked child before it exits)."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        connection.close()
    for connection in connections.all():
        close_pool = getattr(connection, "close_pool", None)
        if close_pool is not None:
            close_pool()


def database_unpooled() -> None:
    """In a forked child: connect directly, without a pool. A short-lived child (one of `ledger verify`'s
    workers) needs one connection; a pool would start worker threads and, on a busy machine, time out
    (`DATABASE_POOL_TIMEOUT`) before they connected. Only this process's settings change."""
    from django.db import connections

    for connection in connections.all():
        connection.settings_dict.get("OPTIONS", {}).pop("pool", None)
