"""Verification of the chain: every link, hash, signature and stored column, on one or all cores.

The core is a pure function over stored rows (`verify_rows`), shared by the live database walk and the
offline check of an export bundle. A row is checked in this order and the first failure is reported:

1. `seq` follows the previous one                       -> LEDGER_SEQ_GAP
2. `prev_hash` is the previous event's hash             -> LEDGER_CHAIN_BROKEN
3. SHA-256(prev_hash || canonical) is the stored hash   -> LEDGER_HASH_MISMATCH
4. every stored column equals what `canonical` says     -> LEDGER_HASH_MISMATCH (names the column)
5. the key is known, unrevoked and valid at this seq    -> LEDGER_KEY_UNKNOWN / _REVOKED / _NOT_VALID
6. the Ed25519 signature over the hash verifies         -> LEDGER_SIGNATURE_INVALID

Step 4 is what makes "what the API serves is what was signed" true: the canonical bytes are never
re-derived from the columns; the columns are compared with the parsed canonical bytes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing import get_context
from typing import Any

import orjson
from django.db import connection, connections
from django.utils import timezone

from controlplane.ledger import crypto
from controlplane.ledger.canonical import canonical_bytes, format_time
from controlplane.ledger.models import (
    ENVELOPE_FIELDS,
    GENESIS_HASH,
    STORED_COLUMNS,
    Checkpoint,
    LedgerEvent,
    SigningKey,
    VerificationRun,
)

# Columns in the order `_select_rows` returns them; `time`, `data`, `reason_codes` and `provenance`
# come back as text/datetime and are normalised before comparison.
ROW_COLUMNS = STORED_COLUMNS
_JSON_COLUMNS = ("reason_codes", "data", "provenance")


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    public_key: str
    valid_from_seq: int | None
    valid_until_seq: int | None
    revoked: bool

    def covers(self, seq: int) -> bool:
        if self.valid_from_seq is None or seq < self.valid_from_seq:
            return False
        return self.valid_until_seq is None or seq <= self.valid_until_seq


@dataclass
class Failure:
    seq: int
    code: str
    detail: str


@dataclass
class ChunkResult:
    count: int = 0
    first_seq: int | None = None
    first_prev_hash: str | None = None
    last_seq: int | None = None
    last_hash: str | None = None
    failure: Failure | None = None


@dataclass
class VerifyResult:
    ok: bool
    count: int
    head_seq: int | None
    head_hash: str | None
    failure: Failure | None = None
    checkpoints_checked: int = 0
    workers: int = 1
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": self.ok,
            "events_checked": self.count,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "checkpoints_checked": self.checkpoints_checked,
        }
        if self.failure:
            body.update(failed_seq=self.failure.seq, code=self.failure.code, detail=self.failure.detail)
        return body


def _normalise(row: dict[str, Any]) -> dict[str, Any]:
    """Bring a stored row's values into the JSON shapes the canonical body uses."""
    moment = row["time"]
    if isinstance(moment, datetime):
        row["time"] = format_time(moment)
    for name in _JSON_COLUMNS:
        value = row[name]
        if isinstance(value, str | bytes):
            row[name] = orjson.loads(value)
    return row


def verify_rows(
    rows: Iterable[dict[str, Any]],
    keys: dict[str, KeyInfo],
    *,
    expected_seq: int | None,
    expected_prev_hash: str | None,
) -> ChunkResult:
    """Check consecutive stored events. With `expected_*` None the first row's link is taken as given."""
    result = ChunkResult()
    previous_hash = expected_prev_hash
    next_seq = expected_seq
    for raw in rows:
        row = _normalise(raw)
        seq = row["seq"]
        if result.first_seq is None:
            result.first_seq, result.first_prev_hash = seq, row["prev_hash"]
        failure = _check_row(row, keys, next_seq, previous_hash)
        if failure:
            result.failure = failure
            return result
        result.count += 1
        result.last_seq, result.last_hash = seq, row["hash"]
        next_seq, previous_hash = seq + 1, row["hash"]
    return result


