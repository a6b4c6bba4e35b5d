"""The deterministic core: rule matching, windows, evidence ids, confidence and the promotion gate.

Pure functions of recorded facts (signal data as ledgered, rule version content as ledgered, the model
version): no database, no wall clock, no randomness. The services call them when signals arrive;
`incidents.replay` calls them again on what the ledger holds and compares.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from controlplane.kernel.canonical import canonical_bytes
from incidents.models import SEVERITY_RANK

PROMOTE_THRESHOLD_BP = 6000
MODEL_VERSION = "v1.0.0"
BP = 10_000


@dataclass(frozen=True)
class SignalFacts:
    """What detection may look at: the signal as it was ledgered."""

    id: str
    seq: int
    source: str
    service: str
    name: str
    severity: str
    labels: Mapping[str, str]
    status: str
    observed_at: datetime
    suppressed: bool


def matches(rule: Mapping[str, Any], signal: SignalFacts) -> bool:
    """Does a rule version's content (see DetectionRuleVersion.content) match this signal?"""
    match = rule["match"]
    if not rule["enabled"] or signal.status != "firing" or signal.suppressed:
        return False
    if match["service"] and match["service"] != signal.service:
        return False
    if match["name"] and match["name"] != signal.name:
        return False
    if SEVERITY_RANK[signal.severity] < SEVERITY_RANK[match["min_severity"]]:
        return False
    return all(signal.labels.get(key) == value for key, value in match["labels"].items())


def window_of(rule: Mapping[str, Any], trigger: SignalFacts) -> tuple[datetime, datetime]:
    """The window ends at the triggering signal's own time and reaches W seconds back (inclusive)."""
    end = trigger.observed_at
    return end - timedelta(seconds=rule["window_seconds"]), end


def select(
    rule: Mapping[str, Any], trigger: SignalFacts, candidates: Iterable[SignalFacts]
) -> list[SignalFacts] | None:
    """The signals of the trigger's service that the rule matches inside its window, counting only those
    recorded up to the trigger (seq order), or None when fewer than the threshold."""
    if not matches(rule, trigger):
        return None
    start, end = window_of(rule, trigger)
    chosen = [
        s
        for s in candidates
        if s.seq <= trigger.seq
        and s.service == trigger.service
        and start <= s.observed_at <= end
        and matches(rule, s)
    ]
    if trigger.id not in {s.id for s in chosen}:
        chosen.append(trigger)
    return chosen if len(chosen) >= rule["threshold"] else None


def _time(value: datetime) -> str:
    from incidents.normalise import format_time

    return format_time(value)


def evidence_id(*, signal_ids: Iterable[str], rule_version: str, start: datetime, end: datetime) -> str:
    """SHA-256 of canonical {signals: sorted ids, rule_version, window: {start, end}}."""
    body = {
        "signals": sorted(signal_ids),
        "rule_version": rule_version,
        "window": {"start": _time(start), "end": _time(end)},
    }
    return hashlib.sha256(canonical_bytes(body)).hexdigest()


def incident_id(*, service: str, evidence: str) -> str:
    """SHA-256(service + evidence id)."""
    return hashlib.sha256(f"{service}{evidence}".encode()).hexdigest()


# --- confidence ---------------------------------------------------------------------------------------

SEVERITY_BP = {"info": 0, "low": 2500, "medium": 5000, "high": 7500, "critical": 10000}


@dataclass(frozen=True)
class Factor:
    name: str
    value_bp: int
    weight_bp: int

    @property
    def contribution_bp(self) -> int:
        return self.value_bp * self.weight_bp // BP

    def as_dict(self) -> dict[str, int | str]:
        return {
            "name": self.name,
            "value_bp": self.value_bp,
            "weight_bp": self.weight_bp,
            "contribution_bp": self.contribution_bp,
        }


@dataclass(frozen=True)
class Assessment:
    model_version: str
    factors: tuple[Factor, ...]

    @property
    def score_bp(self) -> int:
        return sum(f.contribution_bp for f in self.factors)

    def factors_data(self) -> list[dict[str, int | str]]:
        return [f.as_dict() for f in self.factors]


# Weights of model v1.0.0, in basis points; they sum to 10000.
WEIGHTS_V1 = {
    "threshold_ratio": 3000,
    "severity": 2000,
    "source_diversity": 1000,
    "duration": 1500,
    "rule_precision": 2500,
}


def _assess_v1(rule: Mapping[str, Any], signals: list[SignalFacts]) -> Assessment:
    count, threshold = len(signals), rule["threshold"]
    # Twice the threshold (or more) is full strength; exactly the threshold is half.
    threshold_ratio = min(BP, count * BP // (2 * threshold))
    severity = max(SEVERITY_BP[s.severity] for s in signals)
    # One source is half-strength; two or more independent sources corroborate fully.
    source_diversity = min(BP, len({s.source for s in signals}) * BP // 2)
    # How much of the window the signals span: a sustained problem, not one burst.
    times = [s.observed_at for s in signals]
    span = int((max(times) - min(times)).total_seconds())
    duration = min(BP, span * BP // rule["window_seconds"]) if rule["window_seconds"] else BP
    values = {
        "threshold_ratio": threshold_ratio,
        "severity": severity,
        "source_diversity": source_diversity,
        "duration": duration,
        "rule_precision": min(BP, rule["precision_bp"]),
    }
    return Assessment(
        MODEL_VERSION, tuple(Factor(name, values[name], weight) for name, weight in WEIGHTS_V1.items())
    )


MODELS = {MODEL_VERSION: _assess_v1}


def assess(rule: Mapping[str, Any], signals: list[SignalFacts], *, model_version: str = MODEL_VERSION):
    """The confidence of the evidence under the named model version (replay names the recorded one)."""
    return MODELS[model_version](rule, signals)


@dataclass(frozen=True)
class Promotion:
    decision: str
    score_bp: int
    threshold_bp: int
    reason_codes: tuple[str, ...]


def promote(score_bp: int, *, threshold_bp: int = PROMOTE_THRESHOLD_BP) -> Promotion:
    """PROMOTE at or above the threshold (0.6), else REJECT; the reasons say why."""
    if score_bp >= threshold_bp:
        return Promotion("PROMOTE", score_bp, threshold_bp, ("THRESHOLD_MET", "CONFIDENCE_MET"))
    return Promotion("REJECT", score_bp, threshold_bp, ("THRESHOLD_MET", "CONFIDENCE_BELOW_THRESHOLD"))


def evidence_severity(rule: Mapping[str, Any]) -> str:
    """The severity evidence carries: the one its rule implies."""
    return rule["severity"]
