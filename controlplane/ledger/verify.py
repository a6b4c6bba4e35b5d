"""Verification of the chain: every link, hash, signature and stored column, on one or all cores.

The core is a pure function over stored rows (`verify_rows`), shared by the live database walk and the
offline check of an export bundle. A row is checked in this order and the first failure is reported:

1. `seq` follows the previous one                       -> LEDGER_SEQ_GAP
2. `prev_hash` is the previous event's hash             -> LEDGER_CHAIN_BROKEN
3. SHA-256(prev_hash || canonical) is the stored hash   -> LEDGER_HASH_MISMATCH
4. `canonical` holds exactly the envelope and specversion,
   and every stored column equals what it says          -> LEDGER_HASH_MISMATCH (names the column)
5. the key is known, unrevoked and valid at this seq    -> LEDGER_KEY_UNKNOWN / _REVOKED / _NOT_VALID
6. the Ed25519 signature over the hash verifies         -> LEDGER_SIGNATURE_INVALID

Step 4 is what makes "what the API serves is what was signed" true: the canonical bytes are never
re-derived from the columns; the columns are compared with the parsed canonical bytes.

Step 6 is most of the cost (libsodium, ~50 us an event); the rest is kept to ~25 us of CPU an event,
PostgreSQL's share included: worker processes read their own chunks of the chain as plain tuples in
binary form, with the cyclic garbage collector paused, and the parent does nothing per event.
"""

from __future__ import annotations

import gc
import hashlib
import operator
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from multiprocessing import get_context
from typing import Any

import orjson
import psycopg
from django.db import connection
from django.utils import timezone

from controlplane.kernel.canonical import canonical_bytes, format_time
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.forking import database_close_for_fork, database_unpooled
from controlplane.ledger import crypto
from controlplane.ledger.merkle import MerkleTree
from controlplane.ledger.models import (
    ENVELOPE_FIELDS,
    GENESIS_HASH,
    STORED_COLUMNS,
    Checkpoint,
    LedgerEvent,
    SigningKey,
    VerificationRun,
)

LEDGER_NAME = "controlplane"

# A stored row is a sequence of values in this order (dicts keyed by these names are accepted too). The JSON
# columns may come as text (the live walk), bytes (the console) or parsed (a bundle), and `time` as a
# datetime or as its canonical text: `_stored_envelope` brings them into the shapes of the signed body.
ROW_COLUMNS = STORED_COLUMNS
_JSON_COLUMNS = ("reason_codes", "data", "provenance")
_SEQ, _PREV_HASH, _KEY_ID, _HASH, _SIGNATURE, _CANONICAL = map(
    ROW_COLUMNS.index, ("seq", "prev_hash", "key_id", "hash", "signature", "canonical")
)
_row_values = operator.itemgetter(*ROW_COLUMNS)
_row_envelope = operator.itemgetter(*map(ROW_COLUMNS.index, ENVELOPE_FIELDS))
_envelope_of_body = operator.itemgetter(*ENVELOPE_FIELDS)
_ENVELOPE_TIME = ENVELOPE_FIELDS.index("time")
_ENVELOPE_JSON = tuple(map(ENVELOPE_FIELDS.index, _JSON_COLUMNS))


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
    # The chunk's RFC 9162 leaf hashes (32 bytes each, in seq order), when the walk was asked for them.
    leaves: bytes = b""


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
            "notes": self.notes,
        }
        if self.failure:
            body.update(failed_seq=self.failure.seq, code=self.failure.code, detail=self.failure.detail)
        return body


def verify_rows(
    rows: Iterable[dict[str, Any]],
    keys: dict[str, KeyInfo],
    *,
    expected_seq: int | None,
    expected_prev_hash: str | None,
) -> ChunkResult:
    """Check consecutive stored events given as dicts keyed by column (see `verify_row_values`)."""
    return verify_row_values(
        map(_row_values, rows), keys, expected_seq=expected_seq, expected_prev_hash=expected_prev_hash
    )


