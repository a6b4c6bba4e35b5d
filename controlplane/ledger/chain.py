"""The chain itself: preparing, sealing and inserting events at the head, under the chain's lock.

These are the primitives every append is made of; `services.ledger_append` (one event, in the caller's
transaction), `batch.ledger_deferred` (a service's events at the end of its transaction) and the chain
writers of `writer.py` (ingest's group commit, on a connection of their own) all seal with `chain_seal`,
so the rows are the same whichever way an event comes in.

The work inside the lock is kept to what needs the head: everything else about an event (its envelope,
the canonical bytes of every signed member but `seq`, `prev_hash` and `key_id`, the JSON of its stored
columns) is prepared before the lock is taken (`chain_prepare`). `chain_append` appends several prepared
events under one lock, one head read and one INSERT. With no active key yet, the first append activates
one (`chain_activate_first_key`), still under the lock, so the activation is the event before it.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from controlplane.kernel.canonical import canonical_bytes, format_time
from controlplane.kernel.context import parse_traceparent, request_id_var, traceparent_var
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger import crypto
from controlplane.ledger.models import (
    ENVELOPE_FIELDS,
    GENESIS_HASH,
    STORED_COLUMNS,
    Fidelity,
    LedgerEvent,
    SigningKey,
    signing_key_writes,
)

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock key: "CPLEDGER" as an integer. One global chain, one serial point, by design.
CHAIN_LOCK_KEY = 0x43504C4544474552 & 0x7FFFFFFFFFFFFFFF
SOURCE = "urn:controlplane"


@dataclass(frozen=True)
class ChainHead:
    """The last event's seq and hash, and the key that signs the next one (None: no active key yet)."""

    seq: int
    hash: str
    key_id: str | None


def chain_lock_and_read_head(
    cursor: Any, idempotency_keys: Sequence[str]
) -> tuple[ChainHead, dict[str, int]]:
    """Take the chain lock, then (in a second statement, so it sees everything committed before the
    lock was granted) read the head, the active key and which of `idempotency_keys` are on the chain."""
    if connection.vendor == "postgresql":
        cursor.execute(CHAIN_LOCK_SQL, [CHAIN_LOCK_KEY])
    cursor.execute(*chain_head_query(idempotency_keys))
    return chain_head_parse(cursor.fetchall())


CHAIN_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s)"


def chain_head_query(idempotency_keys: Sequence[str]) -> tuple[str, list[Any]]:
    """The statement (and parameters) that reads the head, the active key and which of
    `idempotency_keys` are on the chain; run it after the chain lock is granted."""
    keys = list(dict.fromkeys(idempotency_keys)) or [None]
    return _HEAD_SQL.format(keys=", ".join(["%s"] * len(keys))), keys


def chain_head_parse(rows: Sequence[tuple[str, int | None, str]]) -> tuple[ChainHead, dict[str, int]]:
    """The head and the {idempotency key: seq} found, from the rows of `chain_head_query`."""
    seq, head_hash, key_id, existing = 0, GENESIS_HASH, None, {}
    for kind, row_seq, text in rows:
        if kind == "head":
            seq, head_hash = row_seq, text
        elif kind == "key":
            key_id = text
        else:
            existing[text] = row_seq
    return ChainHead(seq, head_hash, key_id), existing


_HEAD_SQL = """
    SELECT 'head', h.seq, h.hash FROM (SELECT seq, hash FROM ledger_ledgerevent ORDER BY seq DESC LIMIT 1) h
    UNION ALL
    SELECT 'key', NULL, k.key_id FROM (
        SELECT key_id FROM ledger_signingkey
         WHERE valid_from_seq IS NOT NULL AND valid_until_seq IS NULL AND revoked_at IS NULL
         ORDER BY valid_from_seq DESC LIMIT 1) k
    UNION ALL
    SELECT 'dup', seq, idempotency_key FROM ledger_ledgerevent WHERE idempotency_key IN ({keys})
"""


