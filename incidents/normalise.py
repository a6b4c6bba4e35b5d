"""From what monitoring sends to one signal shape. Pure: no database, no clock.

Every source's payload becomes a list of `NormalisedSignal`s, or a `SignalRefused` naming the field at
fault (`alerts[2].status`, `startsAt` ...). The whole delivery is refused when any of its alerts cannot be
normalised: nothing of it is written. An Alertmanager or Grafana alert whose labels name no service (none
of the tenant's label mapping, `service | app | job` by default) is not refused: it becomes a signal with
an empty service, stored as unattributed (SIGNAL_UNATTRIBUTED), so one label never loses a delivery.
The severity table and the default label mapping are the documented contract (docs/incidents.md);
change them only together with that page.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controlplane.kernel.canonical import canonical_bytes
from controlplane.kernel.errors import ControlPlaneError

# Lower-cased incoming severity -> canonical severity. Anything else (and a missing severity) maps to
# DEFAULT_SEVERITY; the raw value is kept on the signal (`severity_raw`).
SEVERITY_TABLE: dict[str, str] = {
    **dict.fromkeys(
        ("critical", "crit", "fatal", "emergency", "emerg", "alert", "disaster", "p1", "sev1", "sev-1"),
        "critical",
    ),
    **dict.fromkeys(("high", "error", "err", "major", "page", "p2", "sev2", "sev-2"), "high"),
    **dict.fromkeys(("medium", "warning", "warn", "moderate", "average", "p3", "sev3", "sev-3"), "medium"),
    **dict.fromkeys(("low", "minor", "p4", "sev4", "sev-4"), "low"),
    **dict.fromkeys(
        ("info", "informational", "information", "notice", "debug", "none", "ok", "p5", "sev5", "sev-5"),
        "info",
    ),
}
DEFAULT_SEVERITY = "medium"
# Labels that name the service, tried in order; and the label that names the alert.
SERVICE_LABELS = ("service", "app", "job")
NAME_LABEL = "alertname"
SEVERITY_LABELS = ("severity", "priority")
# Alertmanager and Grafana send this for endsAt while an alert fires.
ZERO_TIME = "0001-01-01T00:00:00Z"
MAX_ALERTS = 1000
MAX_TEXT = 200


class SignalRefused(ControlPlaneError):
    """A payload that cannot be normalised: SIGNAL_INVALID with the field at fault."""

    def __init__(self, field_path: str, detail: str):
        super().__init__("SIGNAL_INVALID", f"{field_path}: {detail}", extra={"field": field_path})
        self.field = field_path


@dataclass(frozen=True)
class NormalisedSignal:
    """The one shape every source becomes."""

    source: str
    source_kind: str
    service: str
    name: str
    severity: str
    severity_raw: str
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    status: str
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # Alertmanager and Grafana: the label mapping version that attributed it and the label that named the
    # service ("" when none did: unattributed). None for sources that name the service themselves.
    attribution: dict[str, Any] | None = None

    @property
    def unattributed(self) -> bool:
        return not self.service

    @property
    def observed_at(self) -> datetime:
        """The signal's own time: when it started firing, or when it resolved."""
        return self.ends_at if self.status == "resolved" and self.ends_at else self.starts_at


def severity_of(raw: str | None) -> str:
    if raw is None:
        return DEFAULT_SEVERITY
    return SEVERITY_TABLE.get(str(raw).strip().lower(), DEFAULT_SEVERITY)


