"""The learning loop through its services, on a chain written by the real action flow: outcomes from the
ledger, labels with separation of duties, every anti-gaming pattern (blocked or queued), the fidelity gate,
a deterministic and replayable report, earned autonomy as a proposal and never for high tiers."""

from __future__ import annotations

import copy
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from approvals import services as approvals
from approvals.models import ApprovalRequest
from controlplane.celery import app as celery_app
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.services import ledger_append
from controlplane.policy import services as policy
from controlplane.runtime import services as runtime
from controlplane.runtime.models import Execution, StepRun
from learning import profile as learning_profile
from learning import services
from learning.derive import outcome_id
from learning.models import CalibrationReport, Finding, Outcome, Proposal
from learning.replay import replay_reports
from tests.identity.factories import PrincipalFactory, TenantFactory, token_for

pytestmark = pytest.mark.django_db

ASSIST = {
    "tiers": {
        tier: {"mode": "assist", "quorum": 1, "approval_timeout_seconds": 600}
        for tier in ("low", "medium", "high")
    }
    | {"critical": {"mode": "assist", "quorum": 2, "approval_timeout_seconds": 600}},
    "rules": [],
    "deny": [],
}


@pytest.fixture(autouse=True)
def _eager_tasks():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def world():
    tenant = TenantFactory(slug="acme")
    policy.profile_bootstrap(environment="dev")
    return {
        "tenant": tenant,
        "agent": PrincipalFactory(tenant=tenant, name="deploy-bot", agent=True),
        "alice": PrincipalFactory(tenant=tenant, name="alice", human=True, capabilities=["approvals.decide"]),
        "bob": PrincipalFactory(tenant=tenant, name="bob", human=True, capabilities=["learning.review"]),
    }


def echo(agent, key, capture, message="hi"):
    with capture(execute=True):
        intent = runtime.intent_submit(
            principal=agent,
            draft={
                "goal": "echo",
                "steps": [{"key": "a", "action": "noop.echo", "inputs": {"message": message}}],
            },
            idempotency_key=key,
        )
    return Execution.objects.get(intent=intent)


def approved_echo(agent, approver, key, capture, message="hi"):
    with capture(execute=True):
        intent = runtime.intent_submit(
            principal=agent,
            draft={
                "goal": "echo",
                "steps": [{"key": "a", "action": "noop.echo", "inputs": {"message": message}}],
            },
            idempotency_key=key,
        )
    run = StepRun.objects.get(execution__intent=intent)
    request = ApprovalRequest.objects.get(pk=run.approval_id)
    with capture(execute=True):
        approvals.approval_decide(
            approval=request,
            actor=approver,
            decision="approve",
            reason="looks right",
            content_hash=request.content_hash,
        )
    return Execution.objects.get(intent=intent)


def assist():
    created = policy.profile_create(
        name="assist", environment="dev", content=copy.deepcopy(ASSIST), actor="test"
    )
    policy.profile_activate(profile=created.profile, actor="test", reason="approvals for everything")


def codes(tenant):
    return sorted(Finding.objects.filter(tenant=tenant).values_list("code", flat=True))


# --- outcomes from the ledger --------------------------------------------------------------------------


def test_every_finished_execution_becomes_an_outcome_with_what_the_ledger_proves(
    world, django_capture_on_commit_callbacks
):
    done = echo(world["agent"], "k1", django_capture_on_commit_callbacks)
    assist()
    approved = approved_echo(world["agent"], world["alice"], "k2", django_capture_on_commit_callbacks)
    services.learning_sync(tenant=world["tenant"])
    plain, vetted = Outcome.objects.get(subject=done.id), Outcome.objects.get(subject=approved.id)
    assert (plain.kind, plain.result, plain.actor) == ("execution", "completed", "acme/deploy-bot")
    assert plain.facts["trace_complete"] and not plain.facts["human_approved"]
    assert plain.facts["actions"] == ["noop.echo"] and plain.facts["fidelity"] == "live"
    assert vetted.facts["human_approved"] and vetted.facts["approvers"] == ["acme/alice"]
    # only the agent vouches for the plain one: its provenance is halved; the approved one keeps all of it
    assert (plain.provenance_bp, vetted.provenance_bp) == (5_000, 10_000)
    assert (plain.reward_bp, vetted.reward_bp) == (5_000, 10_000)
    assert not Finding.objects.exists()  # an honest, quiet agent: nothing flagged


