"""Signal ingest: store each normalised signal once, apply silences, then run detection.

`signal_ingest` takes already normalised signals (see `incidents.normalise`; a payload that cannot be
normalised never reaches it) and, in one transaction per delivery:
1. takes the detection lock of each (tenant, service) the delivery touches (`detection_locks_take`):
   deliveries to the same service are serialised from here to their commit, deliveries to different
   services run side by side;
2. reads, in one query each for the whole delivery, which of its signals are stored already and the
   silences that could cover any of them (set-based: no per-alert round trip for either);
3. appends `controlplane.signal.received` with the idempotency key `signal:<id>`: a redelivery of the same
   alert (same tenant, source, fingerprint, status and start) writes nothing and is reported as duplicate;
   records the silence that suppresses it, if any (reason code SUPPRESSED_BY_SILENCE);
4. runs one detection pass per delivery (`detection_triggers`): of its new, firing, unsuppressed signals
   that a rule matches, per service, only the last (and any earlier one outside every later one's
   window) is evaluated (`services.promotion`), its bundle counting the others.

Every ledger append of the delivery is deferred (`controlplane.ledger.batch.ledger_deferred`) and the
whole delivery's events go on the chain together at the end, so the chain's global lock is held only
from that append to the commit instead of through the whole delivery. The detection lock is what keeps
detection exact without it: a signal counts the signals of its service visible to its transaction,
and under the lock those are exactly the signals recorded before it on the chain (docs/incidents.md).
"""

from __future__ import annotations

import bisect
import hashlib
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from controlplane.identity.models import Tenant
from controlplane.ledger.batch import DeferredEvent, ledger_deferred
from controlplane.ledger.chain import PreparedEvent
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.services import ledger_append, ledger_append_prepared
from incidents import detection
from incidents.models import DetectionRuleVersion, Signal, Silence, SilenceStatus
from incidents.normalise import NormalisedSignal, format_time, signal_id
from incidents.services.common import seq_of, seqs_settle
from incidents.services.promotion import Outcome, signal_evaluate
from incidents.services.rules import current_rule_versions

SIGNAL_EVENT = "controlplane.signal.received"


@dataclass
class IngestResult:
    """What one delivery did: every signal (new or duplicate) and what detection made of the new ones."""

    signals: list[Signal] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    cause: LedgerEvent | None = None  # the `cause` event appended first, when one was given

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": len(self.signals) - len(self.duplicates),
            "duplicates": len(self.duplicates),
            "unattributed": sum(1 for s in self.signals if "SIGNAL_UNATTRIBUTED" in s.reason_codes),
            "no_rule_matched": sum(1 for s in self.signals if "SIGNAL_NO_RULE_MATCHED" in s.reason_codes),
            "signals": [
                {
                    "id": s.id,
                    "duplicate": s.id in self.duplicates,
                    "service": s.service,
                    "status": s.status,
                    "severity": s.severity,
                    "suppressed_by": s.suppressed_by_id,
                    "reason_codes": list(s.reason_codes),
                }
                for s in self.signals
            ],
            "evidence": [o.evidence.id for o in self.outcomes],
            "decisions": [
                {"evidence": o.evidence.id, "decision": o.decision.decision, "score_bp": o.decision.score_bp}
                for o in self.outcomes
            ],
            "incidents": sorted({o.incident.id for o in self.outcomes if o.incident is not None}),
        }


# pg_advisory_xact_lock(int, int) namespace of the detection locks ("CPDT"); the chain's lock uses the
# single-bigint form, a key space that does not overlap this one.
_DETECTION_LOCK_CLASS = 0x43504454


def _detection_key(tenant_id: int, service: str) -> int:
    digest = hashlib.sha256(f"{tenant_id}\n{service}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


def detection_locks_take(*, scopes: Iterable[tuple[int, str]]) -> None:
    """Take the transaction-scoped detection lock of each (tenant id, service), in one global order.

    Every transaction that ingests signals takes these before anything else it locks and before the
    chain's lock (the channels' CloudEvents ingest calls this before its own append), so no two
    transactions take them in opposite orders. Two services whose keys collide (32 bits) only share a
    lock. Nothing to do on SQLite (the quickstart), where a write locks the whole database anyway.
    """
    if connection.vendor != "postgresql":
        return
    keys = sorted({_detection_key(tenant_id, service) for tenant_id, service in scopes})
    if not keys:
        return
    # One round trip for every service of the delivery: unnest yields the sorted keys in array order,
    # and each row's lock is taken (waiting as needed) before the next row is produced.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(%s, key)) FROM unnest(%s::integer[]) AS key",
            [_DETECTION_LOCK_CLASS, keys],
        )


def silences_in_force(*, tenant_id: int, signals: list[NormalisedSignal]) -> list[Silence]:
    """The active silences whose range meets any of the delivery's signals' own times, oldest first: one
    query for a whole delivery (each signal is then matched against these in memory)."""
    if not signals:
        return []
    times = [signal.observed_at for signal in signals]
    return list(
        Silence.objects.filter(
            tenant_id=tenant_id,
            status=SilenceStatus.ACTIVE,
            starts_at__lte=max(times),
            ends_at__gt=min(times),
        ).order_by("created_at", "id")
    )


