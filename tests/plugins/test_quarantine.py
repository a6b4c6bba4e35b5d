"""Hybrid quarantine: reviews decided by people with a reason; release is an approval bound to the
quarantine's evidence with the policy profile's quorum; a released plugin needs fresh evidence; a crash loop
becomes one deduplicated signal in the incident pipeline."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.utils import timezone

from approvals import services as approvals
from approvals.models import ApprovalRequest
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from controlplane.policy import services as policy
from incidents.models import Signal
from plugins import services
from plugins.models import ReviewItem
from plugins.replay import replay_verify
from tests.identity.factories import PrincipalFactory, TenantFactory
from tests.plugins.support import assert_events_match_contracts, later, plugin_events, register

pytestmark = pytest.mark.django_db


@pytest.fixture
def t0():
    return timezone.now().replace(microsecond=0) + timedelta(seconds=10)


@pytest.fixture
def people():
    acme = TenantFactory(slug="acme")
    caps = ["plugins.read", "plugins.manage", "plugins.review", "approvals.decide"]
    return [
        PrincipalFactory(tenant=acme, name=n, human=True, capabilities=caps)
        for n in ("alice", "bob", "carol")
    ]


def degraded(t0, name="runner-eu"):
    runner = register(name)
    runner.beat(at=t0, checks={"queue": "degraded"})
    services.plugins_supervise(now=later(t0, 1))
    return runner, ReviewItem.objects.get(plugin__name=name)


def crash_loop(t0, runner):
    for n in range(5):
        runner.beat(at=later(t0, n * 20))
        runner.restart()
    services.plugins_supervise(now=later(t0, 81))


def test_a_reviewer_quarantines_a_degraded_plugin_with_a_reason(t0, people):
    alice = people[0]
    runner, item = degraded(t0)
    decided = services.review_decide(
        item_id=item.pk, actor=alice, decision="quarantine", reason="flaky queue"
    )
    assert (decided.status, decided.decided_by, decided.reason) == (
        "quarantined",
        "acme/alice",
        "flaky queue",
    )
    plugin = runner.refresh()
    assert (plugin.state, plugin.state_codes, plugin.severity) == (
        "quarantined",
        ["PLUGIN_QUARANTINED_BY_REVIEW"],
        "low",
    )
    assert [e.type for e in plugin_events("runner-eu")][-2:] == [
        "controlplane.plugin.quarantined",
        "controlplane.plugin.review.decided",
    ]
    assert_events_match_contracts()
    assert replay_verify().differences == []


def test_dismissing_needs_a_reason_and_a_person_and_decides_once(t0, people):
    alice = people[0]
    runner, item = degraded(t0)
    before = LedgerEvent.objects.count()
    for actor, reason, code in [
        (alice, "  ", "PLUGIN_REASON_REQUIRED"),
        (PrincipalFactory(tenant=alice.tenant, name="bot", agent=True), "ok", "APPROVAL_APPROVER_NOT_HUMAN"),
        (PrincipalFactory(tenant=TenantFactory(slug="globex"), name="eve", human=True), "ok", "NOT_FOUND"),
    ]:
        with pytest.raises(ControlPlaneError) as refused:
            services.review_decide(item_id=item.pk, actor=actor, decision="dismiss", reason=reason)
        assert refused.value.code == code
    assert LedgerEvent.objects.count() == before and ReviewItem.objects.get().status == "open"
    services.review_decide(item_id=item.pk, actor=alice, decision="dismiss", reason="known, fixing")
    assert runner.refresh().state == "degraded"  # dismissed: not quarantined, still honest about it
    with pytest.raises(ControlPlaneError) as refused:
        services.review_decide(item_id=item.pk, actor=alice, decision="quarantine", reason="again")
    assert refused.value.code == "PLUGIN_REVIEW_NOT_OPEN"


def test_bulk_decisions_report_each_item(t0, people):
    _, first = degraded(t0, "one")
    _, second = degraded(t0, "two")
    outcomes = services.review_decide_bulk(
        item_ids=[first.pk, second.pk, 999999], actor=people[0], decision="dismiss", reason="drill"
    )
    assert outcomes[:2] == [
        {"item": first.pk, "status": "dismissed"},
        {"item": second.pk, "status": "dismissed"},
    ]
    assert outcomes[2]["code"] == "NOT_FOUND"


def test_release_is_an_approval_with_the_profiles_quorum_and_needs_fresh_evidence(t0, people):
    alice, bob, carol = people
    policy.profile_bootstrap(environment="dev")
    runner = register("runner-eu")
    runner.beat(at=t0)
    body = runner.body()
    with pytest.raises(ControlPlaneError):  # a forged heartbeat: critical, quarantined at once
        services.heartbeat_ingest(
            name=runner.name,
            principal=runner.principal,
            headers=runner.headers(body, key=Ed25519PrivateKey.generate(), at=int(later(t0, 2).timestamp())),
            body=body,
            at=later(t0, 2),
        )
    assert runner.refresh().severity == "critical"
    approval = services.plugin_release_request(
        name="runner-eu", actor=alice, reason="key rotated on the host"
    )
    assert (approval.subject_kind, approval.subject_id, approval.quorum) == (
        "plugins.release",
        "runner-eu",
        2,
    )
    assert approval.summary["codes"] == ["PLUGIN_SIGNATURE_INVALID"]
    with pytest.raises(ControlPlaneError) as refused:  # nobody approves their own request
        approvals.approval_decide(
            approval=approval,
            actor=alice,
            decision="approve",
            reason="ok",
            content_hash=approval.content_hash,
        )
    assert refused.value.code == "APPROVAL_SELF_APPROVAL"
    approvals.approval_decide(
        approval=approval, actor=bob, decision="approve", reason="seen", content_hash=approval.content_hash
    )
    assert runner.refresh().state == "quarantined"  # one of two: the quorum is not met
    approvals.approval_decide(
        approval=approval,
        actor=carol,
        decision="approve",
        reason="seen",
        content_hash=approval.content_hash,
        at=later(t0, 10),
    )
    plugin = runner.refresh()
    assert (plugin.state, plugin.state_codes, plugin.violations) == ("unknown", ["PLUGIN_RELEASED"], 0)
    released = plugin_events("runner-eu", "released")[-1]
    assert (
        released.actor == f"approval/{approval.pk}"
        and released.data["content_sha256"] == approval.content_hash
    )
    services.plugins_supervise(now=later(t0, 11))
    assert runner.refresh().state == "unknown"  # the old heartbeat predates the release
    runner.beat(at=later(t0, 12))
    services.plugins_supervise(now=later(t0, 13))
    assert runner.refresh().state == "healthy"
    assert_events_match_contracts()
    assert replay_verify().differences == []


def test_a_release_is_refused_for_a_plugin_that_is_not_quarantined_or_without_a_policy(t0, people):
    register("runner-eu")
    with pytest.raises(ControlPlaneError) as refused:
        services.plugin_release_request(name="runner-eu", actor=people[0], reason="why")
    assert refused.value.code == "PLUGIN_NOT_QUARANTINED"
    services.plugin_quarantine(name="runner-eu", actor=people[0], reason="drill")
    with pytest.raises(ControlPlaneError) as refused:  # no active profile: fail closed
        services.plugin_release_request(name="runner-eu", actor=people[0], reason="why")
    assert refused.value.code == "POLICY_MISSING"
    assert ApprovalRequest.objects.count() == 0


def test_a_release_bound_to_other_evidence_releases_nothing(t0, people):
    alice, bob, _ = people
    policy.profile_bootstrap(environment="dev")
    runner = register("runner-eu")
    services.plugin_quarantine(name="runner-eu", actor=alice, reason="drill", severity="medium")
    approval = services.plugin_release_request(name="runner-eu", actor=alice, reason="over")
    assert approval.quorum == 1
    from plugins.models import Plugin

    Plugin.objects.filter(name="runner-eu").update(state_detail="something else was quarantined")
    with pytest.raises(ControlPlaneError) as refused:
        approvals.approval_decide(
            approval=approval, actor=bob, decision="approve", reason="ok", content_hash=approval.content_hash
        )
    assert refused.value.code == "PLUGIN_RELEASE_EVIDENCE_CHANGED"
    assert runner.refresh().state == "quarantined"


def test_a_crash_loop_becomes_one_signal_in_the_incident_pipeline(t0, django_capture_on_commit_callbacks):
    runner = register("runner-eu")
    with django_capture_on_commit_callbacks(execute=True):
        crash_loop(t0, runner)
    [signal] = Signal.objects.all()
    assert (signal.tenant.slug, signal.service, signal.name, signal.severity) == (
        "acme",
        "plugin-runner-eu",
        "PluginCrashLoop",
        "high",
    )
    from plugins.services.supervision import evidence_of
    from plugins.signals import crash_loop_signal

    # The same loop raised again (a retry) is the same signal: deduplicated, not noise.
    plugin = runner.refresh()
    with django_capture_on_commit_callbacks(execute=True):
        crash_loop_signal(plugin=plugin, evidence=evidence_of(plugin, {}), at=later(t0, 90))
    assert Signal.objects.count() == 1