def test_a_running_execution_is_not_an_outcome(world, django_capture_on_commit_callbacks):
    assist()
    with django_capture_on_commit_callbacks(execute=True):
        runtime.intent_submit(
            principal=world["agent"],
            draft={
                "goal": "wait",
                "steps": [{"key": "a", "action": "noop.echo", "inputs": {"message": "x"}}],
            },
            idempotency_key="waiting",
        )
    services.learning_sync(tenant=world["tenant"])
    assert not Outcome.objects.exists()  # offline: no mid-flight adaptation


# --- labels ---------------------------------------------------------------------------------------------


def test_labels_are_ledgered_once_per_reviewer_and_never_by_the_actor_or_an_approver(
    world, django_capture_on_commit_callbacks
):
    assist()
    execution = approved_echo(world["agent"], world["alice"], "k1", django_capture_on_commit_callbacks)
    services.learning_sync(tenant=world["tenant"])
    oid = outcome_id("execution", execution.id)
    carol = PrincipalFactory(
        tenant=world["tenant"], name="carol", human=True, capabilities=["learning.review"]
    )
    services.label_record(reviewer=world["bob"], outcome=oid, label="success", reason="the change held")
    event = LedgerEvent.objects.get(type="controlplane.learning.label.recorded")
    assert (event.actor, event.data["label"]) == ("acme/bob", "success")
    before = LedgerEvent.objects.count()
    refusals = []
    for reviewer, label in [(world["bob"], "failure"), (carol, "nonsense")]:
        with pytest.raises(ControlPlaneError) as caught:
            services.label_record(reviewer=reviewer, outcome=oid, label=label, reason="r")
        refusals.append(caught.value.code)
    assert refusals == ["LEARNING_LABEL_DUPLICATE", "LEARNING_LABEL_INVALID"]
    with pytest.raises(ControlPlaneError) as caught:
        services.label_record(reviewer=world["agent"], outcome=oid, label="success", reason="me")
    assert caught.value.code == "LEARNING_REVIEWER_NOT_HUMAN"
    assert LedgerEvent.objects.count() == before
    # alice approved it: she may not label it, whatever grants she holds
    from controlplane.identity import services as identity

    identity.grant_add(principal=world["alice"], capability="learning.review", actor="test")
    before = LedgerEvent.objects.count()
    with pytest.raises(ControlPlaneError) as caught:
        services.label_record(reviewer=world["alice"], outcome=oid, label="success", reason="mine")
    assert caught.value.code == "LEARNING_SELF_LABEL" and LedgerEvent.objects.count() == before


def test_tenant_b_cannot_label_or_decide_tenant_as_outcomes_and_findings(
    world, django_capture_on_commit_callbacks
):
    execution = echo(world["agent"], "k1", django_capture_on_commit_callbacks)
    services.claim_record(
        principal=world["agent"], execution=execution.id, result="success"
    )  # self-confirmed
    finding = Finding.objects.get()
    other = TenantFactory(slug="other")
    mallory = PrincipalFactory(tenant=other, name="mallory", human=True, capabilities=["learning.review"])
    before = LedgerEvent.objects.count()
    with pytest.raises(ControlPlaneError) as caught:
        services.label_record(
            reviewer=mallory, outcome=outcome_id("execution", execution.id), label="failure", reason="r"
        )
    assert caught.value.code == "NOT_FOUND"
    with pytest.raises(ControlPlaneError) as caught:
        services.finding_decide(
            actor=mallory, fingerprint=finding.fingerprint, status="dismissed", reason="r"
        )
    assert caught.value.code == "NOT_FOUND" and LedgerEvent.objects.count() == before
    services.learning_sync(tenant=other)
    assert not Outcome.objects.filter(tenant=other).exists()


