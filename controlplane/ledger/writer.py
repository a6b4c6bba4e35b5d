"""Chain writers with a PostgreSQL connection of their own, appending a batch in one or two round trips.

`ledger_append_prepared` runs on the calling thread's Django connection, one statement at a time. A
writer that appends on behalf of many requests (ingest's group commit, controlplane/channels/ingest/lean.py
and ingest/event_loop.py) spends most of its time holding the chain's lock, so it uses these instead: one
psycopg connection per process (per event loop for the async one) in pipeline mode, and the shortest
time under the lock that the chain allows.

**Careful append, two round trips.**

1. BEGIN, the chain lock, the head read (with the batch's idempotency keys) and the caller's own reads,
   sent together. The server runs them in order, each statement with a fresh snapshot, so the reads see
   every write committed before the lock was granted.
2. The sealed rows' INSERT, the caller's own writes and COMMIT, sent together.

**Expected-head append, one round trip.** The writer remembers the head its last batch left. When it
has one, it seals the next batch against it *before* taking the lock, with no reads (the caller plans
as if nothing it sends were a duplicate), and sends BEGIN, the lock, `ledger_expect_head(seq, hash,
key)` (migration 0003), the INSERTs and COMMIT together. The lock is then held only for the server's
own work. If anyone else appended in between (the check fails, SQLSTATE CPH01) or something sent is a
duplicate after all (a unique violation), that transaction rolls back and the batch is appended the
careful way, which finds the duplicates and names them. Both ways seal with `ledger.chain.chain_seal`,
like every other append, so the rows are the same.

A `ChainBatch` is the transaction as statements, without I/O; `ChainWriter.run` (blocking) and
`AsyncChainWriter.run` (asyncio) send them. The caller's `body` runs between the rounds (or before the
one round): it plans from the reads' rows, seals and queues the INSERT (`ChainBatch.append`) and queues
its own writes; it may run twice, so it must only return what it made. Any failure rolls the whole
transaction back, and the connection is re-opened for the next batch. PostgreSQL only; a connection
is opened lazily in the process (and loop) that uses it, so after a fork.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from django.db import connections

from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.chain import (
    CHAIN_COLUMNS,
    CHAIN_LOCK_KEY,
    CHAIN_LOCK_SQL,
    ChainHead,
    PreparedEvent,
    chain_head_parse,
    chain_head_query,
    chain_insert_query,
    chain_seal,
    event_from_row,
)
from controlplane.ledger.models import LedgerEvent


class _QuietAbortedPipeline(logging.Filter):
    """psycopg logs, at WARNING, the pipeline-aborted error it ignores when a pipeline block is left by
    an exception. Here that exception is the failed head check or a duplicate, already handled (the
    batch is appended the careful way); the log line would only alarm. Other psycopg records pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "error ignored terminating %r: %s" and len(record.args or ()) == 2:
            return not isinstance(record.args[1], psycopg.errors.PipelineAborted)
        return True


logging.getLogger("psycopg").addFilter(_QuietAbortedPipeline())

Statement = tuple[str, Sequence[Any]]
# A write: one statement with its parameters, or (executemany) one statement with a row of them per run.
Write = tuple[str, Sequence[Any], bool]
T = TypeVar("T")

_EXPECT_HEAD_SQL = "SELECT ledger_expect_head(%s, %s, %s)"
HEAD_MOVED = "CPH01"  # the SQLSTATE ledger_expect_head raises


class NoActiveKey(Exception):
    """The chain has no active signing key yet: an ordinary append (`chain.chain_append`) activates one."""