def silence_matching(
    *, tenant_id: int, signal: NormalisedSignal, candidates: list[Silence] | None = None
) -> Silence | None:
    """The first active silence (oldest first) whose matchers and time range cover the signal; among
    `candidates` (from `silences_in_force`) when given, else read.

    The range is compared with the signal's own time, so a silence that has ended stops matching and
    a late delivery of a signal observed during the silence is still suppressed.
    """
    observed = signal.observed_at
    if candidates is None:
        candidates = silences_in_force(tenant_id=tenant_id, signals=[signal])
    for silence in candidates:
        if not silence.starts_at <= observed < silence.ends_at:
            continue
        if silence.match_service and silence.match_service != signal.service:
            continue
        if silence.match_name and silence.match_name != signal.name:
            continue
        if all(signal.labels.get(k) == v for k, v in silence.match_labels.items()):
            return silence
    return None


def signal_event_data(
    sid: str, signal: NormalisedSignal, suppressed_by: str | None, rule_matched: bool | None = None
) -> dict[str, Any]:
    """Everything detection and replay need, as ledgered (no floats, times as strings)."""
    data = {
        "signal": sid,
        "source": signal.source,
        "source_kind": signal.source_kind,
        "service": signal.service,
        "name": signal.name,
        "severity": signal.severity,
        "severity_raw": signal.severity_raw,
        "fingerprint": signal.fingerprint,
        "labels": signal.labels,
        "annotations": signal.annotations,
        "status": signal.status,
        "observed_at": format_time(signal.observed_at),
        "starts_at": format_time(signal.starts_at),
        "ends_at": format_time(signal.ends_at) if signal.ends_at else None,
        "generator_url": signal.generator_url,
        "suppressed_by": suppressed_by,
    }
    if signal.attribution is not None:  # Alertmanager, Grafana: the label mapping version and label
        data["attribution"] = signal.attribution
    data["rule_matched"] = rule_matched
    return data


def signal_codes(signal: NormalisedSignal, *, suppressed: bool, rule_matched: bool | None) -> list[str]:
    """The reason codes a new signal's event and row carry (what the webhook's answer shows)."""
    codes = []
    if signal.unattributed:
        codes.append("SIGNAL_UNATTRIBUTED")
    if suppressed:
        codes.append("SUPPRESSED_BY_SILENCE")
    if rule_matched is False:
        codes.append("SIGNAL_NO_RULE_MATCHED")
    return codes


def rule_matched_by(
    signal: NormalisedSignal, *, suppressed: bool, rules: list[dict[str, Any]]
) -> bool | None:
    """Whether any current rule (its recorded content) matches a firing, unsuppressed, attributed signal;
    None when the question does not arise (resolved, suppressed or unattributed: no rule counts it)."""
    if signal.status != "firing" or suppressed or signal.unattributed:
        return None
    facts = _facts_of(signal)
    return any(detection.matches(content, facts) for content in rules)


def _store_one(
    *,
    tenant: Tenant,
    signal: NormalisedSignal,
    actor: str,
    causation_id: str,
    received_at: datetime,
    rules: list[dict[str, Any]],
    known: dict[str, Signal],
    silences: list[Silence],
) -> tuple[Signal, bool, LedgerEvent | DeferredEvent | None]:
    sid = signal_id(tenant=tenant.slug, signal=signal)
    existing = known.get(sid)
    if existing is not None:
        return existing, True, None
    silence = silence_matching(tenant_id=tenant.pk, signal=signal, candidates=silences)
    matched = rule_matched_by(signal, suppressed=silence is not None, rules=rules)
    codes = signal_codes(signal, suppressed=silence is not None, rule_matched=matched)
    event_id = uuid.uuid4().hex
    event = ledger_append(
        type=SIGNAL_EVENT,
        subject=f"signal/{sid}",
        data=signal_event_data(sid, signal, silence.id if silence else None, matched),
        tenant=tenant.slug,
        actor=actor,
        time=signal.observed_at,
        reason_codes=codes,
        causation_id=causation_id,
        idempotency_key=f"signal:{sid}",
        event_id=event_id,
    )
    if event.id != event_id:  # already on the chain (the detection lock makes this a backstop)
        return Signal.objects.get(pk=sid), True, event
    row = Signal.objects.create(
        id=sid,
        tenant=tenant,
        seq=seq_of(event),  # provisional while the event is deferred; settled after the block
        source=signal.source,
        source_kind=signal.source_kind,
        service=signal.service,
        name=signal.name,
        severity=signal.severity,
        severity_raw=signal.severity_raw,
        fingerprint=signal.fingerprint,
        labels=signal.labels,
        annotations=signal.annotations,
        status=signal.status,
        observed_at=signal.observed_at,
        starts_at=signal.starts_at,
        ends_at=signal.ends_at,
        generator_url=signal.generator_url,
        received_at=received_at,
        suppressed_by=silence,
        reason_codes=codes,
    )
    known[sid] = row  # the same alert again later in this delivery is a duplicate
    return row, False, event