def _check_row(
    row: dict[str, Any], keys: dict[str, KeyInfo], next_seq: int | None, previous_hash: str | None
) -> Failure | None:
    seq = row["seq"]
    if next_seq is not None and seq != next_seq:
        return Failure(seq, "LEDGER_SEQ_GAP", f"expected seq {next_seq}, found {seq}")
    if previous_hash is not None and row["prev_hash"] != previous_hash:
        return Failure(seq, "LEDGER_CHAIN_BROKEN", f"prev_hash is not the hash of seq {seq - 1}")
    canonical = row["canonical"].encode("utf-8")
    if hashlib.sha256(row["prev_hash"].encode("ascii") + canonical).hexdigest() != row["hash"]:
        return Failure(seq, "LEDGER_HASH_MISMATCH", "SHA-256(prev_hash || canonical) is not the stored hash")
    try:
        signed = orjson.loads(canonical)
    except orjson.JSONDecodeError:
        return Failure(seq, "LEDGER_HASH_MISMATCH", "canonical bytes are not JSON")
    if len(signed) != len(ENVELOPE_FIELDS) + 1 or signed.get("specversion") != "1.0":
        return Failure(seq, "LEDGER_HASH_MISMATCH", "signed envelope has unexpected fields")
    if [signed.get(name) for name in ENVELOPE_FIELDS] != [row[name] for name in ENVELOPE_FIELDS]:
        name = next(name for name in ENVELOPE_FIELDS if signed.get(name) != row[name])
        return Failure(seq, "LEDGER_HASH_MISMATCH", f"stored column {name!r} differs from what was signed")
    key = keys.get(row["key_id"])
    if key is None:
        return Failure(seq, "LEDGER_KEY_UNKNOWN", f"key {row['key_id']} is not in the trust store")
    if key.revoked:
        return Failure(seq, "LEDGER_KEY_REVOKED", f"signed by revoked key {key.key_id}")
    if not key.covers(seq):
        return Failure(seq, "LEDGER_KEY_NOT_VALID", f"key {key.key_id} is not valid at seq {seq}")
    if not crypto.verify_signature(key.public_key, row["signature"], bytes.fromhex(row["hash"])):
        return Failure(seq, "LEDGER_SIGNATURE_INVALID", f"signature by {key.key_id} does not verify")
    return None


def verify_checkpoint(
    statement: dict[str, Any], key_id: str, signature: str, keys: dict[str, KeyInfo], event_hash: str | None
) -> Failure | None:
    seq = statement["seq"]
    key = keys.get(key_id)
    if key is None or key.revoked:
        return Failure(seq, "LEDGER_CHECKPOINT_MISMATCH", f"checkpoint key {key_id} is unknown or revoked")
    if not crypto.verify_signature(key.public_key, signature, canonical_bytes(statement)):
        return Failure(seq, "LEDGER_CHECKPOINT_MISMATCH", "checkpoint signature does not verify")
    if event_hash != statement["head_hash"]:
        return Failure(
            seq, "LEDGER_CHECKPOINT_MISMATCH", f"chain hash at seq {seq} differs from the checkpoint"
        )
    return None


def combine(chunks: list[ChunkResult], *, workers: int = 1) -> VerifyResult:
    """Join consecutive chunk results, checking the links between chunks."""
    count = 0
    previous: ChunkResult | None = None
    for chunk in chunks:
        if chunk.first_seq is not None and previous is not None and previous.last_seq is not None:
            if chunk.first_seq != previous.last_seq + 1:
                failure = Failure(chunk.first_seq, "LEDGER_SEQ_GAP", f"expected seq {previous.last_seq + 1}")
                return VerifyResult(
                    False, count, previous.last_seq, previous.last_hash, failure, workers=workers
                )
            if chunk.first_prev_hash != previous.last_hash:
                failure = Failure(
                    chunk.first_seq,
                    "LEDGER_CHAIN_BROKEN",
                    f"prev_hash is not the hash of seq {previous.last_seq}",
                )
                return VerifyResult(
                    False, count, previous.last_seq, previous.last_hash, failure, workers=workers
                )
        count += chunk.count
        if chunk.failure:
            head = previous if chunk.last_seq is None else chunk
            return VerifyResult(
                False,
                count,
                head.last_seq if head else None,
                head.last_hash if head else None,
                chunk.failure,
                workers=workers,
            )
        if chunk.last_seq is not None:
            previous = chunk
    return VerifyResult(
        True,
        count,
        previous.last_seq if previous else None,
        previous.last_hash if previous else None,
        workers=workers,
    )


# --- The live database -------------------------------------------------------------------------------


def load_keys() -> dict[str, KeyInfo]:
    return {
        k.key_id: KeyInfo(
            k.key_id, k.public_key, k.valid_from_seq, k.valid_until_seq, k.revoked_at is not None
        )
        for k in SigningKey.objects.all()
    }


