"""The raw ceiling of the chain: appending the same kind of rows with psycopg alone, no Django.

Each append is one transaction, exactly the ledger's protocol: take a transaction-scoped advisory lock,
read the head, build the canonical bytes, SHA-256 them with the previous hash, sign the hash with
Ed25519, insert, commit. Several connections (each in its own process) compete for the lock, as
gunicorn's workers do. The scratch table is a copy of the ledger table's shape and indexes
(`LIKE ledger_ledgerevent INCLUDING ALL`, without its append-only triggers) and is dropped afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import multiprocessing
import os
import time
import uuid
from array import array
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

import orjson
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.loadgen import percentile
from controlplane.ledger.models import ENVELOPE_FIELDS

TABLE = "bench_chain"
# Not the ledger's lock key: the baseline never contends with the real chain.
LOCK_KEY = 0x42454E4348434841  # "BENCHCHA"
GENESIS = "0" * 64
COLUMNS = ENVELOPE_FIELDS


def ingest_like_fields(index: int, moment: datetime) -> dict[str, Any]:
    """The envelope of an ingested alert event, shaped like what `event_ingest` appends."""
    ce_id = f"raw-{index}-{uuid.uuid4().hex[:8]}"
    data = {
        "service": f"checkout-{index % 16}",
        "severity": "warning",
        "metric": "http_request_duration_p99_ms",
        "value": 412 + index % 100,
        "threshold": 400,
        "labels": {"region": "eu-west-1", "cluster": "prod-a", "team": "payments"},
        "summary": "p99 latency above threshold for 5 minutes",
    }
    when = moment.astimezone(UTC)
    return {
        "id": uuid.uuid4().hex,
        "type": "com.example.bench",
        "source": "bench",
        "subject": f"service/checkout-{index % 16}",
        "time": when,
        "tenant": "bench",
        "actor": "bench/producer-bench",
        "trace_id": "",
        "traceparent": "",
        "causation_id": "",
        "correlation_id": "",
        "idempotency_key": f"ingest:1:{ce_id}",
        "request_id": uuid.uuid4().hex,
        "fidelity": "live",
        "reason_codes": [],
        "data": data,
        "provenance": {
            "producer": "bench/producer",
            "key_id": "pk_0123456789abcdef",
            "verdict": "verified",
            "webhook_id": f"msg_{ce_id}",
            "ce_id": ce_id,
            "signing_mode": "require-valid-signature",
            "body_sha256": hashlib.sha256(ce_id.encode()).hexdigest(),
            "data_location": "ledger.data",
            "cloudevent": {
                "specversion": "1.0",
                "id": ce_id,
                "source": "bench",
                "type": "com.example.bench",
                "subject": f"service/checkout-{index % 16}",
                "time": f"{when:%Y-%m-%dT%H:%M:%S}.{when.microsecond:06d}Z",
                "datacontenttype": "application/json",
            },
        },
    }


def _format_time(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}Z"


def _append_one(cursor: psycopg.Cursor, key: Ed25519PrivateKey, key_id: str, index: int) -> None:
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
    cursor.execute(f"SELECT seq, hash FROM {TABLE} ORDER BY seq DESC LIMIT 1")  # noqa: S608
    head = cursor.fetchone()
    seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS)
    fields = {
        "seq": seq,
        **ingest_like_fields(index, datetime.now(UTC)),
        "prev_hash": prev_hash,
        "key_id": key_id,
    }
    body = {"specversion": "1.0", **fields, "time": _format_time(fields["time"])}
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(prev_hash.encode("ascii") + canonical).hexdigest()
    signature = base64.b64encode(key.sign(bytes.fromhex(digest))).decode("ascii")
    values = [
        orjson.dumps(fields[c]).decode() if c in ("reason_codes", "data", "provenance") else fields[c]
        for c in COLUMNS
    ]
    cursor.execute(
        f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}, hash, signature, canonical) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * (len(COLUMNS) + 3))})",
        [*values, digest, signature, canonical.decode()],
    )


def _worker(
    sender: Connection, dsn: str, start: float, duration: float, max_rows: int, synchronous_commit: str
) -> None:
    status = 1
    try:
        key = Ed25519PrivateKey.generate()
        latencies = array("d")
        with psycopg.connect(dsn) as conn:
            cursor = conn.cursor()
            cursor.execute("SELECT set_config('synchronous_commit', %s, false)", [synchronous_commit])
            conn.commit()
            while start > time.monotonic():
                time.sleep(0.001)
            deadline = start + duration
            index = os.getpid() * 1_000_000
            finished = start
            while time.monotonic() < deadline and len(latencies) < max_rows:  # bounded in time and count
                began = time.monotonic()
                with conn.transaction():
                    _append_one(cursor, key, "ed25519:bench", index)
                finished = time.monotonic()
                latencies.append(finished - began)
                index += 1
        sender.send((latencies, finished - start))
        status = 0
    except BaseException as exc:
        sender.send(RuntimeError(f"chain baseline worker failed: {exc!r}"))
    finally:
        sender.close()
        os._exit(status)


def _check_chain(conn: psycopg.Connection) -> tuple[int, bool]:
    """(rows, intact): seq consecutive from 1, each prev_hash the previous hash, each hash recomputed."""
    expected_seq, previous, count = 1, GENESIS, 0
    with conn.cursor(name="bench_chain_walk") as cursor:
        cursor.execute(f"SELECT seq, prev_hash, hash, canonical FROM {TABLE} ORDER BY seq")  # noqa: S608
        for seq, prev_hash, digest, canonical in cursor:
            recomputed = hashlib.sha256(prev_hash.encode("ascii") + canonical.encode()).hexdigest()
            if seq != expected_seq or prev_hash != previous or recomputed != digest:
                return count, False
            expected_seq, previous, count = seq + 1, digest, count + 1
    return count, True


def chain_baseline(
    *,
    dsn: str,
    connections: int,
    duration: float,
    max_rows: int = 1_000_000,
    synchronous_commit: str = "on",
) -> dict[str, Any]:
    """Append chained, signed rows from `connections` processes for `duration` seconds; report rows/s.

    `synchronous_commit="off"` is a diagnostic only (commits do not wait for the WAL flush): it shows
    how much of the durable rate is the flush.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE TABLE {TABLE} (LIKE ledger_ledgerevent INCLUDING ALL)")
    try:
        context = multiprocessing.get_context("fork")
        start = time.monotonic() + 0.5
        workers = []
        for _ in range(connections):
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(
                target=_worker,
                args=(sender, dsn, start, duration, max(1, max_rows // connections), synchronous_commit),
                daemon=True,
            )
            process.start()
            sender.close()
            workers.append((process, receiver))
        latencies: list[float] = []
        elapsed = 0.0
        failure = None
        for process, receiver in workers:
            message = (
                receiver.recv() if receiver.poll(duration + 60) else RuntimeError("baseline worker hung")
            )
            if isinstance(message, Exception):
                failure = failure or message
            else:
                latencies.extend(message[0])
                elapsed = max(elapsed, message[1])
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
        if failure:
            raise failure
        with psycopg.connect(dsn) as conn:
            rows, intact = _check_chain(conn)
        latencies.sort()
        return {
            "connections": connections,
            "synchronous_commit": synchronous_commit,
            "duration_s": duration,
            "rows": rows,
            "chain_intact": intact,
            "elapsed_s": round(elapsed, 3),
            "rows_per_s": round(rows / elapsed, 1) if elapsed else None,
            "append_latency_ms": {
                "p50": round(1000 * (percentile(latencies, 0.5) or 0), 3),
                "p99": round(1000 * (percentile(latencies, 0.99) or 0), 3),
            },
        }
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