def chain_signer(key_id: str) -> crypto.Signer:
    """The signer of `key_id` in this process; LEDGER_KEY_UNAVAILABLE when its private key is not here."""
    signer = crypto.signer_for(key_id)
    if signer is None:
        raise key_unavailable_error(key_id)
    return signer


def key_unavailable_error(key_id: str) -> ControlPlaneError:
    """The error for a ledger key whose private key this process does not hold."""
    return ControlPlaneError(
        "LEDGER_KEY_UNAVAILABLE", f"the active ledger key {key_id} has no private key in this process"
    )


# The signed body's members in RFC 8785 order (all keys are ASCII, so code-point order is UTF-16 order).
# `key_id`, `prev_hash` and `seq` are known only under the lock; the members around them are prepared
# before it as three runs of canonical bytes and spliced: "{" head "key_id" "prev_hash" middle "seq" tail "}".
_SIGNED_MEMBERS = sorted(["specversion", *ENVELOPE_FIELDS])
_LOCKED_MEMBERS = ("key_id", "prev_hash", "seq")
_HEAD_MEMBERS = tuple(m for m in _SIGNED_MEMBERS if m < "key_id")
_MIDDLE_MEMBERS = tuple(m for m in _SIGNED_MEMBERS if "prev_hash" < m < "seq")
_TAIL_MEMBERS = tuple(m for m in _SIGNED_MEMBERS if m > "seq")
_JSON_FIELDS = ("reason_codes", "data", "provenance")
_INSERT_COLUMNS = STORED_COLUMNS


@dataclass(frozen=True)
class PreparedEvent:
    """An event ready to be chained: its envelope and every canonical byte that does not need the head.

    Made by `ledger_prepare` in the caller's thread (it captures that thread's request id and trace).
    """

    fields: dict[str, Any]
    json_columns: dict[str, str]
    head: bytes
    middle: bytes
    tail: bytes

    @property
    def idempotency_key(self) -> str | None:
        return self.fields["idempotency_key"]


def _members(body: dict[str, Any], names: tuple[str, ...]) -> bytes:
    """The canonical members `names` of `body`, without the enclosing braces."""
    return canonical_bytes({name: body[name] for name in names})[1:-1]


def chain_prepare(fields: dict[str, Any]) -> PreparedEvent:
    """The canonical bytes and stored JSON of an envelope (`chain_envelope`), before the lock."""
    body = {"specversion": "1.0", **fields, "time": format_time(fields["time"])}
    return PreparedEvent(
        fields=fields,
        json_columns={name: orjson.dumps(fields[name]).decode() for name in _JSON_FIELDS},
        head=_members(body, _HEAD_MEMBERS),
        middle=_members(body, _MIDDLE_MEMBERS),
        tail=_members(body, _TAIL_MEMBERS),
    )


def _seal(prepared: PreparedEvent, seq: int, prev_hash: str, key_id: str, private_key: Any) -> list[Any]:
    """Under the lock: the canonical bytes, hash and signature; returns the row in `_INSERT_COLUMNS` order."""
    canonical = b"".join(
        (
            b"{",
            prepared.head,
            b',"key_id":',
            orjson.dumps(key_id),
            b',"prev_hash":',
            orjson.dumps(prev_hash),
            b",",
            prepared.middle,
            b',"seq":',
            str(seq).encode("ascii"),
            b",",
            prepared.tail,
            b"}",
        )
    )
    digest = hashlib.sha256(prev_hash.encode("ascii") + canonical).hexdigest()
    signature = crypto.b64(private_key.sign(bytes.fromhex(digest)))
    fields, json_columns = prepared.fields, prepared.json_columns
    values = {"seq": seq, "prev_hash": prev_hash, "key_id": key_id, "hash": digest, "signature": signature}
    values["canonical"] = canonical.decode("utf-8")
    return [
        values[name] if name in values else json_columns[name] if name in json_columns else fields[name]
        for name in _INSERT_COLUMNS
    ]


