"""The supervisor: a pure, deterministic function of a plugin's recorded evidence and the tick time.

`decide(evidence, tick)` reads nothing else (no clock, no database, no network), so the replayer can take
every recorded transition's evidence and tick and re-derive it. Rules, in order (the first that applies):

1. `quarantined` stays quarantined (terminal until released through an approval);
2. incompatible with the runtime's contract versions -> quarantined, PLUGIN_INCOMPATIBLE (high);
3. refused heartbeats (bad signature, unknown key, old sequence) reaching `signature_violations`
   -> quarantined, PLUGIN_SIGNATURE_INVALID (critical);
4. more restarts (instance-id changes) than `restart_intensity` within `restart_period_seconds` (OTP)
   -> quarantined, PLUGIN_CRASH_LOOP (high);
5. no heartbeat since registration or release -> unknown, PLUGIN_NO_EVIDENCE (never dispatchable);
6. the last heartbeat older than `missed_heartbeats` intervals -> crashed, PLUGIN_HEARTBEAT_MISSED;
7. a dependency not healthy -> blocked, PLUGIN_DEPENDENCY_UNHEALTHY; blocked longer than
   `dependency_break_seconds` -> quarantined, PLUGIN_DEPENDENCY_BROKEN (high);
8. a health URL whose last probe failed -> degraded, PLUGIN_PROBE_FAILED; whose answers keep changing
   -> degraded, PLUGIN_PROBE_FLAPPING; not probed yet -> stays unknown (readiness unproven);
9. a self-reported check that is not `ok` -> degraded, PLUGIN_CHECK_DEGRADED;
10. the last heartbeat past 1.5 intervals -> degraded, PLUGIN_HEARTBEAT_LATE;
11. otherwise healthy, PLUGIN_EVIDENCE_OK: there is a heartbeat within 1.5 intervals of the tick.

Degradations (8-10) are low severity: they open a review item rather than quarantining. Restarts: a
crashed plugin with a control URL is asked to restart with Kubernetes-style back-off (initial, doubling,
capped; reset once healthy for `backoff_reset_seconds`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from controlplane.kernel.canonical import format_time


def parse_time(value: str) -> datetime:
    """A time as `format_time` wrote it (UTC, `Z`)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


QUARANTINE = {
    "PLUGIN_INCOMPATIBLE": "high",
    "PLUGIN_SIGNATURE_INVALID": "critical",
    "PLUGIN_CRASH_LOOP": "high",
    "PLUGIN_DEPENDENCY_BROKEN": "high",
}
REVIEWED = {"PLUGIN_PROBE_FAILED", "PLUGIN_PROBE_FLAPPING", "PLUGIN_CHECK_DEGRADED", "PLUGIN_HEARTBEAT_LATE"}