def format_time(value: datetime) -> str:
    """UTC, microseconds, `Z`: the form ids and ledger events use."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: Any, field_path: str, *, allow_zero: bool = False) -> datetime | None:
    """An RFC 3339 time (Go writes up to nanoseconds); the zero time is None when allowed."""
    if not isinstance(value, str) or not value.strip():
        raise SignalRefused(field_path, "an RFC 3339 time is required")
    text = value.strip()
    if text.startswith("0001-01-01T00:00:00"):
        if allow_zero:
            return None
        raise SignalRefused(field_path, "the zero time is not a valid time here")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python parses at most microseconds: cut a longer fraction (Go's nanoseconds) to six digits.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise SignalRefused(field_path, f"{value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise SignalRefused(field_path, "the time needs a UTC offset")
    return parsed.astimezone(UTC)


def _text(value: Any, field_path: str, *, required: bool = True, limit: int = MAX_TEXT) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise SignalRefused(field_path, "is required")
        return ""
    if not isinstance(value, str):
        raise SignalRefused(field_path, "must be a string")
    value = value.strip()
    if len(value) > limit:
        raise SignalRefused(field_path, f"is longer than {limit} characters")
    return value


def _string_map(value: Any, field_path: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SignalRefused(field_path, "must be an object of strings")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str):
            raise SignalRefused(f"{field_path}.{key}", "must be a string")
        out[str(key)] = item
    return out


def _status(value: Any, field_path: str) -> str:
    if value not in ("firing", "resolved"):
        raise SignalRefused(field_path, "must be 'firing' or 'resolved'")
    return value


def labels_fingerprint(name: str, service: str, labels: dict[str, str]) -> str:
    """A fingerprint for sources that send none: SHA-256 of the canonical identity, 16 hex digits."""
    body = canonical_bytes({"name": name, "service": service, "labels": labels})
    return hashlib.sha256(body).hexdigest()[:16]


def _from_labels(labels: dict[str, str], names: tuple[str, ...]) -> str:
    return attribute(labels, names)[0]


def attribute(labels: dict[str, str], names: tuple[str, ...] | list[str]) -> tuple[str, str]:
    """(value, label): the first of `names` that is a non-empty label, or ("", "") when none is."""
    for name in names:
        if labels.get(name, "").strip():
            return labels[name].strip(), name
    return "", ""


@dataclass(frozen=True)
class LabelMap:
    """Which labels name the service, tried in order, and the version of the mapping that says so."""

    version: int = 0
    service_labels: tuple[str, ...] = SERVICE_LABELS


def _alert(
    alert: Any,
    at: str,
    *,
    source: str,
    source_kind: str,
    common_labels: dict[str, str],
    mapping: LabelMap = LabelMap(),
) -> NormalisedSignal:
    """One alert of an Alertmanager (v4) or Grafana (v1) webhook."""
    if not isinstance(alert, dict):
        raise SignalRefused(at, "must be an object")
    labels = {**common_labels, **_string_map(alert.get("labels"), f"{at}.labels")}
    annotations = _string_map(alert.get("annotations"), f"{at}.annotations")
    status = _status(alert.get("status"), f"{at}.status")
    name = _text(labels.get(NAME_LABEL), f"{at}.labels.{NAME_LABEL}")
    service, label = attribute(labels, mapping.service_labels)
    if len(service) > MAX_TEXT:
        raise SignalRefused(f"{at}.labels.{label}", f"is longer than {MAX_TEXT} characters")
    raw_severity = _from_labels(labels, SEVERITY_LABELS)
    starts_at = parse_time(alert.get("startsAt"), f"{at}.startsAt")
    ends_at = parse_time(alert.get("endsAt", ZERO_TIME), f"{at}.endsAt", allow_zero=True)
    if status == "resolved" and ends_at is None:
        raise SignalRefused(f"{at}.endsAt", "a resolved alert needs its end time")
    fingerprint = _text(alert.get("fingerprint"), f"{at}.fingerprint", required=False, limit=128)
    return NormalisedSignal(
        source=source,
        source_kind=source_kind,
        service=service,
        name=name,
        severity=severity_of(raw_severity or None),
        severity_raw=raw_severity[:64],
        fingerprint=fingerprint or labels_fingerprint(name, service, labels),
        labels=labels,
        annotations=annotations,
        status=status,
        starts_at=starts_at,
        ends_at=ends_at,
        generator_url=_text(alert.get("generatorURL"), f"{at}.generatorURL", required=False, limit=2000),
        attribution={"mapping_version": mapping.version, "label": label},
    )


def _alerts(
    payload: Any, version: str, *, source: str, source_kind: str, mapping: LabelMap
) -> list[NormalisedSignal]:
    if not isinstance(payload, dict):
        raise SignalRefused("(body)", "must be a JSON object")
    if str(payload.get("version", "")) != version:
        raise SignalRefused("version", f"only webhook payload version {version} is understood")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise SignalRefused("alerts", "must be a non-empty list")
    if len(alerts) > MAX_ALERTS:
        raise SignalRefused("alerts", f"holds more than {MAX_ALERTS} alerts")
    # commonLabels are, by definition, on every alert already; they are not merged in again.
    return [
        _alert(
            alert,
            f"alerts[{index}]",
            source=source,
            source_kind=source_kind,
            common_labels={},
            mapping=mapping,
        )
        for index, alert in enumerate(alerts)
    ]


def from_alertmanager(payload: Any, *, source: str, mapping: LabelMap = LabelMap()) -> list[NormalisedSignal]:
    """Prometheus Alertmanager's webhook, payload version 4."""
    signals = _alerts(payload, "4", source=source, source_kind="alertmanager", mapping=mapping)
    if not isinstance(payload.get("groupKey"), str):
        raise SignalRefused("groupKey", "is required (a string)")
    return signals