def event_from_row(row: list[Any], prepared: PreparedEvent) -> LedgerEvent:
    """The `LedgerEvent` a sealed row (from `chain_seal`) stands for, as if loaded from the database."""
    event = LedgerEvent(**{**dict(zip(_INSERT_COLUMNS, row, strict=True)), **prepared.fields})
    event._state.adding = False
    event._state.db = connection.alias
    return event


def _insert_rows(cursor: Any, rows: list[list[Any]]) -> None:
    """One plain multi-row INSERT: the hot path of every write, so it skips the ORM's compilation."""
    cursor.execute(chain_insert_query(len(rows)), [value for row in rows for value in row])


_INSERT_SQL = "INSERT INTO ledger_ledgerevent ({}) VALUES ".format(", ".join(_INSERT_COLUMNS))  # noqa: S608
_ROW_PLACEHOLDERS = "(" + ", ".join(["%s"] * len(_INSERT_COLUMNS)) + ")"


def chain_insert_query(count: int) -> str:
    """INSERT of `count` rows as `chain_seal` makes them (parameters: the rows' values, flattened)."""
    return _INSERT_SQL + ", ".join([_ROW_PLACEHOLDERS] * count)


def chain_seal(
    events: Sequence[PreparedEvent], head: ChainHead, existing: dict[str, int]
) -> tuple[list[list[Any]], list[tuple[int, list[Any] | None]]]:
    """Under the chain lock: seal `events` in order after `head` with the active key.

    Returns the rows to insert and, per event, (seq, row) — row None when its idempotency key is
    already on the chain (`existing`, updated here) or earlier in `events`.
    """
    assert head.key_id is not None
    private_key = chain_signer(head.key_id)
    seq, prev_hash = head.seq, head.hash
    rows: list[list[Any]] = []
    placed: list[tuple[int, list[Any] | None]] = []
    for prepared in events:
        key = prepared.idempotency_key
        if key is not None and key in existing:
            placed.append((existing[key], None))
            continue
        seq += 1
        row = _seal(prepared, seq, prev_hash, head.key_id, private_key)
        prev_hash = row[_HASH_INDEX]
        rows.append(row)
        placed.append((seq, row))
        if key is not None:
            existing[key] = seq
    return rows, placed


def _build_and_insert(
    head: ChainHead, key_id: str, private_key: Ed25519PrivateKey, fields: dict[str, Any]
) -> LedgerEvent:
    prepared = chain_prepare(fields)
    row = _seal(prepared, head.seq + 1, head.hash, key_id, private_key)
    with connection.cursor() as cursor:
        _insert_rows(cursor, [row])
    return event_from_row(row, prepared)


def chain_envelope(
    *,
    type: str,
    subject: str,
    data: dict[str, Any],
    time: datetime | None,
    tenant: str,
    actor: str,
    source: str,
    causation_id: str,
    correlation_id: str,
    idempotency_key: str | None,
    fidelity: str,
    reason_codes: list[str],
    provenance: dict[str, Any],
    event_id: str | None,
    traceparent: str | None,
) -> dict[str, Any]:
    """An event's envelope: every field but the chain's, with the id, time, request id and trace filled in
    from this thread when not given."""
    if fidelity not in Fidelity.values:
        raise ValueError(f"unknown fidelity {fidelity!r}")
    traceparent = traceparent or traceparent_var.get() or ""
    parsed = parse_traceparent(traceparent)
    return {
        "id": event_id or uuid.uuid4().hex,
        "type": type,
        "source": source,
        "subject": subject,
        "time": time or timezone.now(),
        "tenant": tenant,
        "actor": actor,
        "trace_id": parsed[0] if parsed else "",
        "traceparent": traceparent if parsed else "",
        "causation_id": causation_id,
        "correlation_id": correlation_id,
        "idempotency_key": idempotency_key,
        "request_id": request_id_var.get() or "",
        "fidelity": fidelity,
        "reason_codes": list(reason_codes),
        "data": data,
        "provenance": provenance,
    }


