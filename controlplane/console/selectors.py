"""Reads behind the console shell's pages: the dashboard's ledger panels and the ledger explorer.

Ledger reads are restricted like the API's: a principal sees its own tenant's events and the
tenant-less (system) ones, never another tenant's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet

from controlplane.channels.selectors import RejectionCount, rejection_counts
from controlplane.identity.models import Principal
from controlplane.ledger.models import Checkpoint, LedgerEvent, VerificationRun

LEDGER_PAGE_SIZE = 25
RECENT_EVENTS = 10
SYSTEM_TENANT = "-"  # the filter value that selects tenant-less (system) events


def visible_events(*, principal: Principal) -> QuerySet[LedgerEvent]:
    """Events the principal may read: its tenant's, and the tenant-less (installation-wide) ones only with
    `platform.ledger.read` (sign-in failures and platform acts are not any tenant's to read)."""
    tenants = [principal.tenant.slug]
    if principal.has_capability("platform.ledger.read"):
        tenants.append("")
    return LedgerEvent.objects.filter(tenant__in=tenants)


# --- Dashboard -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainStatus:
    """What the dashboard's integrity panel shows."""

    head: dict[str, Any] | None
    checkpoint: Checkpoint | None
    verification: VerificationRun | None


def chain_status() -> ChainStatus:
    """The chain head (global: its seq and hash reveal no tenant's data), the last checkpoint and run."""
    head = LedgerEvent.objects.order_by("-seq").values("seq", "hash", "time").first()
    return ChainStatus(
        head=head,
        checkpoint=Checkpoint.objects.order_by("-seq").first(),
        verification=VerificationRun.objects.order_by("-started_at").first(),
    )


def recent_events(*, principal: Principal, limit: int = RECENT_EVENTS) -> list[LedgerEvent]:
    return list(
        visible_events(principal=principal)
        .only("seq", "time", "type", "subject", "tenant", "actor", "reason_codes")
        .order_by("-seq")[:limit]
    )


def ingest_rejections(*, principal: Principal) -> list[RejectionCount]:
    """Ingest refusal counters (producer, code, count) of the principal's tenant and of unknown senders."""
    return rejection_counts(tenant=principal.tenant)


# --- Ledger explorer -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerFilters:
    """Validated explorer filters; empty strings and None mean "any"."""

    type_prefix: str = ""
    subject: str = ""
    tenant: str = ""
    trace: str = ""
    seq_from: int | None = None
    seq_to: int | None = None


@dataclass
class LedgerPage:
    events: list[LedgerEvent] = field(default_factory=list)
    older_than: int | None = None  # cursor for the "Older" link, when there are older events
    newer_than: int | None = None  # cursor for the "Newer" link, when there are newer events


def ledger_events(*, principal: Principal, filters: LedgerFilters) -> QuerySet[LedgerEvent]:
    events = visible_events(principal=principal)
    if filters.type_prefix:
        events = events.filter(type__startswith=filters.type_prefix)
    if filters.subject:
        events = events.filter(subject=filters.subject)
    if filters.tenant:
        events = events.filter(tenant="" if filters.tenant == SYSTEM_TENANT else filters.tenant)
    if filters.trace:
        events = events.filter(trace_id=filters.trace)
    if filters.seq_from is not None:
        events = events.filter(seq__gte=filters.seq_from)
    if filters.seq_to is not None:
        events = events.filter(seq__lte=filters.seq_to)
    return events


def ledger_page(
    *,
    principal: Principal,
    filters: LedgerFilters,
    before: int | None = None,
    after: int | None = None,
    size: int = LEDGER_PAGE_SIZE,
) -> LedgerPage:
    """One page of matching events, newest first, by seq cursor (`before` or `after` a seq).

    Two queries whatever the chain's length: the page itself (one row more than shown, to learn whether
    its far side has more) and an existence check for its near side.
    """
    matching = ledger_events(principal=principal, filters=filters).defer("canonical", "provenance")
    has_newer = has_older = False
    if after is not None:
        rows = list(matching.filter(seq__gt=after).order_by("seq")[: size + 1])
        has_newer = len(rows) > size
        events = list(reversed(rows[:size]))
        has_older = matching.filter(seq__lte=after).exists()
    else:
        page = matching if before is None else matching.filter(seq__lt=before)
        rows = list(page.order_by("-seq")[: size + 1])
        has_older = len(rows) > size
        events = rows[:size]
        has_newer = before is not None and matching.filter(seq__gte=before).exists()
    # An empty page (paged past the end, or the filters changed) still links back to where events are.
    older_than = (events[-1].seq if events else (after or 0) + 1) if has_older else None
    newer_than = (events[0].seq if events else (before or 0) - 1) if has_newer else None
    return LedgerPage(events=events, older_than=older_than, newer_than=newer_than)


# --- One event -------------------------------------------------------------------------------------


def event_get(*, principal: Principal, seq: int) -> LedgerEvent | None:
    return visible_events(principal=principal).filter(seq=seq).first()


def visible_tenant_choices(*, principal: Principal) -> list[tuple[str, str]]:
    return [("", "any"), (principal.tenant.slug, principal.tenant.slug), (SYSTEM_TENANT, "system")]