def verify_row_values(
    rows: Iterable[Sequence[Any]],
    keys: dict[str, KeyInfo],
    *,
    expected_seq: int | None,
    expected_prev_hash: str | None,
) -> ChunkResult:
    """Check consecutive stored events, each a sequence of values in `ROW_COLUMNS` order.

    With `expected_*` None the first row's link is taken as given (`combine` checks it).
    """
    result = ChunkResult()
    previous_hash = expected_prev_hash
    next_seq = expected_seq
    last: Sequence[Any] | None = None
    for values in rows:
        if last is None:
            result.first_seq, result.first_prev_hash = values[_SEQ], values[_PREV_HASH]
        failure = _check_row(values, keys, next_seq, previous_hash)
        if failure:
            result.failure = failure
            break
        result.count += 1
        last = values
        next_seq, previous_hash = values[_SEQ] + 1, values[_HASH]
    if last is not None:
        result.last_seq, result.last_hash = last[_SEQ], last[_HASH]
    return result


def _stored_envelope(values: Sequence[Any]) -> tuple[Any, ...]:
    """A stored row's envelope columns in the shapes of the signed body: time as text, JSON parsed."""
    envelope = list(_row_envelope(values))
    moment = envelope[_ENVELOPE_TIME]
    if isinstance(moment, datetime):
        envelope[_ENVELOPE_TIME] = format_time(moment)
    for position in _ENVELOPE_JSON:
        value = envelope[position]
        if isinstance(value, str | bytes):
            envelope[position] = orjson.loads(value)
    return tuple(envelope)


def _signed_envelope(signed: Any) -> tuple[Any, ...] | None:
    """The envelope fields of a signed body; None when it holds anything but them and specversion."""
    if (
        not isinstance(signed, dict)
        or len(signed) != len(ENVELOPE_FIELDS) + 1
        or signed.get("specversion") != "1.0"
    ):
        return None
    try:
        return _envelope_of_body(signed)
    except KeyError:
        return None


def _same_json_types(signed: tuple[Any, ...], stored: tuple[Any, ...]) -> bool:
    """Whether the JSON columns, already equal by Python's `==`, are the same JSON: `==` takes `true` for
    `1`, so a stored `true` where `1` was signed would pass it. Equal serialisations settle it at once;
    otherwise (a float stored as `2.0` where RFC 8785 signed `2`) the values are walked."""
    for position in _ENVELOPE_JSON:
        a, b = signed[position], stored[position]
        same_bytes = orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
            b, option=orjson.OPT_SORT_KEYS
        )
        if not same_bytes and not _same_json(a, b):
            return False
    return True


def _same_json(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value (`2` and `2.0` alike), but a boolean is never a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same_json, a, b))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _check_row(
    values: Sequence[Any], keys: dict[str, KeyInfo], next_seq: int | None, previous_hash: str | None
) -> Failure | None:
    seq, prev_hash, event_hash = values[_SEQ], values[_PREV_HASH], values[_HASH]
    if next_seq is not None and seq != next_seq:
        return Failure(seq, "LEDGER_SEQ_GAP", f"expected seq {next_seq}, found {seq}")
    if previous_hash is not None and prev_hash != previous_hash:
        return Failure(seq, "LEDGER_CHAIN_BROKEN", f"prev_hash is not the hash of seq {seq - 1}")
    canonical = values[_CANONICAL].encode("utf-8")
    if hashlib.sha256(prev_hash.encode("ascii") + canonical).hexdigest() != event_hash:
        return Failure(seq, "LEDGER_HASH_MISMATCH", "SHA-256(prev_hash || canonical) is not the stored hash")
    try:
        signed = orjson.loads(canonical)
    except orjson.JSONDecodeError:
        return Failure(seq, "LEDGER_HASH_MISMATCH", "canonical bytes are not JSON")
    signed_envelope = _signed_envelope(signed)
    if signed_envelope is None:
        return Failure(seq, "LEDGER_HASH_MISMATCH", "signed envelope has unexpected fields")
    stored_envelope = _stored_envelope(values)
    if signed_envelope != stored_envelope or not _same_json_types(signed_envelope, stored_envelope):
        name = next(
            name
            for name, signed_value, stored_value in zip(
                ENVELOPE_FIELDS, signed_envelope, stored_envelope, strict=True
            )
            if signed_value != stored_value or not _same_json(signed_value, stored_value)
        )
        return Failure(seq, "LEDGER_HASH_MISMATCH", f"stored column {name!r} differs from what was signed")
    key_id = values[_KEY_ID]
    key = keys.get(key_id)
    if key is None:
        return Failure(seq, "LEDGER_KEY_UNKNOWN", f"key {key_id} is not in the trust store")
    if key.revoked:
        return Failure(seq, "LEDGER_KEY_REVOKED", f"signed by revoked key {key.key_id}")
    if not key.covers(seq):
        return Failure(seq, "LEDGER_KEY_NOT_VALID", f"key {key.key_id} is not valid at seq {seq}")
    if not crypto.verify_signature(key.public_key, values[_SIGNATURE], bytes.fromhex(event_hash)):
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

