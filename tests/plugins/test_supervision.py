"""The supervision pass over recorded evidence, tick by tick: transitions ledgered with their evidence,
crash loops and persistent dependency breaks quarantined, degradations reviewed, dependencies ordered,
restarts requested with back-off, heartbeats digested, and every transition re-derived by replay."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.celery import app as celery_app
from controlplane.kernel import signatures, sinks
from plugins.models import ReviewItem
from plugins.replay import replay_verify
from plugins.services import plugins_supervise
from tests.plugins.support import Endpoint, assert_events_match_contracts, later, plugin_events, register

pytestmark = pytest.mark.django_db


@pytest.fixture
def t0():
    """A moment just after the plugins registered now (evidence before a registration does not count)."""
    return timezone.now().replace(microsecond=0) + timedelta(seconds=10)


def transitions(name=None):
    return [
        (e.subject.removeprefix("plugin/"), e.data["from"], e.data["to"], e.reason_codes[0])
        for e in plugin_events(name, "transitioned")
    ]


def test_never_healthy_without_a_heartbeat_then_healthy_then_crashed_when_they_stop(t0):
    runner = register("runner-eu")
    assert plugins_supervise(now=t0)["transitions"] == 0  # unknown stays unknown without evidence
    runner.beat(at=t0)
    plugins_supervise(now=later(t0, 1))
    assert runner.refresh().state == "healthy"
    plugins_supervise(now=later(t0, 30))  # exactly three intervals: not missed yet (late: degraded)
    assert runner.refresh().state == "degraded"
    plugins_supervise(now=later(t0, 31))
    plugin = runner.refresh()
    assert (plugin.state, plugin.state_codes) == ("crashed", ["PLUGIN_HEARTBEAT_MISSED"])
    assert transitions() == [
        ("runner-eu", "unknown", "healthy", "PLUGIN_EVIDENCE_OK"),
        ("runner-eu", "healthy", "degraded", "PLUGIN_HEARTBEAT_LATE"),
        ("runner-eu", "degraded", "crashed", "PLUGIN_HEARTBEAT_MISSED"),
    ]
    crashed = plugin_events("runner-eu", "transitioned")[-1]
    assert crashed.data["evidence"]["last_heartbeat_at"] is not None and crashed.data["tick"].endswith("Z")
    assert_events_match_contracts()
    assert replay_verify().differences == []


def test_a_crash_loop_is_quarantined_at_once_and_raises_a_signal(
    t0, monkeypatch, django_capture_on_commit_callbacks
):
    raised = []
    monkeypatch.setitem(sinks._SINKS, "test", raised.append)
    runner = register("runner-eu")
    for n in range(5):  # the first instance, then four restarts within 300 s: more than the intensity of 3
        runner.beat(at=later(t0, n * 20))
        runner.restart()
    with django_capture_on_commit_callbacks(execute=True):
        plugins_supervise(now=later(t0, 81))
    plugin = runner.refresh()
    assert (plugin.state, plugin.state_codes, plugin.severity) == (
        "quarantined",
        ["PLUGIN_CRASH_LOOP"],
        "high",
    )
    assert len(plugin.quarantine_event) == 64
    [signal] = raised
    assert (signal.tenant, signal.service, signal.severity) == ("acme", "plugin-runner-eu", "high")
    assert len(signal.fingerprint) == 32
    # Quarantine is terminal: fresh heartbeats change nothing until a release.
    runner.beat(at=later(t0, 82))
    assert plugins_supervise(now=later(t0, 83))["transitions"] == 0
    assert runner.refresh().state == "quarantined"
    assert replay_verify().differences == []


def test_three_restarts_in_the_period_are_within_the_intensity(t0):
    runner = register("runner-eu")
    for n in range(4):
        runner.beat(at=later(t0, n * 20))
        runner.restart()
    plugins_supervise(now=later(t0, 61))
    assert runner.refresh().state == "healthy"


def test_a_degraded_check_opens_one_review_item_and_no_quarantine(t0):
    runner = register("runner-eu")
    runner.beat(at=t0, checks={"queue": "degraded", "disk": "ok"})
    plugins_supervise(now=later(t0, 1))
    runner.beat(at=later(t0, 5), checks={"queue": "degraded"})
    plugins_supervise(now=later(t0, 6))
    plugin = runner.refresh()
    assert (plugin.state, plugin.state_codes) == ("degraded", ["PLUGIN_CHECK_DEGRADED"])
    [item] = ReviewItem.objects.all()
    assert (item.code, item.status, item.severity) == ("PLUGIN_CHECK_DEGRADED", "open", "low")
    assert item.evidence["checks"] == {"queue": "degraded", "disk": "ok"} and len(item.evidence_hash) == 64
    assert [e.type for e in plugin_events("runner-eu")][-2:] == [
        "controlplane.plugin.transitioned",
        "controlplane.plugin.review.opened",
    ]
    assert_events_match_contracts()


def test_dependents_are_blocked_in_reverse_order_and_resumed_in_dependency_order(t0):
    db = register("db")
    api = register("api", depends_on=[{"name": "db", "version": ">=1"}])
    web = register("web", depends_on=[{"name": "api"}])
    for p in (db, api, web):
        p.beat(at=t0)
    plugins_supervise(now=later(t0, 1))
    assert [(n, to) for n, _, to, _ in transitions()] == [
        ("db", "healthy"),
        ("api", "healthy"),
        ("web", "healthy"),
    ]
    api.beat(at=later(t0, 25))
    web.beat(at=later(t0, 25))
    plugins_supervise(now=later(t0, 32))  # db missed three intervals
    down = transitions()[3:]
    assert down == [
        ("web", "healthy", "blocked", "PLUGIN_DEPENDENCY_UNHEALTHY"),
        ("api", "healthy", "blocked", "PLUGIN_DEPENDENCY_UNHEALTHY"),
        ("db", "healthy", "crashed", "PLUGIN_HEARTBEAT_MISSED"),
    ]
    assert api.refresh().state_detail == "waiting for db crashed"
    for p in (db, api, web):
        p.beat(at=later(t0, 40))
    plugins_supervise(now=later(t0, 41))
    assert [(n, to) for n, _, to, _ in transitions()[6:]] == [
        ("db", "healthy"),
        ("api", "healthy"),
        ("web", "healthy"),
    ]
    assert replay_verify().differences == []


def test_a_dependency_break_that_persists_is_quarantined(t0, settings):
    settings.CONTROLPLANE_PLUGIN_DEPENDENCY_BREAK_SECONDS = 60
    db = register("db")
    api = register("api", depends_on=[{"name": "db"}])
    api.beat(at=t0)
    plugins_supervise(now=later(t0, 1))
    assert api.refresh().state == "blocked"  # db never heartbeated: unknown is not healthy
    for n in range(1, 8):
        api.beat(at=later(t0, n * 9))
        plugins_supervise(now=later(t0, n * 9 + 1))
    plugin = api.refresh()
    assert (plugin.state, plugin.state_codes) == ("quarantined", ["PLUGIN_DEPENDENCY_BROKEN"])
    assert db.refresh().state == "unknown"
    assert replay_verify().differences == []


def test_a_crashed_plugin_with_a_control_url_is_asked_to_restart_with_back_off(
    t0, settings, django_capture_on_commit_callbacks
):
    settings.CONTROLPLANE_PLUGIN_CONTROL_SECRET = secret = signatures.hmac_secret_generate()
    celery_app.conf.task_always_eager = True
    control = Endpoint()
    try:
        runner = register("runner-eu", control_url=control.url, supervision={"backoff_max_seconds": 30})
        runner.beat(at=t0)
        plugins_supervise(now=later(t0, 1))
        ticks = [31, 35, 41, 60, 61, 91, 121]
        for tick in ticks:
            with django_capture_on_commit_callbacks(execute=True):
                plugins_supervise(now=later(t0, tick))
    finally:
        celery_app.conf.task_always_eager = False
        control.close()
    requests = plugin_events("runner-eu", "restart.requested")
    # 10 s, then 20 s, then capped at 30 s between requests (ticks at 35 and 60 are inside the back-off).
    assert [(e.data["attempt"], e.data["backoff_seconds"]) for e in requests] == [
        (1, 20),
        (2, 30),
        (3, 30),
        (4, 30),
        (5, 30),
    ]
    assert [e.time - t0 for e in requests] == [timedelta(seconds=s) for s in (31, 41, 61, 91, 121)]
    assert len(control.posts) == 5
    headers, body = control.posts[0]
    content = signatures.signed_content(headers["webhook-id"], int(headers["webhook-timestamp"]), body)
    candidates = [s.raw for s in signatures.parse_signatures(headers["webhook-signature"])]
    assert signatures.hmac_matches(secret, content, candidates)
    assert json.loads(body)["action"] == "restart"
    assert_events_match_contracts()


def test_the_back_off_resets_after_ten_minutes_healthy(t0):
    runner = register("runner-eu", control_url="http://127.0.0.1:9/")
    runner.beat(at=t0)
    plugins_supervise(now=later(t0, 1))
    plugins_supervise(now=later(t0, 31))
    assert runner.refresh().backoff_seconds == 20
    moment = 40
    while moment < 40 + 610:
        runner.beat(at=later(t0, moment))
        plugins_supervise(now=later(t0, moment + 1))
        moment += 9
    plugin = runner.refresh()
    assert (plugin.state, plugin.backoff_seconds, plugin.next_restart_at) == ("healthy", 0, None)


def test_probes_of_the_health_url_decide_readiness(t0):
    health = Endpoint(status=200)
    try:
        runner = register("runner-eu", health_url=health.url)
        runner.beat(at=t0)
        plugins_supervise(now=later(t0, 1), probe=False)
        assert runner.refresh().state == "unknown"  # heartbeating, readiness not yet proven
        plugins_supervise(now=later(t0, 2))
        assert runner.refresh().state == "healthy"
        health.status = 503
        plugins_supervise(now=later(t0, 3))
        plugin = runner.refresh()
        assert (plugin.state, plugin.state_codes) == ("degraded", ["PLUGIN_PROBE_FAILED"])
        assert plugin.probes[-1]["status"] == 503
        assert ReviewItem.objects.get().code == "PLUGIN_PROBE_FAILED"
    finally:
        health.close()
    plugins_supervise(now=later(t0, 4))  # the server is gone: refused within the 1 s timeout, still failing
    assert runner.refresh().probes[-1]["ok"] is False


def test_heartbeats_are_digested_onto_the_ledger_periodically(t0, settings):
    settings.CONTROLPLANE_PLUGIN_DIGEST_SECONDS = 60
    runner = register("runner-eu")
    for n in range(6):
        runner.beat(at=later(t0, n * 10))
        plugins_supervise(now=later(t0, n * 10 + 1))
    assert plugin_events("runner-eu", "heartbeats.digested") == []
    runner.beat(at=later(t0, 60))
    plugins_supervise(now=later(t0, 61))
    [digest] = plugin_events("runner-eu", "heartbeats.digested")
    assert (digest.data["count"], digest.data["last_sequence"]) == (7, 7)
    assert runner.refresh().digest_count == 0
    assert_events_match_contracts()


def test_replay_reports_a_state_the_ledger_does_not_give(t0):
    runner = register("runner-eu")
    runner.beat(at=t0)
    plugins_supervise(now=later(t0, 1))
    from plugins.models import Plugin

    Plugin.objects.filter(name="runner-eu").update(state="crashed")
    [difference] = replay_verify().differences
    assert (difference.subject, difference.field, difference.recorded, difference.rebuilt) == (
        "plugin/runner-eu",
        "state",
        "crashed",
        "healthy",
    )
