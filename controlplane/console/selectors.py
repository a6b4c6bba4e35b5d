"""Reads behind the console pages: the signed-in principal, the dashboard's status, ledger pages.

Ledger reads are restricted like the API's: a principal sees its own tenant's events and the
tenant-less (system) ones, never another tenant's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db.models import QuerySet

from controlplane.channels.selectors import RejectionCount, rejection_counts
from controlplane.identity.models import Principal
from controlplane.ledger.models import GENESIS_HASH, Checkpoint, LedgerEvent, VerificationRun
from controlplane.ledger.verify import ROW_COLUMNS, KeyInfo, load_keys, verify_rows

LEDGER_PAGE_SIZE = 25
RECENT_EVENTS = 10
SYSTEM_TENANT = "-"  # the filter value that selects tenant-less (system) events


def visible_events(*, principal: Principal) -> QuerySet[LedgerEvent]:
    """Events the principal may read: its tenant's and the system's (tenant-less)."""
    return LedgerEvent.objects.filter(tenant__in=[principal.tenant.slug, ""])


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


@dataclass(frozen=True)
class EventCheck:
    """One verification step as the detail page lists it: "passed", "failed" or "not reached"."""

    label: str
    outcome: str


@dataclass(frozen=True)
class EventVerification:
    ok: bool
    code: str
    detail: str
    checks: list[EventCheck]
    key_status: str
    linked: bool  # False when the predecessor is missing, so the link could not be checked


# The steps `verify_rows` runs, in order, and the reason codes each one reports.
_CHECK_STEPS: tuple[tuple[str, frozenset[str]], ...] = (
    ("prev_hash is the hash of the event before", frozenset({"LEDGER_SEQ_GAP", "LEDGER_CHAIN_BROKEN"})),
    (
        "hash = SHA-256(prev_hash || canonical), and every column matches the canonical bytes",
        frozenset({"LEDGER_HASH_MISMATCH"}),
    ),
    (
        "signing key is known, unrevoked and valid at this seq",
        frozenset({"LEDGER_KEY_UNKNOWN", "LEDGER_KEY_REVOKED", "LEDGER_KEY_NOT_VALID"}),
    ),
    ("Ed25519 signature over the hash verifies", frozenset({"LEDGER_SIGNATURE_INVALID"})),
)


def event_get(*, principal: Principal, seq: int) -> LedgerEvent | None:
    return visible_events(principal=principal).filter(seq=seq).first()


def event_verify(
    *,
    event: LedgerEvent,
    prev_hashes: dict[int, str] | None = None,
    keys: dict[str, KeyInfo] | None = None,
) -> EventVerification:
    """Verify one stored event with the chain verifier itself (`verify_rows` over a one-row iterable).

    Verifying many events (a trace), pass the predecessors' hashes (seq -> hash) and the loaded keys, so
    each event costs no query.
    """
    row = {name: getattr(event, name) for name in ROW_COLUMNS}
    for name in ("reason_codes", "data", "provenance"):
        row[name] = orjson.dumps(row[name])  # the verifier reads JSON columns as their stored text
    if event.seq == 1:
        expected_prev: str | None = GENESIS_HASH
    elif prev_hashes is not None:
        expected_prev = prev_hashes.get(event.seq - 1)
    else:
        expected_prev = LedgerEvent.objects.filter(seq=event.seq - 1).values_list("hash", flat=True).first()
    keys = load_keys() if keys is None else keys
    failure = verify_rows([row], keys, expected_seq=event.seq, expected_prev_hash=expected_prev).failure
    failed_step = next(
        (i for i, (_, codes) in enumerate(_CHECK_STEPS) if failure and failure.code in codes), None
    )
    checks = []
    for i, (label, _) in enumerate(_CHECK_STEPS):
        if failed_step is not None and i > failed_step:
            outcome = "not reached"
        elif i == failed_step:
            outcome = "failed"
        elif i == 0 and expected_prev is None:
            outcome = "not checked: the previous event is missing"
        else:
            outcome = "passed"
        checks.append(EventCheck(label, outcome))
    key = _key_status(event.key_id, keys)
    return EventVerification(
        ok=failure is None,
        code=failure.code if failure else "",
        detail=failure.detail if failure else "",
        checks=checks,
        key_status=key,
        linked=expected_prev is not None,
    )


def _key_status(key_id: str, keys: dict[str, KeyInfo]) -> str:
    """The key's status as the trust store holds it (active, retired, standby, revoked, or unknown)."""
    key = keys.get(key_id)
    if key is None:
        return "unknown"
    if key.revoked:
        return "revoked"
    if key.valid_from_seq is None:
        return "standby"
    return "active" if key.valid_until_seq is None else "retired"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def visible_tenant_choices(*, principal: Principal) -> list[tuple[str, str]]:
    return [("", "any"), (principal.tenant.slug, principal.tenant.slug), (SYSTEM_TENANT, "system")]