# A chain shorter than this is walked in one process; several are walked in chunks of at least this many
# events, up to this many chunks per worker.
_MIN_CHUNK = 5000
_CHUNKS_PER_WORKER = 4


def load_keys() -> dict[str, KeyInfo]:
    return {
        k.key_id: KeyInfo(
            k.key_id, k.public_key, k.valid_from_seq, k.valid_until_seq, k.revoked_at is not None
        )
        for k in SigningKey.objects.all()
    }


def _walk_cursor() -> Any:
    """A cursor for streaming rows; on PostgreSQL one that asks for results in binary form.

    Django's cursors bind parameters on the client, and PostgreSQL answers those in text only. In binary,
    integers and times come as numbers that psycopg turns into objects in C, where the text form of a
    time goes through Django's time zone loader, written in Python (a fifth of the walk's fetching).
    """
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.ensure_connection()
    cursor = psycopg.Cursor(connection.connection)
    cursor.format = psycopg.pq.Format.BINARY
    return cursor


def _stored_rows(
    first: int, last: int, batch: int = 1000, hashes: list[str] | None = None
) -> Iterator[Sequence[Any]]:
    """Stream stored rows (in `ROW_COLUMNS` order) in seq order, JSON columns as text for orjson.

    A batch of 1,000 rows (about 2.6 MB) is checked while it is still in the CPU's caches; batches of
    5,000 cost about 1.5 us more per row.
    """
    columns = ", ".join(f"CAST({c} AS TEXT)" if c in _JSON_COLUMNS else c for c in ROW_COLUMNS)
    # Column names come from the constant above, never from input.
    query = f"SELECT {columns} FROM ledger_ledgerevent WHERE seq > %s AND seq <= %s ORDER BY seq LIMIT %s"  # noqa: S608
    cursor_seq = first - 1
    with _walk_cursor() as cursor:
        while True:
            cursor.execute(query, [cursor_seq, last, batch])
            rows = cursor.fetchall()
            if not rows:
                return
            if hashes is not None:  # kept a batch at a time, for the Merkle leaves
                hashes.extend([values[_HASH] for values in rows])
            yield from rows
            cursor_seq = rows[-1][_SEQ]


def _select_rows(first: int, last: int) -> Iterator[dict[str, Any]]:
    """Stored rows as dicts keyed by column (for export bundles)."""
    for values in _stored_rows(first, last):
        yield dict(zip(ROW_COLUMNS, values, strict=True))


def _prev_link(first: int) -> tuple[int, str | None]:
    """The seq and prev_hash the event at `first` must have (None when its predecessor is missing)."""
    if first <= 1:
        return 1, GENESIS_HASH
    with connection.cursor() as cursor:
        cursor.execute("SELECT hash FROM ledger_ledgerevent WHERE seq = %s", [first - 1])
        row = cursor.fetchone()
    return first, row[0] if row else None