@dataclass(frozen=True)
class Evidence:
    """Everything one decision reads. Times are aware datetimes; `as_data` makes it ledger-ready JSON."""

    state: str
    since: datetime  # evidence before this (registration, release) does not count
    interval: int  # heartbeat interval, seconds
    tuning: dict[str, int]
    last_heartbeat_at: datetime | None = None
    instance: str = ""
    sequence: int = 0
    checks: dict[str, str] = field(default_factory=dict)
    restarts: tuple[datetime, ...] = ()
    violations: int = 0
    incompatible: str = ""
    probe_url: bool = False
    probes: tuple[tuple[datetime, bool], ...] = ()  # oldest first
    dependencies: dict[str, str] = field(default_factory=dict)  # name -> state, as decided this tick
    blocked_since: datetime | None = None
    control_url: bool = False
    backoff_seconds: int = 0
    next_restart_at: datetime | None = None
    healthy_since: datetime | None = None

    def as_data(self) -> dict[str, Any]:
        def t(value: datetime | None) -> str | None:
            return format_time(value) if value is not None else None

        return {
            "state": self.state,
            "since": t(self.since),
            "interval": self.interval,
            "tuning": dict(self.tuning),
            "last_heartbeat_at": t(self.last_heartbeat_at),
            "instance": self.instance,
            "sequence": self.sequence,
            "checks": dict(self.checks),
            "restarts": [t(r) for r in self.restarts],
            "violations": self.violations,
            "incompatible": self.incompatible,
            "probe_url": self.probe_url,
            "probes": [{"at": t(at), "ok": ok} for at, ok in self.probes],
            "dependencies": dict(self.dependencies),
            "blocked_since": t(self.blocked_since),
            "control_url": self.control_url,
            "backoff_seconds": self.backoff_seconds,
            "next_restart_at": t(self.next_restart_at),
            "healthy_since": t(self.healthy_since),
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Evidence:
        def t(value: str | None) -> datetime | None:
            return parse_time(value) if value else None

        return cls(
            state=data["state"],
            since=parse_time(data["since"]),
            interval=data["interval"],
            tuning=dict(data["tuning"]),
            last_heartbeat_at=t(data["last_heartbeat_at"]),
            instance=data["instance"],
            sequence=data["sequence"],
            checks=dict(data["checks"]),
            restarts=tuple(parse_time(r) for r in data["restarts"]),
            violations=data["violations"],
            incompatible=data["incompatible"],
            probe_url=data["probe_url"],
            probes=tuple((parse_time(p["at"]), p["ok"]) for p in data["probes"]),
            dependencies=dict(data["dependencies"]),
            blocked_since=t(data["blocked_since"]),
            control_url=data["control_url"],
            backoff_seconds=data["backoff_seconds"],
            next_restart_at=t(data["next_restart_at"]),
            healthy_since=t(data["healthy_since"]),
        )


@dataclass(frozen=True)
class Decision:
    """The state the evidence gives at the tick, why, and the supervisor's own follow-up state."""

    state: str
    code: str
    detail: str
    severity: str = ""  # of a quarantine (QUARANTINE) or a reviewed degradation ("low")
    restart: bool = False  # ask the plugin's control URL to restart it now
    backoff_seconds: int = 0
    next_restart_at: datetime | None = None
    healthy_since: datetime | None = None
    blocked_since: datetime | None = None

    @property
    def review(self) -> bool:
        return self.code in REVIEWED

    def as_data(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "code": self.code,
            "detail": self.detail,
            "severity": self.severity,
            "restart": self.restart,
            "backoff_seconds": self.backoff_seconds,
            "next_restart_at": format_time(self.next_restart_at) if self.next_restart_at else None,
            "healthy_since": format_time(self.healthy_since) if self.healthy_since else None,
            "blocked_since": format_time(self.blocked_since) if self.blocked_since else None,
        }


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


def decide(evidence: Evidence, tick: datetime) -> Decision:
    """The plugin's state at `tick` from `evidence` alone (see the module docstring for the rules)."""
    e, tune = evidence, evidence.tuning
    base = {"backoff_seconds": e.backoff_seconds, "next_restart_at": e.next_restart_at}

    def quarantine(code: str, detail: str) -> Decision:
        return Decision("quarantined", code, detail, QUARANTINE[code], **base)

    if e.state == "quarantined":
        return Decision("quarantined", "", "quarantined until released", **base)
    if e.incompatible:
        return quarantine("PLUGIN_INCOMPATIBLE", f"incompatible: {e.incompatible}")
    if e.violations >= tune["signature_violations"]:
        return quarantine(
            "PLUGIN_SIGNATURE_INVALID", f"{e.violations} heartbeat(s) refused for their signature"
        )
    window_start = tick - timedelta(seconds=tune["restart_period_seconds"])
    restarts = [r for r in e.restarts if window_start < r <= tick and r >= e.since]
    if len(restarts) > tune["restart_intensity"]:
        return quarantine(
            "PLUGIN_CRASH_LOOP",
            f"{len(restarts)} restarts in {tune['restart_period_seconds']}s "
            f"(intensity {tune['restart_intensity']})",
        )
    beat = e.last_heartbeat_at if e.last_heartbeat_at and e.since <= e.last_heartbeat_at <= tick else None
    if beat is None:
        return Decision("unknown", "PLUGIN_NO_EVIDENCE", "no heartbeat since registration or release", **base)
    age = _seconds(tick - beat)
    if age > e.interval * tune["missed_heartbeats"]:
        return _crashed(e, tick, age)
    down = sorted(name for name, state in e.dependencies.items() if state != "healthy")
    if down:
        blocked_since = e.blocked_since or tick
        if _seconds(tick - blocked_since) > tune["dependency_break_seconds"]:
            return quarantine(
                "PLUGIN_DEPENDENCY_BROKEN",
                f"blocked by {', '.join(down)} for more than {tune['dependency_break_seconds']}s",
            )
        states = ", ".join(f"{name} {e.dependencies[name]}" for name in down)
        return Decision(
            "blocked",
            "PLUGIN_DEPENDENCY_UNHEALTHY",
            f"waiting for {states}",
            blocked_since=blocked_since,
            **base,
        )
    backoff = _backoff_after_healthy(e, tick)
    if e.probe_url:
        probes = [(at, ok) for at, ok in e.probes if at >= e.since and at <= tick]
        if not probes:
            return Decision(
                "unknown", "PLUGIN_NO_EVIDENCE", "heartbeating, health URL not probed yet", **base
            )
        changes = sum(1 for a, b in pairwise(probes) if a[1] != b[1])
        if changes >= tune["flap_changes"]:
            return _degraded(
                "PLUGIN_PROBE_FLAPPING", f"{changes} probe changes in the last {len(probes)}", backoff
            )
        if not probes[-1][1]:
            return _degraded("PLUGIN_PROBE_FAILED", "the last health probe failed", backoff)
    failing = sorted(name for name, status in e.checks.items() if status != "ok")
    if failing:
        listed = ", ".join(f"{name} {e.checks[name]}" for name in failing)
        return _degraded("PLUGIN_CHECK_DEGRADED", f"checks not ok: {listed}", backoff)
    if age * 2 > e.interval * 3:
        return _degraded(
            "PLUGIN_HEARTBEAT_LATE", f"last heartbeat {age}s ago (interval {e.interval}s)", backoff
        )
    return Decision(
        "healthy",
        "PLUGIN_EVIDENCE_OK",
        f"heartbeat {age}s ago",
        healthy_since=e.healthy_since if e.state == "healthy" and e.healthy_since else tick,
        **backoff,
    )


def _degraded(code: str, detail: str, backoff: dict[str, Any]) -> Decision:
    return Decision("degraded", code, detail, "low", **backoff)


def _backoff_after_healthy(e: Evidence, tick: datetime) -> dict[str, Any]:
    """Healthy for `backoff_reset_seconds`: the back-off starts over (Kubernetes resets after 10 min)."""
    if (
        e.state == "healthy"
        and e.healthy_since is not None
        and _seconds(tick - e.healthy_since) >= e.tuning["backoff_reset_seconds"]
    ):
        return {"backoff_seconds": 0, "next_restart_at": None}
    return {"backoff_seconds": e.backoff_seconds, "next_restart_at": e.next_restart_at}


def _crashed(e: Evidence, tick: datetime, age: int) -> Decision:
    tune = e.tuning
    detail = f"no heartbeat for {age}s ({tune['missed_heartbeats']} intervals of {e.interval}s)"
    if not e.control_url or (e.next_restart_at is not None and tick < e.next_restart_at):
        return Decision(
            "crashed",
            "PLUGIN_HEARTBEAT_MISSED",
            detail,
            backoff_seconds=e.backoff_seconds,
            next_restart_at=e.next_restart_at,
        )
    # Ask for a restart now; the next one waits the back-off, which doubles up to its cap.
    wait = tune["backoff_initial_seconds"] if e.backoff_seconds == 0 else e.backoff_seconds
    return Decision(
        "crashed",
        "PLUGIN_HEARTBEAT_MISSED",
        detail,
        restart=True,
        backoff_seconds=min(wait * 2, tune["backoff_max_seconds"]),
        next_restart_at=tick + timedelta(seconds=wait),
    )


__all__ = ["QUARANTINE", "REVIEWED", "Decision", "Evidence", "decide", "format_time", "parse_time"]
