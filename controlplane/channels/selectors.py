"""Reads for the ingest path, the API, the console and the CLI."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import QuerySet

from controlplane.channels.models import (
    ChangeSignal,
    ChannelConnection,
    ChannelMessage,
    Producer,
    ProducerKey,
)
from controlplane.channels.services import (
    REJECTION_CODES,
    UNKNOWN_PRODUCER,
    rejection_flush,
    rejection_key,
    webhook_rejection_key,
)
from controlplane.identity.models import Principal, Tenant
from controlplane.identity.throttle import CACHE_ERRORS
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.reasons import CATALOGUE

logger = logging.getLogger(__name__)

_KEY_COLUMNS = (
    "id",
    "producer_id",
    "key_id",
    "kind",
    "secret",
    "public_key",
    "created_at",
    "valid_from",
    "valid_until",
    "revoked_at",
)
# One round trip, written as SQL because it runs for every delivery: compiling the equivalent ORM query
# costs about twenty times the query itself. The LEFT JOIN finds a producer that has no keys too.
_PRODUCER_AND_KEYS_SQL = """
    SELECT p.id, p.tenant_id, p.name, p.created_at,
           k.id, k.producer_id, k.key_id, k.kind, k.secret, k.public_key, k.created_at, k.valid_from,
           k.valid_until, k.revoked_at
    FROM channels_producer p
    LEFT JOIN channels_producerkey k ON k.producer_id = p.id
    WHERE p.principal_id = %s
    ORDER BY k.valid_from, k.key_id
"""


def producer_for_principal(*, principal: Principal) -> tuple[Producer, list[ProducerKey]]:
    """The producer a principal authenticates as, with all its keys, in one query.

    The principal must come with its tenant loaded (authentication does that). Refused with
    PRODUCER_UNKNOWN when the principal is not registered as a producer.
    """
    with connection.cursor() as cursor:
        cursor.execute(_PRODUCER_AND_KEYS_SQL, [principal.pk])
        rows = cursor.fetchall()
    if not rows:
        raise ControlPlaneError("PRODUCER_UNKNOWN", f"{principal.ref} is not a registered event producer")
    producer_id, tenant_id, name, created_at = rows[0][:4]
    producer = Producer.from_db(
        connection.alias,
        ["id", "tenant_id", "name", "principal_id", "created_at"],
        [producer_id, tenant_id, name, principal.pk, created_at],
    )
    producer.principal = principal
    if tenant_id == principal.tenant_id:
        producer.tenant = principal.tenant
    keys = []
    for row in rows:
        if row[4] is None:  # the LEFT JOIN's row for a producer without keys
            continue
        key = ProducerKey.from_db(connection.alias, list(_KEY_COLUMNS), list(row[4:]))
        key.producer = producer
        keys.append(key)
    return producer, keys


def producer_list(*, tenant: Tenant | None = None) -> QuerySet[Producer]:
    """Producers (of one tenant, or all) with their tenant, principal and keys loaded."""
    producers = Producer.objects.select_related("tenant", "principal__tenant").prefetch_related("keys")
    return producers.filter(tenant=tenant) if tenant is not None else producers


@dataclass(frozen=True)
class RejectionCount:
    producer: str  # `<tenant>/<name>`, or "unknown" for refusals before the producer was known
    code: str
    count: int


def _cached_counts(keys: list[str]) -> dict[str, Any]:
    """The counters in the cache; none while the cache server is unreachable (best effort, as counting
    is: the dashboard and the API still answer when Redis is down)."""
    try:
        return cache.get_many(keys)
    except CACHE_ERRORS as exc:
        logger.warning("refusal counters unavailable: the cache is unreachable (%s)", exc)
        return {}


def rejection_counts(*, tenant: Tenant | None = None) -> list[RejectionCount]:
    """Non-zero ingest refusal counters, per producer (of `tenant`, or all) and "unknown", then code.

    One cache round trip however many producers and codes there are (after writing this process's
    deferred counts).
    """
    rejection_flush()
    producers = Producer.objects.select_related("tenant").order_by("tenant__slug", "name")
    if tenant is not None:
        producers = producers.filter(tenant=tenant)
    labels = [(str(p.pk), p.ref) for p in producers] + [(UNKNOWN_PRODUCER, UNKNOWN_PRODUCER)]
    keys = {rejection_key(label, code): (ref, code) for label, ref in labels for code in REJECTION_CODES}
    values = _cached_counts(list(keys))
    return [
        RejectionCount(producer=ref, code=code, count=int(values[key]))
        for key, (ref, code) in keys.items()
        if values.get(key)
    ]


def webhook_rejection_counts(*, adapter: str) -> dict[str, int]:
    """Non-zero refusal counters of the webhook adapter `adapter`, per code (one cache round trip)."""
    keys = {webhook_rejection_key(adapter, code): code for code in CATALOGUE}
    values = _cached_counts(list(keys))
    return {code: int(values[key]) for key, code in keys.items() if values.get(key)}


# --- the console's channel pages ----------------------------------------------------------------------


def connection_list(*, tenant: Tenant) -> list[Any]:
    """The tenant's channel connections, with their webhook URLs and recent refusals (for its admins)."""
    from controlplane.channels.services.connections import connection_webhook_urls
    from controlplane.channels.services.refusals import channel_refusals_recent

    connections = list(ChannelConnection.objects.select_related("tenant").filter(tenant=tenant))
    return [
        {
            "connection": c,
            "urls": connection_webhook_urls(connection=c),
            "refusals": channel_refusals_recent(connection=c),
        }
        for c in connections
    ]


def outbox_recent(*, tenant: Tenant, limit: int = 50) -> QuerySet[Any]:
    """The tenant's last outbound messages, newest first."""
    return ChannelMessage.objects.select_related("connection").filter(tenant=tenant).order_by("-id")[:limit]


def deliveries_recent(*, tenant: Tenant, limit: int = 50) -> QuerySet[Any]:
    """The tenant's last accepted chat deliveries and refusal digests, from the ledger (newest first)."""
    from controlplane.ledger.models import LedgerEvent

    return (
        LedgerEvent.objects.filter(
            tenant=tenant.slug,
            type__in=["controlplane.channels.message.received", "controlplane.channels.refusals.digested"],
        )
        .only("seq", "type", "time", "data", "reason_codes")
        .order_by("-seq")[:limit]
    )


def changes_before(
    *, tenant_id: int, until: datetime, service: str = "", limit: int = 20
) -> list[ChangeSignal]:
    """The tenant's changes in CONTROLPLANE_CHANGE_WINDOW_SECONDS before `until` (and up to it), the
    named service's first, newest first within each."""
    since = until - timedelta(seconds=settings.CONTROLPLANE_CHANGE_WINDOW_SECONDS)
    changes = list(
        ChangeSignal.objects.filter(
            tenant_id=tenant_id, occurred_at__gte=since, occurred_at__lte=until
        ).order_by("-occurred_at", "-id")[: limit * 2]
    )
    changes.sort(key=lambda c: c.service != service)  # stable: newest first within each group
    return changes[:limit]