class ChainBatch:
    """One chain transaction: what to send first, what the body made of the answers, what to send last."""

    def __init__(self, *, idempotency_keys: Sequence[str] = (), reads: Sequence[Statement] = ()) -> None:
        self._keys = idempotency_keys
        self._reads = reads
        self._start(None, {}, [[] for _ in reads])

    def _start(self, head: ChainHead | None, existing: dict[str, int], results: list[list[Any]]) -> None:
        self.head, self._existing, self.results = head, existing, results
        self._writes: list[Write] = []
        self._appended = False
        self.last: ChainHead | None = head  # the head once this batch is appended

    def first_round(self) -> list[Statement]:
        return [(CHAIN_LOCK_SQL, [CHAIN_LOCK_KEY]), chain_head_query(self._keys), *self._reads]

    def read(self, answers: list[list[tuple[Any, ...]]]) -> None:
        """Take the answers of the first round (lock, head, reads). Raises NoActiveKey."""
        head, existing = chain_head_parse(answers[1])
        if head.key_id is None:
            raise NoActiveKey
        self._start(head, existing, answers[2:])

    def expect(self, head: ChainHead) -> None:
        """Plan against `head` without reading (the expected-head append): reads come back empty."""
        self._start(head, {}, [[] for _ in self._reads])

    def expected_round(self) -> list[Write]:
        """The lock, the head check and the writes, for the expected-head append."""
        assert self.head is not None
        check = [self.head.seq, self.head.hash, self.head.key_id]
        return [(CHAIN_LOCK_SQL, [CHAIN_LOCK_KEY], False), (_EXPECT_HEAD_SQL, check, False), *self._writes]

    def append(self, events: Sequence[PreparedEvent]) -> list[tuple[int, LedgerEvent | None]]:
        """Seal `events` after the head and queue their INSERT (once per transaction). Per event:
        (seq, the new event), or (seq, None) when its idempotency key is already on the chain or
        earlier in `events`."""
        assert not self._appended, "one append per chain transaction"
        assert self.head is not None
        self._appended = True
        rows, placed = chain_seal(events, self.head, self._existing)
        if rows:
            self.execute_many(chain_insert_query(1), rows)
            self.last = ChainHead(rows[-1][_SEQ], rows[-1][_HASH], self.head.key_id)
        return [
            (seq, None if row is None else event_from_row(row, prepared))
            for (seq, row), prepared in zip(placed, events, strict=True)
        ]

    def execute(self, sql: str, params: Sequence[Any]) -> None:
        """Queue a write; it is sent with the COMMIT, where its errors surface."""
        self._writes.append((sql, params, False))

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Queue one statement run once per row of parameters (in pipeline mode one message per row, no
        round trip each, and the statement is parsed once however many rows a batch has)."""
        self._writes.append((sql, rows, True))

    def second_round(self) -> list[Write]:
        return self._writes


_SEQ, _HASH = CHAIN_COLUMNS.index("seq"), CHAIN_COLUMNS.index("hash")


def _connect_params(alias: str) -> dict[str, Any]:
    params = connections[alias].get_connection_params()
    for name in ("cursor_factory", "context", "server_side_binding"):
        params.pop(name, None)
    return params


def _retry_carefully(exc: Exception) -> bool:
    """Whether an expected-head append failed in a way the careful append sorts out: the head moved, a
    duplicate was sent, or the body could not seal against the expected head (its key is gone)."""
    if isinstance(exc, psycopg.Error):
        return exc.sqlstate == HEAD_MOVED or isinstance(exc, psycopg.errors.IntegrityError)
    return isinstance(exc, ControlPlaneError)


Body = Callable[[ChainBatch], T]


class ChainWriter:
    """Blocking: one connection per process, one transaction at a time."""

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._pid = 0
        self.expected: ChainHead | None = None  # the head the last batch left

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._pid != os.getpid():
            self._conn = psycopg.connect(**_connect_params(self.alias), autocommit=False)
            self._pid, self.expected = os.getpid(), None
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def _expected_append(self, conn: psycopg.Connection, batch: ChainBatch, body: Body[T]) -> tuple[Any, Any]:
        """The one-round-trip append against the expected head: (outcome, None), or (None, why) when the
        careful append is to sort it out. Anything that fails is rolled back."""
        failed: Exception | None = None
        try:
            batch.expect(self.expected)
            outcome = body(batch)
        except ControlPlaneError as exc:  # e.g. the expected head's key is not in this process any more
            outcome, failed = None, exc
        if failed is None:
            try:
                with conn.pipeline():
                    _send(conn, batch.expected_round())
                    conn.commit()
            except psycopg.Error as exc:
                failed = exc
                _rollback_or_close(conn)
            except BaseException:
                self.expected = None
                _rollback_or_close(conn)
                raise
        if failed is None:
            self.expected = batch.last
            return outcome, None
        self.expected = None
        if not _retry_carefully(failed):
            raise failed
        return None, failed

    def run(self, batch: ChainBatch, body: Body[T]) -> T:
        """Append: run `body` and send its writes under the chain lock; return what it returned once
        committed. Raises NoActiveKey or psycopg's errors, with the transaction rolled back."""
        with self._lock:
            conn = self._connection()
            if self.expected is not None:
                outcome, failed = self._expected_append(conn, batch, body)
                if failed is None:
                    return outcome
            try:
                with conn.pipeline():
                    cursors = _send(conn, [(sql, params, False) for sql, params in batch.first_round()])
                    batch.read([cursor.fetchall() for cursor in cursors])
                    outcome = body(batch)
                    _send(conn, batch.second_round())
                    conn.commit()
                self.expected = batch.last
                return outcome
            except BaseException:
                self.expected = None
                _rollback_or_close(conn)
                raise


