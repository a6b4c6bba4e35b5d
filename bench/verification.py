"""Ledger verification rate: `verify_chain` over N events, on one process and on all cores.

The chain is first filled up to N events. `ledger_append` in batches works but is slow with fsync on,
so by default rows are made exactly as `ledger_append` makes them (same envelope fields, RFC 8785
canonical bytes, SHA-256 chain, Ed25519 signature by the active ledger key) and written with COPY
under the chain's advisory lock. Verification checks every column of every row against its signed
canonical bytes, so a row that `ledger_append` would not have written fails it: the smoke test holds
the two populate methods to the same verdict.

With `checks` (the default) the chain carries what a deployed one does: a signed checkpoint (tree head) at
the last event, cosigned by a witness (a log in a temporary directory, its own key), so every run also
does the truncation, fork, Merkle-root, key-event and witness checks. Beside it, the bare Ed25519 rate:
the same events' signatures verified (libsodium, nothing else) on the same number of processes; the
ratio of the two is what the checks and the walk cost over the signature check alone.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import connection, transaction
from django.test import override_settings

from bench.chain import ingest_like_fields
from controlplane.kernel.canonical import canonical_bytes, format_time
from controlplane.kernel.forking import database_close_for_fork

# The ledger's own lock and shapes: the populated rows must be the ones `ledger_append` would write.
from controlplane.ledger import crypto
from controlplane.ledger.chain import CHAIN_LOCK_KEY
from controlplane.ledger.keys import key_generate
from controlplane.ledger.models import ENVELOPE_FIELDS, GENESIS_HASH, LedgerEvent, SigningKey
from controlplane.ledger.services import ledger_append
from controlplane.ledger.verify import verify_chain

_JSON = ("reason_codes", "data", "provenance")
_COPY_COLUMNS = (*ENVELOPE_FIELDS, "hash", "signature", "canonical")


def _active_key() -> str:
    key = SigningKey.objects.filter(
        valid_from_seq__isnull=False, valid_until_seq__isnull=True, revoked_at__isnull=True
    ).first()
    if key is None:  # as the first append would: generate and activate a key (one ledgered event)
        return key_generate(actor="bench").key_id
    return key.key_id


def populate_copy(*, count: int, batch: int = 5000) -> int:
    """Append `count` ingest-shaped events with COPY, `batch` per transaction; returns rows written."""
    key_id = _active_key()
    private_key = crypto.load_private_key(key_id)
    if private_key is None:
        raise RuntimeError(f"the ledger key {key_id} has no private key in this process")
    written = 0
    base_time = datetime.now(UTC) - timedelta(days=1)
    while written < count:  # bounded: each pass writes min(batch, count - written) > 0 rows
        size = min(batch, count - written)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
            cursor.execute("SELECT seq, hash FROM ledger_ledgerevent ORDER BY seq DESC LIMIT 1")
            head = cursor.fetchone()
            seq, prev_hash = head if head else (0, GENESIS_HASH)
            raw = connection.connection  # the psycopg connection, inside this transaction
            with raw.cursor().copy(
                f"COPY ledger_ledgerevent ({', '.join(_COPY_COLUMNS)}) FROM STDIN"
            ) as copy:
                for offset in range(size):
                    seq += 1
                    fields = ingest_like_fields(seq, base_time + timedelta(milliseconds=seq))
                    envelope = {"seq": seq, **fields, "prev_hash": prev_hash, "key_id": key_id}
                    body = {"specversion": "1.0", **{name: envelope[name] for name in ENVELOPE_FIELDS}}
                    body["time"] = format_time(envelope["time"])
                    canonical = canonical_bytes(body)
                    digest = hashlib.sha256(prev_hash.encode("ascii") + canonical).hexdigest()
                    signature = crypto.b64(private_key.sign(bytes.fromhex(digest)))
                    row = [
                        orjson.dumps(envelope[name]).decode() if name in _JSON else envelope[name]
                        for name in ENVELOPE_FIELDS
                    ]
                    copy.write_row([*row, digest, signature, canonical.decode("utf-8")])
                    prev_hash = digest
                    del offset
        written += size
    return written


def populate_append(*, count: int, batch: int = 1000) -> int:
    """Append `count` events through `ledger_append`, `batch` per transaction (the slow, obvious way)."""
    written = 0
    while written < count:  # bounded as above
        size = min(batch, count - written)
        with transaction.atomic():
            for _ in range(size):
                written += 1
                fields = ingest_like_fields(written, datetime.now(UTC))
                ledger_append(
                    type=fields["type"],
                    subject=fields["subject"],
                    data=fields["data"],
                    actor=fields["actor"],
                    tenant=fields["tenant"],
                    source=fields["source"],
                    idempotency_key=fields["idempotency_key"],
                    provenance=fields["provenance"],
                )
    return written


def settle() -> float:
    """VACUUM (ANALYZE) the events table after populating it; returns the seconds it took.

    Autovacuum does the same soon after a bulk load, and the first reads of fresh rows set their hint bits
    (writing every page again): timed right after the load, the first runs shared the machine with both
    and measured 3-4k events/s with one worker against about 10k/s a minute later. A chain under
    verification is normally long settled. VACUUM cannot run inside a transaction block: there it is
    skipped.
    """
    if connection.in_atomic_block:
        return 0.0
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) ledger_ledgerevent")
    return time.monotonic() - started


def chain_length() -> int:
    return LedgerEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def _bare_verify(job: tuple[dict[str, str], list[tuple[str, str, str]]]) -> int:
    keys, rows = job
    return sum(
        crypto.verify_signature(keys[key_id], signature, bytes.fromhex(h)) for h, signature, key_id in rows
    )


def ed25519_baseline(*, events: int, workers: int) -> dict[str, Any]:
    """The same events' Ed25519 signatures verified and nothing else, on `workers` processes (forked, as
    `verify_chain`'s are); the rows are read before the clock starts."""
    keys = dict(SigningKey.objects.values_list("key_id", "public_key"))
    rows = list(
        LedgerEvent.objects.filter(seq__lte=events).order_by("seq").values_list("hash", "signature", "key_id")
    )
    size = -(-len(rows) // workers)
    jobs = [(keys, rows[i : i + size]) for i in range(0, len(rows), size)]
    database_close_for_fork()
    began = time.monotonic()
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
        valid = sum(pool.map(_bare_verify, jobs))
    seconds = time.monotonic() - began
    return {
        "workers": workers,
        "signatures": len(rows),
        "valid": valid,
        "seconds": round(seconds, 3),
        "per_s": round(len(rows) / seconds, 1) if seconds else None,
    }


def _witnessed_checkpoint(events: int) -> int:
    """A signed tree head at seq `events`, cosigned by the (temporary) witness; returns its seq."""
    from controlplane.ledger.checkpoints import checkpoint_create, witness_sync

    checkpoint = checkpoint_create(actor="bench", at_seq=events)
    witness_sync(post=False)
    return checkpoint.seq


def verification_bench(
    *,
    events: int,
    workers: list[int],
    repeats: int = 1,
    populate: str = "copy",
    checks: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Fill the chain up to `events`, then time `verify_chain(workers=w, last=events)` for each w, and the
    bare Ed25519 rate of the same events on w processes (module docstring)."""
    with ExitStack() as stack:
        if checks:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-witness-"))
            seed = crypto.b64(crypto.seed_bytes(Ed25519PrivateKey.generate()))
            stack.enter_context(
                override_settings(CONTROLPLANE_WITNESS_DIR=directory, CONTROLPLANE_WITNESS_KEY=seed)
            )
        return _verification_bench(
            events=events, workers=workers, repeats=repeats, populate=populate, checks=checks, log=log
        )


def _timed_runs(
    *, events: int, workers: list[int], repeats: int, log: Callable[[str], None], label: str
) -> list[dict[str, Any]]:
    runs = []
    for worker_count in workers:
        for attempt in range(repeats):
            database_close_for_fork()  # verify_chain forks its workers; each opens its own connection
            began = time.monotonic()
            result = verify_chain(workers=worker_count, first=1, last=events)
            seconds = time.monotonic() - began
            runs.append(
                {
                    "workers": worker_count,
                    "attempt": attempt + 1,
                    "ok": result.ok,
                    "events_checked": result.count,
                    "seconds": round(seconds, 3),
                    "events_per_s": round(result.count / seconds, 1) if seconds else None,
                    "failure": result.failure.__dict__ if result.failure else None,
                }
            )
            log(
                f"  {label} workers={worker_count}: {result.count} events in {seconds:.2f}s "
                f"= {result.count / seconds:,.0f}/s ok={result.ok}"
            )
    return runs


def _verification_bench(
    *, events: int, workers: list[int], repeats: int, populate: str, checks: bool, log: Callable[[str], None]
) -> dict[str, Any]:
    existing = chain_length()
    missing = max(0, events - existing)
    started = time.monotonic()
    if missing:
        (populate_copy if populate == "copy" else populate_append)(count=missing)
    populate_s = time.monotonic() - started
    log(f"  populated {missing} events ({populate}) in {populate_s:.1f}s; {existing} were already there")
    settle_s = settle() if missing else 0.0
    if settle_s:
        log(f"  VACUUM (ANALYZE) of the events table: {settle_s:.1f}s")
    # The walk alone first (no checkpoint, no witness log: nothing beside the chain to check), then with
    # everything a deployed chain carries: the ratio of the two is what issue 10's checks cost.
    walk_only = (
        _timed_runs(events=events, workers=workers, repeats=repeats, log=log, label="walk only")
        if checks
        else []
    )
    checkpoint_seq = _witnessed_checkpoint(events) if checks else None
    if checkpoint_seq:
        log(f"  witnessed checkpoint at seq {checkpoint_seq}: truncation, fork, key and witness checks on")
    runs = _timed_runs(events=events, workers=workers, repeats=repeats, log=log, label="verify")
    best: dict[int, float] = {}
    for run in runs:
        if run["ok"] and run["events_per_s"]:
            best[run["workers"]] = max(best.get(run["workers"], 0.0), run["events_per_s"])
    walk_best: dict[int, float] = {}
    for run in walk_only:
        if run["ok"] and run["events_per_s"]:
            walk_best[run["workers"]] = max(walk_best.get(run["workers"], 0.0), run["events_per_s"])
    checks_ratio = {str(w): round(best[w] / walk_best[w], 3) for w in sorted(best) if walk_best.get(w)}
    for w, ratio in checks_ratio.items():
        log(f"  with the checks beside the chain, {w} worker(s) keep {ratio} of the walk alone")
    bare: dict[str, Any] = {}
    for worker_count in sorted(set(workers)):
        samples = [ed25519_baseline(events=events, workers=worker_count) for _ in range(repeats)]
        top = max(samples, key=lambda b: b["per_s"] or 0)
        bare[str(worker_count)] = top
        ratio = best.get(worker_count, 0.0) / top["per_s"] if top["per_s"] else None
        top["verify_ratio"] = round(ratio, 3) if ratio is not None else None
        log(
            f"  bare Ed25519 on {worker_count} processes: {top['per_s']:,.0f}/s; verify_chain reaches "
            f"{top['verify_ratio']} of it"
        )
    return {
        "checks": checks,
        "checkpoint_seq": checkpoint_seq,
        "walk_only_runs": walk_only,
        "checks_vs_walk_only": checks_ratio,
        "ed25519_bare": bare,
        "events": events,
        "populated": missing,
        "already_present": existing,
        "populate_method": populate,
        "populate_s": round(populate_s, 2),
        "settle_s": round(settle_s, 2),
        "runs": runs,
        "best_events_per_s": {str(w): r for w, r in sorted(best.items())},
    }