def _verify_chunk(bounds: tuple[int, int, bool], with_leaves: bool = False) -> ChunkResult:
    """Verify seq `first..last`; only the first chunk checks its link to what precedes it.

    With `with_leaves` the chunk also returns the RFC 9162 leaf hashes of its events (for the Merkle roots
    of checkpoints and witness records: one SHA-256 an event, beside the ~50 us Ed25519 check).
    """
    first, last, is_first_chunk = bounds
    keys = load_keys()
    expected_seq, expected_prev = _prev_link(first) if is_first_chunk else (None, None)
    hashes: list[str] | None = [] if with_leaves else None
    rows = _stored_rows(first, last, hashes=hashes)
    # Parsing the JSON makes containers fast enough to run the cyclic GC every hundred rows or so,
    # and the batches of fetched rows it promotes set off full collections; the walk makes no cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        result = verify_row_values(rows, keys, expected_seq=expected_seq, expected_prev_hash=expected_prev)
        if hashes is not None and result.failure is None:
            result.leaves = leaf_hashes(hashes[: result.count])
        return result
    finally:
        if collecting:
            gc.enable()


def leaf_hashes(event_hashes: list[str]) -> bytes:
    """The RFC 9162 leaf hashes SHA-256(0x00 || hash) of hex event hashes, packed 32 bytes each."""
    raw = bytes.fromhex("".join(event_hashes))
    sha256 = hashlib.sha256
    return b"".join([sha256(b"\x00" + raw[i : i + 32]).digest() for i in range(0, len(raw), 32)])


