"""Refused channel deliveries: noted per connection, and ledgered as a periodic digest.

Why a digest and not an event per refusal: a refused delivery is, by definition, one nobody proved came
from the provider. Ledgering each would let anyone who knows a webhook URL append to the one global,
serial chain as fast as they can send — a flood of the authority itself. So each refusal is counted per
(connection, adapter, code) in the cache, the last CONTROLPLANE_CHANNEL_REFUSALS_KEPT are kept for the
connection's admins with their mismatch diagnostics (console: Channels → Deliveries), and the beat task
`channel_refusals_digest` appends one `controlplane.channels.refusals.digested` event per connection
that had refusals since the last digest (counts by adapter and code), signed like every event. As
GitHub's and Slack's own delivery logs do, the record of a refusal is what was refused and why, never
the body. Counting is best effort (a cache outage loses counts, never turns a refusal into an error).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from controlplane.channels.models import ChannelConnection
from controlplane.channels.services.rejections import _count
from controlplane.identity.throttle import CACHE_ERRORS
from controlplane.kernel.canonical import format_time
from controlplane.kernel.reasons import CATALOGUE
from controlplane.kernel.webhooks import webhook_adapters
from controlplane.ledger.services import ledger_append

logger = logging.getLogger(__name__)

DIGEST_EVENT = "controlplane.channels.refusals.digested"
REFUSAL_CODES = tuple(sorted(c for c in CATALOGUE if c.startswith("CHANNEL_") or c == "METHOD_NOT_ALLOWED"))
_RECENT_TTL = 7 * 24 * 3600


def _pending_key(connection_key: str, adapter: str, code: str) -> str:
    return f"channels:refusals-pending:{connection_key}:{adapter}:{code}"


def _recent_key(connection_key: str) -> str:
    return f"channels:refusals-recent:{connection_key}"


def channel_refusal_note(
    *, connection: ChannelConnection, adapter: str, code: str, diagnostic: str = ""
) -> None:
    """Count a refused delivery for the next digest and keep it among the connection's recent refusals."""
    _count(_pending_key(connection.key, adapter, code), 1)
    entry = {
        "at": format_time(timezone.now()),
        "adapter": adapter,
        "code": code,
        "diagnostic": diagnostic[:300],
    }
    try:
        recent = cache.get(_recent_key(connection.key)) or []
        kept = settings.CONTROLPLANE_CHANNEL_REFUSALS_KEPT
        cache.set(_recent_key(connection.key), [entry, *recent][:kept], timeout=_RECENT_TTL)
    except CACHE_ERRORS as exc:
        logger.warning("could not keep a channel refusal for %s (%s)", connection.ref, exc)


def channel_refusals_recent(*, connection: ChannelConnection) -> list[dict[str, Any]]:
    """The connection's last refusals, newest first (for its admins only: diagnostics are in them)."""
    try:
        return list(cache.get(_recent_key(connection.key)) or [])
    except CACHE_ERRORS:
        return []


def _adapters_of(connection: ChannelConnection) -> list[str]:
    return [a.name for a in webhook_adapters() if getattr(a, "provider", None) == connection.provider]


def channel_refusals_digest() -> int:
    """Ledger one digest per connection refused since the last run; returns how many were written.

    The counters are decremented by what was digested (never reset), so a refusal counted while the
    digest runs is in the next one.
    """
    written = 0
    for connection in ChannelConnection.objects.select_related("tenant", "principal"):
        keys = {
            _pending_key(connection.key, adapter, code): (adapter, code)
            for adapter in _adapters_of(connection)
            for code in REFUSAL_CODES
        }
        try:
            values = {k: int(v) for k, v in cache.get_many(list(keys)).items() if v}
        except CACHE_ERRORS as exc:
            logger.warning("refusal digest skipped: the cache is unreachable (%s)", exc)
            return written
        if not values:
            continue
        counts: dict[str, dict[str, int]] = {}
        for key, value in values.items():
            adapter, code = keys[key]
            counts.setdefault(adapter, {})[code] = value
        ledger_append(
            type=DIGEST_EVENT,
            subject=f"channel/{connection.ref}",
            data={"connection": connection.ref, "total": sum(values.values()), "counts": counts},
            tenant=connection.tenant.slug,
            actor="system",
            reason_codes=sorted({code for per in counts.values() for code in per}),
        )
        for key, value in values.items():
            try:
                cache.decr(key, value)
            except (ValueError, *CACHE_ERRORS):
                logger.warning("refusal counter %s could not be decremented", key)
        written += 1
    return written
