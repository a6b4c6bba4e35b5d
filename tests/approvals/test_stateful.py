"""A Hypothesis state machine over the approvals services: many people open, decide, consume, cancel,
let expire and escalate requests, in any order; after every step the invariants hold.

- quorum: an approved request has at least `quorum` distinct human approvers; a pending one fewer;
- separation of duties: nobody decided their own request, and no non-human decided at all;
- single use: a request is consumed at most once, only when approved, and a second use is refused;
- the ledger equals the state: folding the request's ledger events gives its status, its decisions,
  its escalation level and whether it was consumed;
- a refused act writes nothing (no ledger event).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from approvals import registry, services
from approvals.models import ApprovalDecision, ApprovalRequest, ApprovalStatus
from controlplane.identity.models import Principal
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from tests.identity.factories import PrincipalFactory, TenantFactory

registry.register_subject("test.stateful", lambda approval: None)

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
PEOPLE = 4
TIMEOUT_SECONDS = 3600
LADDER = [{"level": 1, "after_seconds": 600}, {"level": 2, "after_seconds": 1800}]
_TERMINAL = {
    "approved": ApprovalStatus.APPROVED,
    "rejected": ApprovalStatus.REJECTED,
    "expired": ApprovalStatus.EXPIRED,
    "cancelled": ApprovalStatus.CANCELLED,
}


def _folded(approval: ApprovalRequest) -> dict:
    """The request's state as its ledger events tell it."""
    state = {"status": None, "decisions": set(), "level": 0, "consumed": 0}
    prefix = "controlplane.approval.request."
    for event in LedgerEvent.objects.filter(subject=f"approval/{approval.pk}").order_by("seq"):
        verb = event.type.removeprefix(prefix)
        if verb == "opened":
            state["status"] = ApprovalStatus.PENDING
        elif verb == "decided":
            state["decisions"].add((event.data["approver"], event.data["decision"]))
        elif verb == "escalated":
            state["level"] = event.data["level"]
        elif verb == "consumed":
            state["consumed"] += 1
        elif verb in _TERMINAL:
            state["status"] = _TERMINAL[verb]
    return state