def _select_rows(first: int, last: int, batch: int = 2000) -> Iterator[dict[str, Any]]:
    """Stream stored rows in seq order, JSON columns as text so orjson parses them."""
    columns = ", ".join(f"CAST({c} AS TEXT)" if c in _JSON_COLUMNS else c for c in ROW_COLUMNS)
    # Column names come from the constant above, never from input.
    query = f"SELECT {columns} FROM ledger_ledgerevent WHERE seq > %s AND seq <= %s ORDER BY seq LIMIT %s"  # noqa: S608
    cursor_seq = first - 1
    with connection.cursor() as cursor:
        while True:
            cursor.execute(query, [cursor_seq, last, batch])
            rows = cursor.fetchall()
            if not rows:
                return
            for values in rows:
                yield dict(zip(ROW_COLUMNS, values, strict=True))
            cursor_seq = rows[-1][0]


def _prev_link(first: int) -> tuple[int, str | None]:
    """The seq and prev_hash the event at `first` must have (None when its predecessor is missing)."""
    if first <= 1:
        return 1, GENESIS_HASH
    with connection.cursor() as cursor:
        cursor.execute("SELECT hash FROM ledger_ledgerevent WHERE seq = %s", [first - 1])
        row = cursor.fetchone()
    return first, row[0] if row else None


def _verify_chunk(bounds: tuple[int, int, bool]) -> ChunkResult:
    """Verify seq `first..last`; only the first chunk checks its link to what precedes it."""
    first, last, is_first_chunk = bounds
    keys = load_keys()
    expected_seq, expected_prev = _prev_link(first) if is_first_chunk else (None, None)
    return verify_rows(
        _select_rows(first, last), keys, expected_seq=expected_seq, expected_prev_hash=expected_prev
    )


def _chunk_in_child(bounds: tuple[int, int, bool]) -> ChunkResult:
    try:
        return _verify_chunk(bounds)
    finally:
        connections.close_all()


def head() -> tuple[int, str] | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT seq, hash FROM ledger_ledgerevent ORDER BY seq DESC LIMIT 1")
        return cursor.fetchone()


def verify_chain(*, workers: int = 1, first: int = 1, last: int | None = None) -> VerifyResult:
    """Walk the stored chain (and its checkpoints) and report the first broken seq, if any."""
    top = head()
    if top is None:
        return VerifyResult(True, 0, None, None)
    last = top[0] if last is None else min(last, top[0])
    workers = max(1, min(workers, os.cpu_count() or 1))
    # Other processes cannot see this transaction's rows, and closing its connection would end it:
    # inside an atomic block (or on SQLite, or for a short chain) verify on this connection alone.
    single = workers == 1 or connection.vendor != "postgresql" or connection.in_atomic_block
    if single or last - first < 5000:
        result = combine([_verify_chunk((first, last, True))])
    else:
        size = (last - first + workers) // workers
        bounds = [(lo, min(lo + size - 1, last), lo == first) for lo in range(first, last + 1, size)]
        connections.close_all()
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
            chunks = list(pool.map(_chunk_in_child, bounds))
        result = combine(chunks, workers=workers)
    if result.ok:
        result = _check_stored_checkpoints(result, first, last)
    return result


def _check_stored_checkpoints(result: VerifyResult, first: int, last: int) -> VerifyResult:
    keys = load_keys()
    checkpoints = list(Checkpoint.objects.filter(seq__gte=first, seq__lte=last).order_by("seq"))
    hashes = dict(LedgerEvent.objects.filter(seq__in=[c.seq for c in checkpoints]).values_list("seq", "hash"))
    for checkpoint in checkpoints:
        failure = verify_checkpoint(
            checkpoint.statement(), checkpoint.key_id, checkpoint.signature, keys, hashes.get(checkpoint.seq)
        )
        if failure:
            result.ok, result.failure = False, failure
            return result
        result.checkpoints_checked += 1
    return result


def verification_record(*, workers: int = 1) -> tuple[VerifyResult, VerificationRun]:
    """Verify the live chain and keep the result for the dashboard and `/readyz`."""
    started = timezone.now()
    result = verify_chain(workers=workers)
    run = VerificationRun.objects.create(
        started_at=started,
        finished_at=timezone.now(),
        ok=result.ok,
        events_checked=result.count,
        head_seq=result.head_seq,
        head_hash=result.head_hash or "",
        failed_seq=result.failure.seq if result.failure else None,
        reason_code=result.failure.code if result.failure else "",
        detail=result.failure.detail if result.failure else "",
        workers=result.workers,
    )
    return result, run
