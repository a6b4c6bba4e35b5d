"""Approvals: quorum, separation of duties, content binding, single use, expiry and escalation."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from approvals import registry, services
from approvals.models import ApprovalDecision, ApprovalRequest, ApprovalStatus
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from tests.identity.factories import PrincipalFactory, TenantFactory

pytestmark = pytest.mark.django_db

RESOLVED: list[tuple[str, str]] = []


def _resolver(request: ApprovalRequest) -> None:
    RESOLVED.append((request.subject_id, request.status))


registry.register_subject("test.subject", _resolver)


@pytest.fixture(autouse=True)
def _clear_resolved():
    RESOLVED.clear()


@pytest.fixture
def tenant():
    return TenantFactory(slug="acme")


@pytest.fixture
def requester(tenant):
    return PrincipalFactory(tenant=tenant, name="deploy-agent", agent=True)


def approver(tenant, name):
    return PrincipalFactory(tenant=tenant, name=name, human=True, capabilities=["approvals.decide"])


def open_request(requester, quorum=1, **kwargs):
    defaults = dict(
        subject_kind="test.subject",
        subject_id="step-1",
        content_hash="a" * 64,
        requested_by=requester,
        risk_tier="high",
        quorum=quorum,
        summary={"what": "restart checkout"},
        reason_codes=["POLICY_REQUIRES_APPROVAL"],
    )
    return services.approval_request_open(**{**defaults, **kwargs})


def decide(request, actor, decision="approve", reason="looks right", content_hash="a" * 64, **kwargs):
    return services.approval_decide(
        approval=request, actor=actor, decision=decision, reason=reason, content_hash=content_hash, **kwargs
    )


def test_opening_is_idempotent_and_ledgered(requester):
    first = open_request(requester)
    again = open_request(requester)
    assert first.pk == again.pk and ApprovalRequest.objects.count() == 1
    assert LedgerEvent.objects.filter(type="controlplane.approval.request.opened").count() == 1


def test_single_approval_meets_quorum_one_and_resolves(tenant, requester):
    request = decide(open_request(requester), approver(tenant, "alice"))
    assert request.status == ApprovalStatus.APPROVED
    assert RESOLVED == [("step-1", "approved")]
    types = list(LedgerEvent.objects.filter(subject=f"approval/{request.pk}").values_list("type", flat=True))
    assert types == [
        "controlplane.approval.request.opened",
        "controlplane.approval.request.decided",
        "controlplane.approval.request.approved",
    ]


def test_critical_quorum_needs_two_distinct_humans(tenant, requester):
    alice, bob = approver(tenant, "alice"), approver(tenant, "bob")
    request = decide(open_request(requester, quorum=2), alice)
    assert request.status == ApprovalStatus.PENDING and RESOLVED == []
    with pytest.raises(ControlPlaneError) as caught:
        decide(request, alice)
    assert caught.value.code == "APPROVAL_DUPLICATE_DECISION"
    assert decide(request, bob).status == ApprovalStatus.APPROVED


def test_one_rejection_rejects(tenant, requester):
    request = decide(
        open_request(requester, quorum=2), approver(tenant, "alice"), decision="reject", reason="not now"
    )
    assert request.status == ApprovalStatus.REJECTED and RESOLVED == [("step-1", "rejected")]


@pytest.mark.parametrize(
    ("make_actor", "kwargs", "code"),
    [
        (lambda t, r: r, {}, "APPROVAL_APPROVER_NOT_HUMAN"),
        (
            lambda t, r: PrincipalFactory(tenant=t, agent=True, capabilities=["approvals.decide"]),
            {},
            "APPROVAL_APPROVER_NOT_HUMAN",
        ),
        (lambda t, r: PrincipalFactory(tenant=t, human=True), {}, "CAPABILITY_MISSING"),
        (lambda t, r: approver(TenantFactory(slug="other"), "eve"), {}, "NOT_FOUND"),
        (lambda t, r: approver(t, "alice"), {"reason": "  "}, "APPROVAL_REASON_REQUIRED"),
        (lambda t, r: approver(t, "alice"), {"content_hash": "b" * 64}, "APPROVAL_CONTENT_CHANGED"),
        (lambda t, r: approver(t, "alice"), {"decision": "maybe"}, "VALIDATION_FAILED"),
    ],
)
def test_refusals_carry_a_code_and_write_nothing(tenant, requester, make_actor, kwargs, code):
    request = open_request(requester)
    actor = make_actor(tenant, requester)
    before = LedgerEvent.objects.count()
    with pytest.raises(ControlPlaneError) as caught:
        decide(request, actor, **kwargs)
    assert caught.value.code == code
    assert LedgerEvent.objects.count() == before and not ApprovalDecision.objects.exists()
    request.refresh_from_db()
    assert request.status == ApprovalStatus.PENDING


def test_a_human_requester_cannot_approve_their_own_request(tenant):
    alice = approver(tenant, "alice")
    request = open_request(alice)
    before = LedgerEvent.objects.count()
    with pytest.raises(ControlPlaneError) as caught:
        decide(request, alice)
    assert caught.value.code == "APPROVAL_SELF_APPROVAL" and LedgerEvent.objects.count() == before


def test_granted_approval_is_consumed_once_for_its_content(tenant, requester):
    request = decide(open_request(requester), approver(tenant, "alice"))
    with pytest.raises(ControlPlaneError) as caught:
        services.approval_consume(approval=request, content_hash="b" * 64)
    assert caught.value.code == "APPROVAL_CONTENT_CHANGED"
    services.approval_consume(approval=request, content_hash="a" * 64)
    with pytest.raises(ControlPlaneError) as caught:
        services.approval_consume(approval=request, content_hash="a" * 64)
    assert caught.value.code == "APPROVAL_ALREADY_CONSUMED"


def test_a_pending_request_cannot_be_consumed(requester):
    with pytest.raises(ControlPlaneError) as caught:
        services.approval_consume(approval=open_request(requester), content_hash="a" * 64)
    assert caught.value.code == "APPROVAL_NOT_GRANTED"


def test_expiry_fails_closed_and_escalation_follows_the_ladder(tenant, requester):
    start = timezone.now()
    ladder = [{"after_seconds": 60, "level": 1}, {"after_seconds": 120, "level": 2}]
    request = open_request(requester, timeout_seconds=300, escalation_ladder=ladder, at=start)
    assert services.approvals_sweep(now=start + timedelta(seconds=30)) == {"expired": 0, "escalated": 0}
    assert services.approvals_sweep(now=start + timedelta(seconds=130)) == {"expired": 0, "escalated": 1}
    assert services.approvals_sweep(now=start + timedelta(seconds=131)) == {"expired": 0, "escalated": 0}
    request.refresh_from_db()
    assert request.escalation_level == 2
    assert services.approvals_sweep(now=start + timedelta(seconds=301)) == {"expired": 1, "escalated": 0}
    request.refresh_from_db()
    assert request.status == ApprovalStatus.EXPIRED and RESOLVED == [("step-1", "expired")]
    with pytest.raises(ControlPlaneError) as caught:
        decide(request, approver(tenant, "alice"))
    assert caught.value.code == "APPROVAL_EXPIRED"


def test_a_decision_after_the_deadline_is_refused_even_before_the_sweep(tenant, requester):
    start = timezone.now()
    request = open_request(requester, timeout_seconds=60, at=start)
    with pytest.raises(ControlPlaneError) as caught:
        decide(request, approver(tenant, "alice"), at=start + timedelta(seconds=61))
    assert caught.value.code == "APPROVAL_EXPIRED"


def test_unknown_subject_kind_is_refused(requester):
    with pytest.raises(ControlPlaneError) as caught:
        open_request(requester, subject_kind="nobody.owns.this")
    assert caught.value.code == "APPROVAL_SUBJECT_UNKNOWN" and not ApprovalRequest.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_racing_decisions_stay_consistent():
    tenant = TenantFactory(slug="race")
    requester = PrincipalFactory(tenant=tenant, name="bot", agent=True)
    request = open_request(requester, quorum=2)
    people = [approver(tenant, f"p{i}") for i in range(4)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(people))

    def race(person):
        barrier.wait()
        try:
            decide(ApprovalRequest.objects.get(pk=request.pk), person)
            outcomes.append("ok")
        except ControlPlaneError as exc:
            outcomes.append(exc.code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=race, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    request.refresh_from_db()
    assert request.status == ApprovalStatus.APPROVED
    assert sorted(outcomes) == ["APPROVAL_NOT_PENDING", "APPROVAL_NOT_PENDING", "ok", "ok"]
    assert LedgerEvent.objects.filter(type="controlplane.approval.request.approved").count() == 1
    assert RESOLVED == [("step-1", "approved")]


# --- Bulk decisions -----------------------------------------------------------------------------------


def test_bulk_decide_decides_every_named_approval_with_one_reason(tenant, requester):
    first = open_request(requester, subject_id="step-1")
    second = open_request(requester, subject_id="step-2")

    decided = services.approvals_bulk_decide(
        items=[(first.pk, "a" * 64), (second.pk, "a" * 64)],
        actor=approver(tenant, "alice"),
        decision="approve",
        reason="batch ok",
    )

    assert [a.pk for a in decided] == [first.pk, second.pk]
    assert [a.status for a in decided] == [ApprovalStatus.APPROVED, ApprovalStatus.APPROVED]
    assert set(ApprovalDecision.objects.values_list("reason", flat=True)) == {"batch ok"}


def test_bulk_decide_is_all_or_nothing_and_names_the_approval_at_fault(tenant, requester):
    first = open_request(requester, subject_id="step-1")
    second = open_request(requester, subject_id="step-2")
    alice = approver(tenant, "alice")
    before = LedgerEvent.objects.count()

    with pytest.raises(ControlPlaneError) as refused:
        services.approvals_bulk_decide(
            items=[(first.pk, "a" * 64), (second.pk, "b" * 64)],
            actor=alice,
            decision="approve",
            reason="batch ok",
        )

    assert refused.value.code == "APPROVAL_CONTENT_CHANGED"
    assert refused.value.extra == {"request": second.pk}
    assert LedgerEvent.objects.count() == before and not ApprovalDecision.objects.exists()
    assert set(ApprovalRequest.objects.values_list("status", flat=True)) == {ApprovalStatus.PENDING}


def test_bulk_decide_refuses_an_approval_of_another_tenant_as_not_found(tenant, requester):
    theirs = open_request(PrincipalFactory(tenant=TenantFactory(slug="globex"), agent=True))
    alice = approver(tenant, "alice")
    before = LedgerEvent.objects.count()

    with pytest.raises(ControlPlaneError) as refused:
        services.approvals_bulk_decide(
            items=[(theirs.pk, "a" * 64)], actor=alice, decision="approve", reason="x"
        )

    assert (refused.value.code, refused.value.extra) == ("APPROVAL_NOT_FOUND", {})
    assert LedgerEvent.objects.count() == before