class ApprovalsMachine(RuleBasedStateMachine):
    """Requests by an agent and by people, decided by people (and refused to others), on a clock."""

    def __init__(self) -> None:
        super().__init__()
        self.approvals: list[ApprovalRequest] = []
        self.now = T0
        self.serial = 0

    @initialize()
    def staff(self) -> None:
        tenant = TenantFactory()
        self.agent = PrincipalFactory(tenant=tenant, agent=True, capabilities=["approvals.decide"])
        self.people = [
            PrincipalFactory(tenant=tenant, human=True, capabilities=["approvals.decide"])
            for _ in range(PEOPLE)
        ]
        self.outsider = PrincipalFactory(
            tenant=TenantFactory(), human=True, capabilities=["approvals.decide"]
        )

    def _everyone(self) -> list[Principal]:
        return [self.agent, *self.people, self.outsider]

    def _refused(self, act, *codes: str) -> None:
        """`act` either succeeds or is refused with one of `codes` and writes nothing."""
        before = LedgerEvent.objects.count()
        try:
            act()
        except ControlPlaneError as refusal:
            assert refusal.code in codes, refusal.code
            assert LedgerEvent.objects.count() == before

    @rule(quorum=st.integers(1, 3), by=st.integers(0, PEOPLE))
    def request(self, quorum: int, by: int) -> None:
        self.serial += 1
        requester = self.agent if by == PEOPLE else self.people[by]
        approval = services.approval_request_open(
            subject_kind="test.stateful",
            subject_id=f"step-{self.serial}",
            content_hash=f"{self.serial:064x}",
            requested_by=requester,
            risk_tier="critical" if quorum > 1 else "high",
            quorum=quorum,
            summary={"n": self.serial},
            reason_codes=["POLICY_REQUIRES_APPROVAL"],
            timeout_seconds=TIMEOUT_SECONDS,
            escalation_ladder=LADDER,
            at=self.now,
        )
        self.approvals.append(approval)

    @precondition(lambda self: self.approvals)
    @rule(
        which=st.integers(0, 1_000),
        who=st.integers(0, PEOPLE + 1),
        approve=st.booleans(),
        right_hash=st.booleans(),
    )
    def decide(self, which: int, who: int, approve: bool, right_hash: bool) -> None:
        approval = self.approvals[which % len(self.approvals)]
        actor = self._everyone()[who]
        self._refused(
            lambda: services.approval_decide(
                approval=approval,
                actor=actor,
                decision="approve" if approve else "reject",
                reason="looked at it",
                content_hash=approval.content_hash if right_hash else "0" * 64,
                at=self.now,
            ),
            "NOT_FOUND",
            "APPROVAL_APPROVER_NOT_HUMAN",
            "APPROVAL_SELF_APPROVAL",
            "APPROVAL_NOT_PENDING",
            "APPROVAL_EXPIRED",
            "APPROVAL_CONTENT_CHANGED",
            "APPROVAL_DUPLICATE_DECISION",
        )

    @precondition(lambda self: self.approvals)
    @rule(which=st.integers(0, 1_000))
    def consume(self, which: int) -> None:
        approval = self.approvals[which % len(self.approvals)]
        self._refused(
            lambda: services.approval_consume(
                approval=approval, content_hash=approval.content_hash, at=self.now
            ),
            "APPROVAL_NOT_GRANTED",
            "APPROVAL_ALREADY_CONSUMED",
        )

    @precondition(lambda self: self.approvals)
    @rule(which=st.integers(0, 1_000))
    def cancel(self, which: int) -> None:
        approval = self.approvals[which % len(self.approvals)]
        self._refused(
            lambda: services.approval_cancel(approval=approval, actor="system", reason="ended", at=self.now),
            "APPROVAL_NOT_PENDING",
        )

    @rule(minutes=st.sampled_from([5, 15, 35, 70]))
    def time_passes_and_the_sweep_runs(self, minutes: int) -> None:
        """Expiry and escalation: the beat's sweep at a later time (twice: the second changes nothing)."""
        self.now += timedelta(minutes=minutes)
        services.approvals_sweep(now=self.now)
        before = LedgerEvent.objects.count()
        assert services.approvals_sweep(now=self.now) == {"expired": 0, "escalated": 0}
        assert LedgerEvent.objects.count() == before

    @invariant()
    def invariants_hold(self) -> None:
        for stale in self.approvals:
            approval = ApprovalRequest.objects.get(pk=stale.pk)
            decisions = list(ApprovalDecision.objects.filter(request=approval).select_related("approver"))
            approvers = {d.approver_id for d in decisions if d.decision == "approve"}
            # Quorum.
            if approval.status == ApprovalStatus.APPROVED:
                assert len(approvers) >= approval.quorum
            if approval.status == ApprovalStatus.PENDING:
                assert len(approvers) < approval.quorum
                assert not any(d.decision == "reject" for d in decisions)
            # Separation of duties: people only, never the requester, one decision each.
            assert all(d.approver.kind == "human" for d in decisions)
            assert all(d.approver_id != approval.requested_by_id for d in decisions)
            assert all(d.approver.tenant_id == approval.tenant_id for d in decisions)
            assert len({d.approver_id for d in decisions}) == len(decisions)
            # Single use.
            if approval.consumed_at is not None:
                assert approval.status == ApprovalStatus.APPROVED
            # The ledger equals the state.
            folded = _folded(approval)
            assert folded["status"] == approval.status
            assert folded["decisions"] == {(d.approver.ref, d.decision) for d in decisions}
            assert folded["level"] == approval.escalation_level
            assert folded["consumed"] == (1 if approval.consumed_at else 0)


SETTINGS = settings(
    max_examples=12,
    stateful_step_count=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.django_db
def test_approvals_hold_their_invariants_whatever_the_order_of_acts():
    run_state_machine_as_test(ApprovalsMachine, settings=SETTINGS)
