"""The supervisor is a pure function of evidence and tick: properties over random heartbeat histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from plugins.manifest import TUNING_DEFAULTS
from plugins.supervisor import Evidence, decide

BASE = datetime(2026, 1, 1, tzinfo=UTC)
STATES = ["unknown", "healthy", "degraded", "crashed", "blocked", "quarantined"]
seconds = st.integers(min_value=0, max_value=3600)


@st.composite
def histories(draw):
    interval = draw(st.integers(min_value=1, max_value=120))
    since = BASE + timedelta(seconds=draw(seconds))
    beats = sorted(draw(st.lists(seconds, max_size=8)))
    tick = BASE + timedelta(seconds=draw(st.integers(min_value=0, max_value=7200)))
    last = BASE + timedelta(seconds=beats[-1]) if beats else None
    tuning = {**TUNING_DEFAULTS, "dependency_break_seconds": 600}
    evidence = Evidence(
        state=draw(st.sampled_from(STATES)),
        since=since,
        interval=interval,
        tuning=tuning,
        last_heartbeat_at=last,
        instance="i",
        sequence=len(beats),
        checks=draw(
            st.dictionaries(st.sampled_from(["a", "b"]), st.sampled_from(["ok", "degraded", "failing"]))
        ),
        restarts=tuple(BASE + timedelta(seconds=s) for s in draw(st.lists(seconds, max_size=6))),
        violations=draw(st.integers(min_value=0, max_value=2)),
        incompatible=draw(st.sampled_from(["", "runtime contract >=2"])),
        probe_url=draw(st.booleans()),
        probes=tuple(
            (BASE + timedelta(seconds=s), ok)
            for s, ok in draw(st.lists(st.tuples(seconds, st.booleans()), max_size=6))
        ),
        dependencies=draw(st.dictionaries(st.sampled_from(["db", "queue"]), st.sampled_from(STATES))),
        blocked_since=draw(st.none() | st.just(since)),
        control_url=draw(st.booleans()),
        backoff_seconds=draw(st.sampled_from([0, 10, 20, 300])),
        next_restart_at=draw(st.none() | st.just(tick)),
        healthy_since=draw(st.none() | st.just(since)),
    )
    return evidence, tick


@given(histories())
def test_never_healthy_without_a_heartbeat_in_the_window(history):
    evidence, tick = history
    decision = decide(evidence, tick)
    if decision.state == "healthy":
        beat = evidence.last_heartbeat_at
        assert beat is not None and evidence.since <= beat <= tick
        assert (tick - beat).total_seconds() * 2 <= evidence.interval * 3
        assert all(state == "healthy" for state in evidence.dependencies.values())
        assert evidence.violations < evidence.tuning["signature_violations"] and not evidence.incompatible


@given(histories())
def test_the_same_evidence_gives_the_same_decision_after_a_trip_through_the_ledger(history):
    evidence, tick = history
    assert decide(Evidence.from_data(evidence.as_data()), tick) == decide(evidence, tick)


@given(histories())
def test_quarantine_is_terminal(history):
    evidence, tick = history
    if evidence.state == "quarantined":
        assert decide(evidence, tick).state == "quarantined"