def detection_triggers(
    *,
    signals: list[NormalisedSignal],
    tenant: Tenant,
    known: set[str],
    silences: list[Silence],
    rules: list[DetectionRuleVersion],
    contents: list[dict[str, Any]],
) -> list[list[DetectionRuleVersion]]:
    """One detection pass per delivery: per signal, the rule versions it is evaluated under.

    Of a delivery's new, firing, unsuppressed, attributed signals that a rule matches, grouped by service,
    only those that no later one of the group counts are evaluated: the last, and any earlier one outside
    every later one's window. Evaluated as the last, a signal's bundle holds every earlier match of the
    delivery inside its window (they are stored before it), so each signal of the delivery is counted by
    one evaluation instead of each making a bundle of its own (and its three or four events). Replay
    judges each bundle by its recorded trigger, as before: the signals recorded up to it in its window.
    """
    seen = set(known)
    groups: dict[tuple[int, str], list[tuple[int, datetime]]] = defaultdict(list)
    for index, signal in enumerate(signals):
        sid = signal_id(tenant=tenant.slug, signal=signal)
        if sid in seen:
            continue
        seen.add(sid)
        if signal.status != "firing" or signal.unattributed:
            continue
        if silence_matching(tenant_id=tenant.pk, signal=signal, candidates=silences) is not None:
            continue
        facts = _facts_of(signal)
        for number, content in enumerate(contents):
            if detection.matches(content, facts):
                groups[(number, signal.service)].append((index, signal.observed_at))
    chosen: list[list[DetectionRuleVersion]] = [[] for _ in signals]
    for (number, _service), members in groups.items():
        window = timedelta(seconds=contents[number]["window_seconds"])
        later: list[datetime] = []  # observed times of the group's later members, sorted
        for index, observed in reversed(members):
            # counted by a later member t when t.observed - W <= observed <= t.observed
            at = bisect.bisect_left(later, observed)
            if not (at < len(later) and later[at] <= observed + window):
                chosen[index].append(rules[number])
            bisect.insort(later, observed)
    for rule_versions in chosen:  # each signal's rules in the order ingest evaluates them
        rule_versions.sort(key=rules.index)
    return chosen


def _facts_of(signal: NormalisedSignal) -> detection.SignalFacts:
    return detection.SignalFacts(
        id="",
        seq=0,
        source=signal.source,
        service=signal.service,
        name=signal.name,
        severity=signal.severity,
        labels=signal.labels,
        status=signal.status,
        observed_at=signal.observed_at,
        suppressed=False,
    )


@transaction.atomic
def signal_ingest(
    *,
    tenant: Tenant,
    signals: list[NormalisedSignal],
    actor: str,
    causation_id: str = "",
    received_at: datetime | None = None,
    cause: PreparedEvent | None = None,
) -> IngestResult:
    """Store a delivery's signals (each once) and run detection on the new, firing, unsuppressed ones.

    `cause`: the event that carried the signals (a CloudEvent's own, controlplane/channels), appended
    first with them, so the chain's lock is taken after the incident rows detection locks, as in every
    incident transition; its id is the causation id. It must be new (its delivery was checked).
    """
    received_at = received_at or timezone.now()
    if cause is not None:
        causation_id = cause.fields["id"]
    result = IngestResult()
    rules = current_rule_versions(tenant=tenant)
    contents = [rv.content() for rv in rules]
    detection_locks_take(scopes=[(tenant.pk, signal.service) for signal in signals])
    # Set-based, under the detection locks: which of the delivery's signals are stored already (one
    # query), and the silences that could cover any of them (one query).
    ids = {signal_id(tenant=tenant.slug, signal=signal) for signal in signals}
    known = {row.pk: row for row in Signal.objects.filter(pk__in=ids)}
    silences = silences_in_force(tenant_id=tenant.pk, signals=signals)
    triggers = detection_triggers(
        signals=signals, tenant=tenant, known=set(known), silences=silences, rules=rules, contents=contents
    )
    stored: list[tuple[Signal, LedgerEvent | DeferredEvent]] = []
    # check_keys=False: under the detection lock, a signal without a row is new, so its key is too
    with ledger_deferred(check_keys=False):
        cause_event = ledger_append_prepared([cause])[0] if cause is not None else None
        for index, signal in enumerate(signals):
            row, duplicate, event = _store_one(
                tenant=tenant,
                signal=signal,
                actor=actor,
                causation_id=causation_id,
                received_at=received_at,
                rules=contents,
                known=known,
                silences=silences,
            )
            result.signals.append(row)
            if duplicate:
                result.duplicates.append(row.id)
                continue
            stored.append((row, event))
            if row.status == "firing" and row.suppressed_by_id is None and row.service and triggers[index]:
                result.outcomes.extend(
                    signal_evaluate(signal=row, causation_id=event.id, rules=triggers[index])
                )
    # The delivery's events are on the chain now (and its lock held to the commit): the real seqs.
    seqs_settle([*stored, *((o.evidence, o.evidence_event) for o in result.outcomes)])
    if cause_event is not None:
        result.cause = cause_event.event if isinstance(cause_event, DeferredEvent) else cause_event
    return result
