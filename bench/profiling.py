"""Where an ingest request's time goes: cProfile in the gunicorn workers, summarised.

WSGI workers: cProfile measures wall time per call in the thread that runs the request, so time spent
waiting on PostgreSQL (the chain lock, the commit's WAL flush) shows up under the psycopg calls that
wait, and time spent waiting for the GIL shows up wherever the thread was. The ASGI worker: one profile
of the event loop's thread, so a coroutine's time is its time on the loop (an `await` leaves the
function and resuming counts as another call), and waiting shows up as the loop's own idle time; divided
by the requests profiled. The figures are inflated by the profiler's own overhead; their proportions are
what to read.
"""

from __future__ import annotations

import pstats
from pathlib import Path
from typing import Any

# Buckets for "where did the time go", matched on the file path of the function (first match wins).
_AREAS = (
    ("psycopg (database round trips, lock waits, commit)", ("/psycopg/", "/psycopg_binary/")),
    ("redis client (cache)", ("/redis/",)),
    ("cryptography / hmac / hashlib", ("/cryptography/", "hmac.py", "hashlib")),
    ("controlplane ledger", ("/controlplane/ledger/",)),
    ("controlplane channels", ("/controlplane/channels/",)),
    ("controlplane identity", ("/controlplane/identity/",)),
    ("controlplane other", ("/controlplane/",)),
    ("rest_framework", ("/rest_framework/",)),
    ("django ORM", ("/django/db/",)),
    ("django other", ("/django/",)),
    ("logging", ("/logging/",)),
    ("json / orjson", ("orjson", "/json/")),
)


# Steps of the ingest path worth naming, matched by (end of file path, function name); their cumulative
# time per request says where the request waits.
KEY_FUNCTIONS = (
    (
        "whole request (the ASGI ingest handler; on-loop time only)",
        "controlplane/channels/ingest/event_loop.py",
        "handle",
    ),
    (
        "ingest checks (ASGI: authentication, signature, CloudEvent, prepare)",
        "controlplane/channels/ingest/checks.py",
        "ingest_check",
    ),
    (
        "a batch appended on the loop (ASGI appender, on-loop time)",
        "controlplane/channels/services/ingest.py",
        "deliveries_append_pipelined_async",
    ),
    ("whole request (the WSGI application)", "controlplane/serving.py", "__call__"),
    ("ingest view (total)", "controlplane/channels/ingest/lean.py", "ingest_post"),
    (
        "authentication (cached token, producer, keys)",
        "controlplane/channels/ingest/checks.py",
        "_authenticate",
    ),
    ("authentication: token lookup (cache miss)", "controlplane/identity/services.py", "token_authenticate"),
    ("producer and keys lookup (cache miss)", "controlplane/channels/selectors.py", "producer_for_principal"),
    ("checks: signature, CloudEvent, prepare", "controlplane/channels/services/ingest.py", "event_check"),
    ("signature verdict (HMAC)", "controlplane/channels/services/ingest.py", "signature_verdict"),
    ("prepare the ledger event (before the lock)", "controlplane/ledger/services.py", "ledger_prepare"),
    ("group commit: queued until appended (total)", "controlplane/channels/ingest/lean.py", "append"),
    (
        "group commit: a batch appended (leader)",
        "controlplane/channels/services/ingest.py",
        "deliveries_append",
    ),
    (
        "earlier deliveries (duplicate check)",
        "controlplane/channels/services/ingest.py",
        "_earlier_deliveries",
    ),
    ("chain lock wait + head read", "controlplane/ledger/chain.py", "chain_lock_and_read_head"),
    ("seal (hash, sign) under the lock", "controlplane/ledger/chain.py", "_seal"),
    ("ledger INSERT", "controlplane/ledger/chain.py", "_insert_rows"),
    ("COMMIT (waits for the WAL flush)", "django/db/backends/base/base.py", "commit"),
    ("refusal counter (Redis INCR)", "controlplane/channels/services/rejections.py", "rejection_record"),
)


def _area(filename: str, function: str) -> str:
    if filename == "~":  # a builtin: attribute by its name
        name = function.lower()
        if "psycopg" in name:
            return _AREAS[0][0]
        if "sha256" in name or "hmac" in name or "sign" in name:
            return "cryptography / hmac / hashlib"
        return "python builtins"
    for area, needles in _AREAS:
        if any(needle in filename for needle in needles):
            return area
    return "other python"


def _label(filename: str, line: int, function: str) -> str:
    if filename == "~":
        return function
    short = filename
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in short:
            short = short.split(marker, 1)[1]
    return f"{short}:{line}({function})"


def summarise(profile_dir: Path, *, requests: int, top: int = 25) -> dict[str, Any]:
    """Merge every worker's profile: top functions by own time and by cumulative time, time by area.

    Times are per request (milliseconds) when `requests` is the number of requests profiled.
    """
    files = sorted(profile_dir.glob("*.prof"))
    if not files:
        return {"error": "no profile was written"}
    stats = pstats.Stats(str(files[0]))
    for path in files[1:]:
        stats.add(str(path))
    raw = stats.stats  # {(file, line, func): (primitive calls, calls, tottime, cumtime, callers)}
    per_request = 1000.0 / max(requests, 1)
    total_own = sum(entry[2] for entry in raw.values())
    by_area: dict[str, float] = {}
    for (filename, _, function), entry in raw.items():
        area = _area(filename, function)
        by_area[area] = by_area.get(area, 0.0) + entry[2]

    def rows(index: int) -> list[dict[str, Any]]:
        ranked = sorted(raw.items(), key=lambda item: item[1][index], reverse=True)[:top]
        return [
            {
                "function": _label(*key),
                "calls_per_request": round(entry[1] / max(requests, 1), 2),
                "own_ms_per_request": round(entry[2] * per_request, 3),
                "cumulative_ms_per_request": round(entry[3] * per_request, 3),
                "own_share": round(entry[2] / total_own, 3) if total_own else None,
            }
            for key, entry in ranked
        ]

    key_functions = {}
    for label, path, name in KEY_FUNCTIONS:
        matching = [entry for (f, _, func), entry in raw.items() if func == name and f.endswith(path)]
        if matching:
            key_functions[label] = {
                "calls_per_request": round(sum(e[1] for e in matching) / max(requests, 1), 2),
                "cumulative_ms_per_request": round(sum(e[3] for e in matching) * per_request, 3),
            }
    return {
        "requests_profiled": requests,
        "key_functions_ms_per_request": key_functions,
        "profiled_ms_per_request": round(total_own * per_request, 3),
        "by_area_ms_per_request": {
            area: round(seconds * per_request, 3)
            for area, seconds in sorted(by_area.items(), key=lambda item: item[1], reverse=True)
        },
        "top_own_time": rows(2),
        "top_cumulative": rows(3),
    }