def chain_append(events: Sequence[PreparedEvent]) -> list[LedgerEvent]:
    """Append prepared events now, in order, under one chain lock and one INSERT, inside the caller's
    transaction; return the event for each, in the same order (`services.ledger_append_prepared`, which
    defers them instead inside `ledger_deferred()`, and the flush of a deferred batch call this).

    An event whose idempotency key is already on the chain (or earlier in `events`) is not written: the
    existing event is returned in its place. Failures raise `ControlPlaneError` (LEDGER_WRITE_FAILED,
    LEDGER_KEY_UNAVAILABLE) and, the caller's transaction being rolled back, change nothing.
    """
    try:
        with transaction.atomic(savepoint=False), connection.cursor() as cursor:
            keys = [e.idempotency_key for e in events if e.idempotency_key is not None]
            head, existing = chain_lock_and_read_head(cursor, keys)
            if head.key_id is None:
                head = chain_activate_first_key(head)
            rows, placed = chain_seal(events, head, existing)
            if rows:
                _insert_rows(cursor, rows)
            earlier = [s for s, row in placed if row is None]
            loaded = LedgerEvent.objects.in_bulk(earlier) if earlier else {}
            return [
                loaded[s] if row is None else event_from_row(row, prepared)
                for (s, row), prepared in zip(placed, events, strict=True)
            ]
    except ControlPlaneError:
        raise
    except DatabaseError as exc:
        logger.exception("ledger append failed")
        names = ", ".join(sorted({e.fields["type"] for e in events}))
        raise ControlPlaneError("LEDGER_WRITE_FAILED", f"the ledger could not append {names}") from exc


_HASH_INDEX = _INSERT_COLUMNS.index("hash")
# The columns of the rows `chain_seal` makes, in order.
CHAIN_COLUMNS = _INSERT_COLUMNS


def chain_activate_first_key(head: ChainHead) -> ChainHead:
    """With no active key: activate the one in CONTROLPLANE_LEDGER_KEY, or in dev generate one.

    Anywhere else, with neither, writes fail closed.
    """
    configured = crypto.configured_private_key()
    if configured is None and not settings.CONTROLPLANE_LEDGER_AUTOGENERATE_KEY:
        raise ControlPlaneError(
            "LEDGER_KEY_UNAVAILABLE",
            "no active ledger signing key; set CONTROLPLANE_LEDGER_KEY or run `manage.py keys generate`",
        )
    return chain_activate_key(
        head,
        event_type="controlplane.ledger.key.activated",
        actor="system",
        reason="first run",
        private_key=configured,
    )


def chain_activate_key(
    head: ChainHead, *, event_type: str, actor: str, reason: str, private_key: Ed25519PrivateKey | None = None
) -> ChainHead:
    """Under the chain lock: retire the active key at the head, activate a key from head+1, record it."""
    now = timezone.now()
    if private_key is None:
        private_key = Ed25519PrivateKey.generate()
        key_id = crypto.store_private_key(private_key)
    else:
        key_id = crypto.key_id_for(crypto.public_bytes(private_key))
    previous = head.key_id
    public_key = crypto.b64(crypto.public_bytes(private_key))
    with signing_key_writes():
        if previous:
            SigningKey.objects.filter(key_id=previous).update(valid_until_seq=head.seq)
        SigningKey.objects.update_or_create(
            key_id=key_id,
            defaults={
                "public_key": public_key,
                "created_at": now,
                "valid_from_seq": head.seq + 1,
                "valid_until_seq": None,
            },
        )
    event = _build_and_insert(
        head,
        key_id,
        private_key,
        chain_envelope(
            type=event_type,
            subject=f"ledger-key/{key_id}",
            data={
                "key_id": key_id,
                "public_key": public_key,
                "previous_key_id": previous or "",
                "valid_from_seq": head.seq + 1,
                "reason": reason,
            },
            time=now,
            tenant="",
            actor=actor,
            source=SOURCE,
            causation_id="",
            correlation_id="",
            idempotency_key=None,
            fidelity=Fidelity.LIVE,
            reason_codes=[],
            provenance={},
            event_id=None,
            traceparent=None,
        ),
    )
    logger.info("ledger signing key %s active from seq %s", key_id, head.seq + 1)
    return ChainHead(event.seq, event.hash, key_id)