def _send(conn: psycopg.Connection, writes: Sequence[Write]) -> list[psycopg.Cursor]:
    cursors = []
    for sql, params, many in writes:
        cursor = conn.cursor()
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
        cursors.append(cursor)
    return cursors


def _rollback_or_close(conn: psycopg.Connection) -> None:
    try:
        conn.rollback()
    except psycopg.Error:
        conn.close()


class AsyncChainWriter:
    """asyncio: one connection per event loop, one transaction at a time; as `ChainWriter`.

    (Two transactions in flight on two connections, the next batch sealed against the head the first
    would leave, measured worse on the 2-core benchmark machine and was dropped: docs/benchmarks.md.)
    """

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias
        self._conn: psycopg.AsyncConnection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self.expected: ChainHead | None = None

    async def _connection(self) -> psycopg.AsyncConnection:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new loop (or process): connections do not cross loops
            self._conn, self._loop, self._lock, self.expected = None, loop, asyncio.Lock(), None
        if self._conn is None or self._conn.closed:
            params = _connect_params(self.alias)
            self._conn = await psycopg.AsyncConnection.connect(**params, autocommit=False)
            self.expected = None
        return self._conn

    async def close(self) -> None:
        if self._conn is not None and self._loop is asyncio.get_running_loop():
            await self._conn.close()
        self._conn, self.expected = None, None

    async def run(self, batch: ChainBatch, body: Body[T]) -> T:
        """As `ChainWriter.run`, without blocking the loop."""
        conn = await self._connection()
        assert self._lock is not None
        async with self._lock:
            if self.expected is not None:
                outcome, failed = await self._expected_append(conn, batch, body)
                if failed is None:
                    return outcome
            try:
                async with conn.pipeline():
                    first = [(sql, params, False) for sql, params in batch.first_round()]
                    cursors = await _send_async(conn, first)
                    batch.read([await cursor.fetchall() for cursor in cursors])
                    outcome = body(batch)
                    await _send_async(conn, batch.second_round())
                    await conn.commit()
                self.expected = batch.last
                return outcome
            except BaseException:
                self.expected = None
                await _rollback_or_close_async(conn)
                raise

    async def _expected_append(
        self, conn: psycopg.AsyncConnection, batch: ChainBatch, body: Body[T]
    ) -> tuple[Any, Any]:
        """As `ChainWriter._expected_append`."""
        failed: Exception | None = None
        try:
            batch.expect(self.expected)
            outcome = body(batch)
        except ControlPlaneError as exc:
            outcome, failed = None, exc
        if failed is None:
            try:
                async with conn.pipeline():
                    await _send_async(conn, batch.expected_round())
                    await conn.commit()
            except psycopg.Error as exc:
                failed = exc
                await _rollback_or_close_async(conn)
            except BaseException:
                self.expected = None
                await _rollback_or_close_async(conn)
                raise
        if failed is None:
            self.expected = batch.last
            return outcome, None
        self.expected = None
        if not _retry_carefully(failed):
            raise failed
        return None, failed


async def _send_async(conn: psycopg.AsyncConnection, writes: Sequence[Write]) -> list[psycopg.AsyncCursor]:
    cursors = []
    for sql, params, many in writes:
        cursor = conn.cursor()
        if many:
            await cursor.executemany(sql, params)
        else:
            await cursor.execute(sql, params)
        cursors.append(cursor)
    return cursors


async def _rollback_or_close_async(conn: psycopg.AsyncConnection) -> None:
    try:
        await conn.rollback()
    except psycopg.Error:
        await conn.close()