def chunk_bounds(first: int, last: int, workers: int) -> list[tuple[int, int, bool]]:
    """Split seq `first..last` into consecutive chunks (first seq, last seq, whether it is the first).

    There are more chunks than workers: a worker that is free takes the next one, so a worker slowed down
    by other work on the machine walks less of the chain instead of holding up the end.
    """
    count = max(workers, min(workers * _CHUNKS_PER_WORKER, (last - first + 1) // _MIN_CHUNK))
    size = -(-(last - first + 1) // count)
    return [(lo, min(lo + size - 1, last), lo == first) for lo in range(first, last + 1, size)]


def _chunk_in_child(bounds: tuple[int, int, bool], with_leaves: bool = False) -> ChunkResult:
    database_unpooled()
    try:
        return _verify_chunk(bounds, with_leaves)
    finally:
        database_close_for_fork()


def head() -> tuple[int, str] | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT seq, hash FROM ledger_ledgerevent ORDER BY seq DESC LIMIT 1")
        return cursor.fetchone()


def verify_chain(*, workers: int = 1, first: int = 1, last: int | None = None) -> VerifyResult:
    """Walk the stored chain and report the first broken seq, if any; then, in O(checkpoints), what lies
    beside the chain: the stored checkpoints (LEDGER_TRUNCATED beyond the head, LEDGER_FORKED where their
    signed hash or Merkle root differs), the trust store against the signed key events (LEDGER_KEY_UNKNOWN,
    LEDGER_KEY_NOT_VALID), and the witness log outside the database (its own checks, then the same
    truncation and fork checks against the chain)."""
    top = head()
    top_seq = top[0] if top else 0
    if top is None:
        result = VerifyResult(True, 0, None, None)
        return _check_beside_chain(result, first=1, last=0, top_seq=0, tree=None)
    last = top[0] if last is None else min(last, top[0])
    workers = max(1, min(workers, os.cpu_count() or 1))
    with_leaves = first == 1 and _roots_to_check(last)
    # Other processes cannot see this transaction's rows, and closing its connection would end it:
    # inside an atomic block (or on SQLite, or for a short chain) verify on this connection alone.
    single = workers == 1 or connection.vendor != "postgresql" or connection.in_atomic_block
    if single or last - first < _MIN_CHUNK:
        chunks = [_verify_chunk((first, last, True), with_leaves)]
        result = combine(chunks)
    else:
        database_close_for_fork()
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
            chunks = list(
                pool.map(
                    partial(_chunk_in_child, with_leaves=with_leaves), chunk_bounds(first, last, workers)
                )
            )
        result = combine(chunks, workers=workers)
    if not result.ok:
        return result
    tree = None
    if with_leaves:
        tree = MerkleTree()
        for chunk in chunks:
            tree.extend_packed(chunk.leaves)
    return _check_beside_chain(result, first=first, last=last, top_seq=top_seq, tree=tree)


def _roots_to_check(last: int) -> bool:
    """Whether a Merkle tree is needed: a checkpoint with a root up to `last`, or a witness log."""
    from controlplane.ledger.witness import witness_dir

    if Checkpoint.objects.filter(seq__lte=last).exclude(root="").exists():
        return True
    return (witness_dir() / f"{LEDGER_NAME}.jsonl").exists()


def _check_beside_chain(
    result: VerifyResult, *, first: int, last: int, top_seq: int, tree: MerkleTree | None
) -> VerifyResult:
    failure = _check_stored_checkpoints(result, first, last, top_seq, tree)
    if failure is None and first == 1 and _no_key_events_after(last):
        failure = _check_key_events(last)
    if failure is None:
        failure = _check_witness(result, top_seq, tree)
    if failure:
        result.ok, result.failure = False, failure
    return result


def _check_stored_checkpoints(
    result: VerifyResult, first: int, last: int, top_seq: int, tree: MerkleTree | None
) -> Failure | None:
    beyond = Checkpoint.objects.filter(seq__gt=top_seq).order_by("seq").first()
    if beyond is not None:
        return Failure(
            beyond.seq,
            "LEDGER_TRUNCATED",
            f"a signed checkpoint names seq {beyond.seq}; the chain ends at seq {top_seq or None}",
        )
    keys = load_keys()
    checkpoints = list(Checkpoint.objects.filter(seq__gte=first, seq__lte=last).order_by("seq"))
    hashes = dict(LedgerEvent.objects.filter(seq__in=[c.seq for c in checkpoints]).values_list("seq", "hash"))
    for checkpoint in checkpoints:
        statement = checkpoint.statement()
        failure = verify_checkpoint(
            statement, checkpoint.key_id, checkpoint.signature, keys, statement["head_hash"]
        )
        if failure:
            return failure
        if hashes.get(checkpoint.seq) != checkpoint.head_hash:
            return Failure(
                checkpoint.seq,
                "LEDGER_FORKED",
                f"the chain's hash at seq {checkpoint.seq} differs from the signed checkpoint",
            )
        if checkpoint.root and (
            checkpoint.tree_size != checkpoint.seq
            or (tree is not None and tree.root(checkpoint.seq).hex() != checkpoint.root)
        ):
            return Failure(
                checkpoint.seq,
                "LEDGER_FORKED",
                f"the chain's Merkle root at seq {checkpoint.seq} differs from the signed checkpoint",
            )
        result.checkpoints_checked += 1
    if first != 1 and checkpoints:
        result.notes.append("the walk did not start at seq 1: checkpoint Merkle roots were not recomputed")
    return None


KEY_EVENT_TYPES = (
    "controlplane.ledger.key.activated",
    "controlplane.ledger.key.rotated",
    "controlplane.ledger.key.generated",
    "controlplane.ledger.key.revoked",
)


def key_set_from_events(events: Iterable[tuple[int, str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The ledger key set as the signed key events (seq, type, data) in seq order make it: for each key
    id its public key (when the event names it), validity seq range and revocation."""
    keys: dict[str, dict[str, Any]] = {}

    def entry(key_id: str) -> dict[str, Any]:
        return keys.setdefault(
            key_id, {"public_key": None, "valid_from_seq": None, "valid_until_seq": None, "revoked": False}
        )

    for seq, event_type, data in events:
        key = entry(data["key_id"])
        if data.get("public_key"):
            key["public_key"] = data["public_key"]
        if event_type == "controlplane.ledger.key.revoked":
            key["revoked"] = True
        elif event_type != "controlplane.ledger.key.generated":  # activated or rotated, at its own seq
            previous = data.get("previous_key_id")
            if previous:
                entry(previous)["valid_until_seq"] = seq - 1
            key["valid_from_seq"], key["valid_until_seq"] = seq, None
    return keys


def _no_key_events_after(last: int) -> bool:
    """Whether the trust store's state is the one at `last` (no key changed after it): then it is compared."""
    return not LedgerEvent.objects.filter(type__in=KEY_EVENT_TYPES, seq__gt=last).exists()


def _check_key_events(last: int) -> Failure | None:
    """The trust store against the key set the signed key events rebuild (the whole chain was walked)."""
    events = (
        LedgerEvent.objects.filter(type__in=KEY_EVENT_TYPES, seq__lte=last)
        .order_by("seq")
        .values_list("seq", "type", "data")
    )
    signed = key_set_from_events(events)
    stored = {k.key_id: k for k in SigningKey.objects.all()}
    for key_id, row in stored.items():
        at = row.valid_from_seq or last
        expected = signed.get(key_id)
        try:
            derived = crypto.key_id_for(crypto.unb64(row.public_key))
        except ValueError:
            derived = None
        if expected is None or derived != key_id:
            why = "no signed key event made it" if expected is None else "its public key is not its id's"
            return Failure(at, "LEDGER_KEY_UNKNOWN", f"key {key_id} is in the trust store but {why}")
        if expected["public_key"] not in (None, row.public_key):
            return Failure(
                at, "LEDGER_KEY_UNKNOWN", f"key {key_id}: the trust store's public key is not the signed one"
            )
        stated = (row.valid_from_seq, row.valid_until_seq, row.revoked_at is not None)
        wanted = (expected["valid_from_seq"], expected["valid_until_seq"], expected["revoked"])
        if stated != wanted:
            return Failure(
                expected["valid_from_seq"] or at,
                "LEDGER_KEY_NOT_VALID",
                f"key {key_id}: the trust store says seq {stated[0]}..{stated[1]} revoked={stated[2]}, the "
                f"signed key events say seq {wanted[0]}..{wanted[1]} revoked={wanted[2]}",
            )
    missing = sorted(set(signed) - set(stored))
    if missing:
        key = signed[missing[0]]
        return Failure(
            key["valid_from_seq"] or last,
            "LEDGER_KEY_UNKNOWN",
            f"key {missing[0]} was made by a signed key event but is missing from the trust store",
        )
    return None


def _check_witness(result: VerifyResult, top_seq: int, tree: MerkleTree | None) -> Failure | None:
    """The witness log alone (`witness_log_verify`), then every record against the chain."""
    from controlplane.ledger.witness import (
        Witness,
        witness_chain_check,
        witness_dir,
        witness_log_verify,
        witness_private_key,
    )

    directory = witness_dir()
    path = directory / f"{LEDGER_NAME}.jsonl"
    if not path.exists():
        result.notes.append(f"no witness log at {path}: the chain was checked against the database alone")
        return None
    try:
        witness = Witness(directory, witness_private_key(directory))
    except ControlPlaneError as exc:
        return Failure(top_seq, exc.code, f"the witness log cannot be checked: {exc.detail}")
    log = witness_log_verify(path, witness.public_key)
    if not log.ok:
        return log.failure
    records = witness.records(LEDGER_NAME)
    hashes = dict(
        LedgerEvent.objects.filter(seq__in=[r["seq"] for r in records if r["seq"] <= top_seq]).values_list(
            "seq", "hash"
        )
    )

    def root_at(seq: int) -> bytes:
        return tree.root(seq)

    for record in reversed(records):  # the newest first: a truncation shows there
        use_root = tree is not None and record["seq"] <= tree.size
        failure = witness_chain_check(
            record, head_seq=top_seq or None, hash_at=hashes.get, root_at=root_at if use_root else None
        )
        if failure:
            return failure
    result.notes.append(f"{len(records)} witness records agree with the chain")
    return None


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
