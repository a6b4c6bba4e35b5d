"""Deferred appends: a service's events go on the chain together, at the end of its transaction.

`ledger_append` takes the chain's lock (a transaction-scoped advisory lock) at its first call and the
lock is held until the transaction commits, so every database round trip a service makes after its first
append is made while every other writer waits. Inside `with ledger_deferred():` the appends are only
prepared (envelope, id, canonical bytes: `ledger_prepare`), and the whole batch is appended when the block
ends — one chain lock, one head read, one INSERT (`chain_append`) — still inside the caller's
transaction, so the state change and its events commit together or not at all.

    with transaction.atomic():
        lock rows, read, decide ...
        with ledger_deferred():
            event = ledger_append(type=..., ...)   # a DeferredEvent: id known now, seq at the block's end
            ... more writes, more appends (also those made by other services called here) ...
        event.seq                                  # known now; the chain lock is held from here to commit

The semantics (docs/ledger.md, "Deferred appends"):

- Only inside `transaction.atomic()` (TransactionManagementError otherwise). Every append made in the block
  by this thread — `ledger_append` and `ledger_append_prepared`, by this code or any service it calls — is
  deferred, so the chain order of the batch is the order of the calls. Key and checkpoint operations
  (which read the head themselves) refuse to run inside a block.
- What an append returns inside the block is a `DeferredEvent`: its envelope (`id`, `type`, `subject`,
  `time`, `data`, `causation_id` ...) is readable at once, so ids can be passed on as causation ids and
  returned to callers; its chain fields (`seq`, `hash`, `prev_hash`, `signature`, `key_id`, `canonical`)
  raise `LedgerEventPending` until the block has ended, and then read through to the appended
  `LedgerEvent` (`.event`).
- Idempotency keys behave as with `ledger_append`: a key already on the chain when the append is made
  returns that existing `LedgerEvent` and defers nothing (one indexed read, outside the lock); a key
  deferred earlier in the same batch returns the earlier `DeferredEvent`. A key that another transaction
  commits between the append and the end of the block fails the flush with LEDGER_IDEMPOTENCY_RACE (the
  caller's writes were made for an event that is not the one on the chain, so all of it rolls back; a
  retry finds the original). `ledger_deferred(check_keys=False)` skips the read when the append is made,
  for a caller that has already established, from its own rows under its own lock, that its events are
  new (signal ingest): a key on the chain is then found only by the flush, with LEDGER_IDEMPOTENCY_RACE.
- Nested blocks join the outermost one: the batch is appended once, when the outermost block ends.
- An exception leaving a block (or a failed flush) discards the events deferred inside that block (a
  nested block only its own) and marks the innermost enclosing `atomic` block for rollback: the writes
  made for those events roll back with them even if a caller catches the exception (Django then refuses
  further queries in that atomic block, as after a failed query). A state change never commits without
  its events.
- An event deferred inside a savepoint (an inner `transaction.atomic()`) that is rolled back is discarded
  with it, even when the exception is caught inside the block: exactly what an immediate append would
  have done.
- Lock order: the chain lock is taken last, after every row lock the block took. A service that used to
  take row locks after its first append now takes them before the chain lock; that is the order every
  other service already uses (lock rows, change them, append), so it cannot deadlock against them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.db.transaction import TransactionManagementError

from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.chain import PreparedEvent, chain_append
from controlplane.ledger.models import LedgerEvent

__all__ = ["DeferredEvent", "LedgerEventPending", "current_batch", "ledger_deferred"]

# The fields of an event that only exist once it is on the chain.
_CHAIN_FIELDS = frozenset({"seq", "pk", "prev_hash", "hash", "key_id", "signature", "canonical"})


class LedgerEventPending(RuntimeError):
    """A deferred event's chain fields were read before its batch was appended (a programming error:
    move the read after the `ledger_deferred()` block, or append that event outside it)."""


class _OnCommitMarker:
    """Registered with `transaction.on_commit` for each deferred event: Django drops the callbacks of a
    savepoint that is rolled back, so a marker missing at the flush means its event was rolled back."""

    __slots__ = ()

    def __call__(self) -> None:  # runs after commit; nothing to do
        return None


class DeferredEvent:
    """What an append returns inside `ledger_deferred()`: the envelope now, chain fields after the block."""

    __slots__ = ("_event", "_marker", "_state", "prepared")

    def __init__(self, prepared: PreparedEvent) -> None:
        self.prepared = prepared
        self._event: LedgerEvent | None = None
        self._marker = _OnCommitMarker()
        self._state = "pending"  # pending | appended | discarded

    @property
    def appended(self) -> bool:
        return self._state == "appended"

    @property
    def event(self) -> LedgerEvent:
        """The appended `LedgerEvent` (after the block); LedgerEventPending before."""
        if self._event is None:
            raise LedgerEventPending(self._why())
        return self._event

    def _why(self) -> str:
        fields = self.prepared.fields
        if self._state == "discarded":
            return f"the deferred event {fields['type']} ({fields['id']}) was discarded (rolled back)"
        return (
            f"the deferred event {fields['type']} ({fields['id']}) is appended when the ledger_deferred() "
            "block ends; its chain fields are not known before"
        )

    def __getattr__(self, name: str) -> Any:
        # Only called for names that are not slots: the envelope, or the appended event's fields.
        if self._event is not None:
            return getattr(self._event, name)
        fields = self.prepared.fields
        if name in fields and name not in _CHAIN_FIELDS:
            return fields[name]
        if name in _CHAIN_FIELDS:
            raise LedgerEventPending(self._why())
        raise AttributeError(name)

    def __repr__(self) -> str:
        fields = self.prepared.fields
        where = f"seq {self._event.seq}" if self._event is not None else self._state
        return f"<DeferredEvent {fields['type']} {fields['id']} ({where})>"


class _Batch:
    """The events deferred by one outermost `ledger_deferred()` block, in call order."""

    def __init__(self) -> None:
        self.events: list[DeferredEvent] = []
        self.by_key: dict[str, DeferredEvent] = {}

    def defer(self, events: Sequence[PreparedEvent]) -> list[DeferredEvent | LedgerEvent]:
        """Queue prepared events; a known idempotency key answers with the event it already names."""
        fresh = [
            key
            for key in dict.fromkeys(e.idempotency_key for e in events if e.idempotency_key is not None)
            if key not in self.by_key
        ]
        on_chain: dict[str, LedgerEvent] = {}
        if fresh and _check_keys.get():
            try:
                on_chain = _on_chain(fresh)
            except DatabaseError as exc:
                raise ControlPlaneError(
                    "LEDGER_WRITE_FAILED", "the ledger could not check idempotency keys"
                ) from exc
        answers: list[DeferredEvent | LedgerEvent] = []
        for prepared in events:
            key = prepared.idempotency_key
            if key is not None and key in self.by_key:
                answers.append(self.by_key[key])
                continue
            if key is not None and key in on_chain:
                answers.append(on_chain[key])
                continue
            handle = DeferredEvent(prepared)
            transaction.on_commit(handle._marker)
            self.events.append(handle)
            if key is not None:
                self.by_key[key] = handle
            answers.append(handle)
        return answers

    def discard_from(self, index: int) -> None:
        for handle in self.events[index:]:
            handle._state = "discarded"
            key = handle.prepared.idempotency_key
            if key is not None and self.by_key.get(key) is handle:
                del self.by_key[key]
        del self.events[index:]

    def flush(self) -> None:
        """Append every surviving event under one chain lock (in the caller's transaction)."""
        alive = _registered_on_commit()
        keep: list[DeferredEvent] = []
        for handle in self.events:
            if alive is None or id(handle._marker) in alive:
                keep.append(handle)
            else:
                handle._state = "discarded"  # its savepoint was rolled back
        if not keep:
            return
        appended = chain_append([h.prepared for h in keep])
        for handle, event in zip(keep, appended, strict=True):
            if event.id != handle.prepared.fields["id"]:
                key = handle.prepared.idempotency_key
                raise ControlPlaneError(
                    "LEDGER_IDEMPOTENCY_RACE",
                    f"another request appended an event with the idempotency key {key!r} first",
                    extra={"idempotency_key": key, "seq": event.seq},
                )
            handle._event = event
            handle._state = "appended"


def _on_chain(keys: list[str]) -> dict[str, LedgerEvent]:
    """The events already on the chain with these idempotency keys (usually none: one cheap statement)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT seq FROM ledger_ledgerevent WHERE idempotency_key IN ({})".format(  # noqa: S608
                ", ".join(["%s"] * len(keys))
            ),
            keys,
        )
        seqs = [row[0] for row in cursor.fetchall()]
    return {e.idempotency_key: e for e in LedgerEvent.objects.filter(seq__in=seqs)} if seqs else {}


def _registered_on_commit() -> set[int] | None:
    """Ids of the callables registered with on_commit in this transaction, or None when the connection
    does not expose them (then no event is taken for rolled back)."""
    entries = getattr(connection, "run_on_commit", None)
    if entries is None:
        return None
    return {id(item) for entry in entries for item in entry if isinstance(item, _OnCommitMarker)}


_current: ContextVar[_Batch | None] = ContextVar("controlplane_ledger_deferred", default=None)
_check_keys: ContextVar[bool] = ContextVar("controlplane_ledger_deferred_check_keys", default=True)


def current_batch() -> _Batch | None:
    """The batch of the innermost open `ledger_deferred()` block of this thread, if any."""
    return _current.get()


@contextmanager
def ledger_deferred(*, check_keys: bool = True) -> Iterator[None]:
    """Defer every ledger append made in the block and append them together when it ends (see above).

    `check_keys` applies to the appends made directly in this block (a nested block has its own).
    """
    keys_token = _check_keys.set(check_keys)
    try:
        with _deferred():
            yield
    finally:
        _check_keys.reset(keys_token)


@contextmanager
def _deferred() -> Iterator[None]:
    outer = _current.get()
    if outer is not None:
        mark = len(outer.events)
        try:
            yield
        except BaseException:
            outer.discard_from(mark)
            transaction.set_rollback(True)
            raise
        return
    if not connection.in_atomic_block:
        raise TransactionManagementError(
            "ledger_deferred() runs inside transaction.atomic(): its events are appended at the block's end, "
            "in the same transaction as the writes they record"
        )
    batch = _Batch()
    token = _current.set(batch)
    try:
        yield
    except BaseException:
        batch.discard_from(0)
        transaction.set_rollback(True)  # the writes made for the discarded events must not commit either
        raise
    finally:
        _current.reset(token)
    try:
        batch.flush()
    except BaseException:
        batch.discard_from(0)
        transaction.set_rollback(True)
        raise