# --- anti-gaming: hard blocks ---------------------------------------------------------------------------


def test_a_claim_of_an_execution_the_ledger_does_not_hold_is_blocked(world):
    found = services.claim_record(principal=world["agent"], execution="f" * 64, result="success")
    assert [f.code for f in found] == ["LEARNING_ABUSE_NO_TRACE"]
    event = LedgerEvent.objects.get(type="controlplane.learning.finding.recorded")
    assert event.reason_codes == ["LEARNING_ABUSE_NO_TRACE"] and event.data["severity"] == "block"


def test_success_vouched_for_only_by_the_agent_is_blocked_and_leaves_the_rewards(
    world, django_capture_on_commit_callbacks
):
    execution = echo(world["agent"], "k1", django_capture_on_commit_callbacks)
    found = services.claim_record(principal=world["agent"], execution=execution.id, result="success")
    assert [f.code for f in found] == ["LEARNING_ABUSE_SELF_CONFIRMED"]
    outcome = Outcome.objects.get(subject=execution.id)
    assert outcome.excluded and outcome.reward_bp == 0


def test_the_same_outcome_claimed_twice_is_blocked_as_replayed(world, django_capture_on_commit_callbacks):
    assist()
    execution = approved_echo(world["agent"], world["alice"], "k1", django_capture_on_commit_callbacks)
    assert services.claim_record(principal=world["agent"], execution=execution.id, result="success") == []
    again = services.claim_record(principal=world["agent"], execution=execution.id, result="success")
    assert [f.code for f in again] == ["LEARNING_ABUSE_REPLAYED"]


def test_an_action_touching_the_evaluators_data_is_blocked(world, django_capture_on_commit_callbacks):
    echo(world["agent"], "k1", django_capture_on_commit_callbacks, message="DELETE FROM learning_outcome")
    services.learning_sync(tenant=world["tenant"])
    assert codes(world["tenant"]) == ["LEARNING_ABUSE_EVALUATOR_TAMPERING"]
    assert Outcome.objects.get().excluded


# --- anti-gaming: review ----------------------------------------------------------------------------------


