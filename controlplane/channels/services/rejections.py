"""Counters of refusals, kept in the cache: the ingest endpoint's per (producer or "unknown", code), and
the webhook view's per (adapter, code).

Best effort by design: an operational signal, not a record (the ledger records what was accepted), so a
cache outage is logged and never turns a refusal into a server error. Read by
`controlplane.channels.selectors.rejection_counts` and `webhook_rejection_counts`.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from django.core.cache import cache

from controlplane.channels.models import Producer

logger = logging.getLogger(__name__)

UNKNOWN_PRODUCER = "unknown"
# Every code the ingest endpoint can answer with; each refusal is counted per (producer, code).
REJECTION_CODES = (
    "AUTH_REQUIRED",
    "AUTH_INVALID_TOKEN",
    "AUTH_THROTTLED",
    "CAPABILITY_MISSING",
    "METHOD_NOT_ALLOWED",
    "PRODUCER_UNKNOWN",
    "SIGNATURE_MISSING",
    "SIGNATURE_INVALID",
    "KEY_UNKNOWN",
    "KEY_REVOKED",
    "KEY_EXPIRED",
    "STALE_TIMESTAMP",
    "MALFORMED_EVENT",
    "EVENT_TYPE_RESERVED",
    "DUPLICATE_EVENT",
    "INGEST_OVERLOADED",
    "LEDGER_WRITE_FAILED",
    "LEDGER_KEY_UNAVAILABLE",
)


def rejection_key(label: str, code: str) -> str:
    return f"channels:ingest-rejections:{label}:{code}"


def rejection_record(*, producer: Producer | None, code: str, deferred: bool = False) -> None:
    """Count one refusal of the ingest endpoint per (producer or "unknown", code) in the cache (Redis).

    Counting is best effort: a cache outage is logged and never turns a refusal into a server error.
    `deferred` counts in this process and writes to the cache within a second (refusals under overload
    must cost next to nothing); the counters' readers flush this process's pending counts first.
    """
    if code not in REJECTION_CODES:
        return
    key = rejection_key(str(producer.pk) if producer is not None else UNKNOWN_PRODUCER, code)
    if deferred:
        with _pending_lock:
            _pending[key] += 1
            global _flush_timer
            if _flush_timer is None:
                _flush_timer = threading.Timer(1.0, rejection_flush)
                _flush_timer.daemon = True
                _flush_timer.start()
        return
    _count(key, 1)


def _count(key: str, delta: int) -> None:
    try:
        try:
            cache.incr(key, delta)
        except ValueError:
            cache.add(key, 0, timeout=None)
            cache.incr(key, delta)
    except Exception:
        logger.warning("could not count ingest rejections %s", key, exc_info=True)


_pending: Counter[str] = Counter()
_pending_lock = threading.Lock()
_flush_timer: threading.Timer | None = None


def rejection_flush() -> None:
    """Write this process's deferred refusal counts to the cache."""
    global _flush_timer
    with _pending_lock:
        pending = dict(_pending)
        _pending.clear()
        _flush_timer = None
    for key, delta in pending.items():
        _count(key, delta)


def webhook_rejection_key(adapter: str, code: str) -> str:
    return f"channels:webhook-rejections:{adapter}:{code}"


def webhook_rejection_record(*, adapter: str, code: str) -> None:
    """Count one refusal of the webhook view per (adapter, code) in the cache; best effort, as above."""
    _count(webhook_rejection_key(adapter, code), 1)