def from_grafana(payload: Any, *, source: str, mapping: LabelMap = LabelMap()) -> list[NormalisedSignal]:
    """Grafana Alerting's webhook contact point, payload version 1."""
    return _alerts(payload, "1", source=source, source_kind="grafana", mapping=mapping)


def from_generic(payload: Any, *, source_kind: str = "generic", at: str = "") -> NormalisedSignal:
    """The generic JSON shape (also the data of a CloudEvent of type `io.controlplane.signal`):

    {"source", "service", "name", "severity"?, "fingerprint"?, "labels"?, "annotations"?,
     "status"? ("firing"), "starts_at", "ends_at"? (required when resolved), "generator_url"?}
    """
    prefix = f"{at}." if at else ""
    if not isinstance(payload, dict):
        raise SignalRefused(at or "(body)", "must be a JSON object")
    labels = _string_map(payload.get("labels"), f"{prefix}labels")
    source = _text(payload.get("source"), f"{prefix}source")
    service = _text(payload.get("service"), f"{prefix}service")
    name = _text(payload.get("name"), f"{prefix}name")
    raw = payload.get("severity")
    if raw is not None and not isinstance(raw, str):
        raise SignalRefused(f"{prefix}severity", "must be a string")
    status = _status(payload.get("status", "firing"), f"{prefix}status")
    starts_at = parse_time(payload.get("starts_at"), f"{prefix}starts_at")
    ends_raw = payload.get("ends_at")
    ends_at = None if ends_raw is None else parse_time(ends_raw, f"{prefix}ends_at", allow_zero=True)
    if status == "resolved" and ends_at is None:
        raise SignalRefused(f"{prefix}ends_at", "a resolved signal needs its end time")
    fingerprint = _text(payload.get("fingerprint"), f"{prefix}fingerprint", required=False, limit=128)
    return NormalisedSignal(
        source=source,
        source_kind=source_kind,
        service=service,
        name=name,
        severity=severity_of(raw),
        severity_raw=(raw or "").strip()[:64],
        fingerprint=fingerprint or labels_fingerprint(name, service, labels),
        labels=labels,
        annotations=_string_map(payload.get("annotations"), f"{prefix}annotations"),
        status=status,
        starts_at=starts_at,
        ends_at=ends_at,
        generator_url=_text(
            payload.get("generator_url"), f"{prefix}generator_url", required=False, limit=2000
        ),
    )


def signal_id(*, tenant: str, signal: NormalisedSignal) -> str:
    """The dedup key's hash: tenant, source, fingerprint, status and start. A retry maps to the same id."""
    key = {
        "tenant": tenant,
        "source": signal.source,
        "fingerprint": signal.fingerprint,
        "status": signal.status,
        "starts_at": format_time(signal.starts_at),
    }
    return hashlib.sha256(canonical_bytes(key)).hexdigest()