def test_an_approver_stamping_everything_within_seconds_is_queued_for_review_and_penalised(
    world, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setitem(learning_profile.DEFAULT_PROFILE, "rubber_stamp", {"seconds": 10, "min_decisions": 3})
    assist()
    for n in range(3):
        approved_echo(
            world["agent"], world["alice"], f"k{n}", django_capture_on_commit_callbacks, message=f"m{n}"
        )
    services.learning_sync(tenant=world["tenant"])
    finding = Finding.objects.get()
    assert (finding.code, finding.severity, finding.principal) == (
        "LEARNING_REVIEW_RUBBER_STAMP",
        "review",
        "acme/alice",
    )
    # a person decides: dismissed, the penalty lifts
    services.finding_decide(
        actor=world["bob"], fingerprint=finding.fingerprint, status="dismissed", reason="on-call drill"
    )
    services.learning_sync(tenant=world["tenant"])
    assert Finding.objects.get().status == "dismissed"
    assert LedgerEvent.objects.filter(type="controlplane.learning.finding.decided").count() == 1


def test_a_burst_of_trivial_successes_is_queued_but_an_honest_busy_agent_is_not(
    world, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setitem(
        learning_profile.DEFAULT_PROFILE, "success_burst", {"count": 4, "window_seconds": 300}
    )
    honest = PrincipalFactory(tenant=world["tenant"], name="honest-bot", agent=True)
    for n in range(3):  # busy, but under the burst size
        echo(honest, f"h{n}", django_capture_on_commit_callbacks, message=f"h{n}")
    for n in range(4):
        echo(world["agent"], f"k{n}", django_capture_on_commit_callbacks, message=f"m{n}")
    services.learning_sync(tenant=world["tenant"])
    flagged = Finding.objects.get()
    assert (flagged.code, flagged.principal) == ("LEARNING_REVIEW_SYNTHETIC_SUCCESS", "acme/deploy-bot")
    gamed = Outcome.objects.filter(actor="acme/deploy-bot")
    assert all(o.penalised and not o.excluded for o in gamed)
    assert not any(o.penalised for o in Outcome.objects.filter(actor="acme/honest-bot"))


# --- the fidelity gate ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fidelity", "reward", "feeds"), [("live", 10_000, True), ("degraded", 5_000, False), ("demo", 0, False)]
)
def test_demo_and_degraded_outcomes_are_penalised_and_never_feed_an_update(fidelity, reward, feeds):
    from learning.derive import OutcomeFacts

    facts = OutcomeFacts(
        id="x",
        kind="execution",
        subject="s",
        tenant="acme",
        actor="acme/a",
        result="completed",
        finished_at="2026-01-01T00:00:00+00:00",
        actions=["noop.echo"],
        tier="low",
        human_approved=True,
        trace_complete=True,
        fidelity=fidelity,
    )
    scored = services.reward_of(facts, {})
    assert (scored["reward_bp"], scored["feeds_updates"]) == (reward, feeds)


# --- calibration: deterministic, recorded, replayable ------------------------------------------------------


def _incident(tenant, incident, score_bp, rule="high-latency"):
    evidence = incident[::-1]
    ledger_append(
        type="controlplane.promotion.decided",
        subject=f"evidence/{evidence}",
        tenant=tenant,
        data={"evidence": evidence, "decision": "PROMOTE", "score_bp": score_bp, "threshold_bp": 5000},
    )
    ledger_append(
        type="controlplane.incident.opened",
        subject=f"incident/{incident}",
        tenant=tenant,
        data={"incident": incident, "service": "checkout", "rule": rule, "evidence": evidence},
    )
    ledger_append(
        type="controlplane.incident.closed",
        subject=f"incident/{incident}",
        tenant=tenant,
        data={"incident": incident},
    )
    return outcome_id("incident", incident)


def test_the_report_is_deterministic_recorded_once_and_replayable(world, django_capture_on_commit_callbacks):
    echo(world["agent"], "k1", django_capture_on_commit_callbacks)
    labelled = [
        (f"{n:064x}", score, label)
        for n, (score, label) in enumerate(
            [
                (9000, "true_incident"),
                (9000, "false_positive"),
                (2000, "false_positive"),
                (6000, "true_incident"),
            ],
            start=1,
        )
    ]
    for incident, score, _ in labelled:
        _incident("acme", incident, score)
    services.learning_sync(tenant=world["tenant"])
    for incident, _, label in labelled:
        services.label_record(
            reviewer=world["bob"], outcome=outcome_id("incident", incident), label=label, reason="postmortem"
        )
    before = LedgerEvent.objects.count()
    dry, dry_hash = services.learning_calibrate(tenant=world["tenant"], actor="test", dry_run=True)
    assert LedgerEvent.objects.count() == before and not CalibrationReport.objects.exists()
    content, digest = services.learning_calibrate(tenant=world["tenant"], actor="test")
    assert digest == dry_hash and content == dry
    overall = content["incident_model"]["overall"]
    assert overall["labelled"] == 4 and overall["brier"] == pytest.approx(0.255)
    assert overall["ece"] == pytest.approx(0.35) and overall["precision"] == 0.5
    assert (
        services.learning_calibrate(tenant=world["tenant"], actor="test")[1] == digest
    )  # same chain, same hash
    assert CalibrationReport.objects.count() == 1
    assert LedgerEvent.objects.filter(type="controlplane.learning.report.recorded").count() == 1
    assert replay_reports().ok
    out = StringIO()
    call_command("replay", "--verify", "--learning", stdout=out)
    assert "learning replay: 1 checked, 0 difference(s)" in out.getvalue()
    out = StringIO()
    call_command("learning", "calibrate", "--tenant", "acme", "--dry-run", stdout=out)
    assert f"would record report {digest}" in out.getvalue()


def test_replay_finds_a_report_the_chain_does_not_give(
    world, django_capture_on_commit_callbacks, monkeypatch
):
    echo(world["agent"], "k1", django_capture_on_commit_callbacks)
    services.learning_calibrate(tenant=world["tenant"], actor="test")
    monkeypatch.setitem(learning_profile.DEFAULT_PROFILE, "quality", {"completed": 0.5})  # the code drifted
    report = replay_reports()
    assert [d.field for d in report.differences] == ["content_hash"]


# --- earned autonomy ---------------------------------------------------------------------------------------


def _drill():
    runtime.killswitch_set(scope="global", engaged=True, reason="drill", actor="cli")
    runtime.killswitch_set(scope="global", engaged=False, reason="drill over", actor="cli")


def test_earned_autonomy_is_proposed_only_when_every_precondition_holds(
    world, django_capture_on_commit_callbacks, monkeypatch
):
    rules = {**learning_profile.DEFAULT_PROFILE["autonomy"], "min_successes": 3}
    monkeypatch.setitem(learning_profile.DEFAULT_PROFILE, "autonomy", rules)
    assist()
    for n in range(3):
        approved_echo(
            world["agent"], world["alice"], f"k{n}", django_capture_on_commit_callbacks, message=f"m{n}"
        )
    content, _ = services.learning_calibrate(tenant=world["tenant"], actor="test")
    (candidate,) = content["autonomy"]
    assert not candidate["eligible"] and not candidate["preconditions"]["kill_switch_drill"]["met"]
    assert not Proposal.objects.exists()
    _drill()
    content, digest = services.learning_calibrate(tenant=world["tenant"], actor="test")
    assert content["autonomy"][0]["eligible"]
    proposal = Proposal.objects.get()
    assert (proposal.key, proposal.status, proposal.report_hash) == (
        "acme/deploy-bot noop.echo",
        "proposed",
        digest,
    )
    event = LedgerEvent.objects.get(type="controlplane.learning.proposal.created")
    assert event.data["tier"] == "low"


def test_no_path_makes_a_high_or_critical_action_autonomous(
    world, django_capture_on_commit_callbacks, monkeypatch
):
    rules = {
        **learning_profile.DEFAULT_PROFILE["autonomy"],
        "min_successes": 1,
        "tiers": ["low", "medium", "high", "critical"],
    }
    monkeypatch.setitem(learning_profile.DEFAULT_PROFILE, "autonomy", rules)
    high = copy.deepcopy(ASSIST)
    high["rules"] = [
        {
            "id": "all-high",
            "when": {"action": "noop.echo"},
            "raise_to": "high",
            "reason": "POLICY_TIER_RAISED_PROD_TARGET",
        }
    ]
    created = policy.profile_create(name="high", environment="dev", content=high, actor="test")
    policy.profile_activate(profile=created.profile, actor="test", reason="echo is high here")
    approved_echo(world["agent"], world["alice"], "k1", django_capture_on_commit_callbacks)
    _drill()
    content, _ = services.learning_calibrate(tenant=world["tenant"], actor="test")
    assert content["agents"][0]["tier"] == "high"
    assert content["autonomy"] == [] and not Proposal.objects.exists()


# --- the CLI ------------------------------------------------------------------------------------------------


def test_cli_feedback_authenticates_the_person_by_token(
    world, django_capture_on_commit_callbacks, monkeypatch
):
    execution = echo(world["agent"], "k1", django_capture_on_commit_callbacks)
    services.learning_sync(tenant=world["tenant"])
    oid = outcome_id("execution", execution.id)
    monkeypatch.delenv("CONTROLPLANE_TOKEN", raising=False)
    with pytest.raises(CommandError, match="AUTH_REQUIRED"):
        call_command("learning", "feedback", oid, "success", "--reason", "r")
    monkeypatch.setenv("CONTROLPLANE_TOKEN", token_for(world["bob"]))
    out = StringIO()
    call_command("learning", "feedback", oid, "success", "--reason", "held for a day", stdout=out)
    assert "as acme/bob" in out.getvalue()
    assert LedgerEvent.objects.get(type="controlplane.learning.label.recorded").actor == "acme/bob"
