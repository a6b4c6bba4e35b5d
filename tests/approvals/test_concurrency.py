"""Deciding concurrently, on PostgreSQL (threads, each with its own connection and transaction): the same
person twice at once, two people racing for the last vote of a quorum, and a cancel racing an approval.
Each has one consistent outcome; the lock order of `approval_decide` and `execution_cancel` is one order
(the execution's pending approvals, then step runs, then the execution), so they never deadlock."""

from __future__ import annotations

import copy
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction

from approvals import services as approvals
from approvals.models import ApprovalDecision, ApprovalRequest
from controlplane.celery import app as celery_app
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.verify import verify_chain
from controlplane.runtime import services as runtime
from controlplane.runtime.models import Execution, StepRun
from tests.identity.factories import PrincipalFactory, TenantFactory
from tests.runtime.support import core_skill_installed
from tests.runtime.test_services import LOW_ASSIST, _activate

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _eager_tasks():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def agent():
    core_skill_installed()  # a flushed transactional test before this one may have removed it
    return PrincipalFactory(tenant=TenantFactory(slug="acme"), name="deploy-agent", agent=True)


def _deciders(tenant, *names):
    return [
        PrincipalFactory(tenant=tenant, name=n, human=True, capabilities=["approvals.decide"]) for n in names
    ]


def _execution(agent, *, quorum: int, steps: int = 1) -> Execution:
    content = copy.deepcopy(LOW_ASSIST)
    content["deny"] = []
    for tier in ("low", "medium", "high"):
        content["tiers"][tier]["quorum"] = max(quorum, 1)
    content["tiers"]["critical"]["quorum"] = max(quorum, 2)
    _activate("test-assist", "dev", content)
    draft = {
        "goal": "race",
        "steps": [
            {"key": f"s{i}", "action": "noop.echo", "inputs": {}, "depends_on": [f"s{i - 1}"] if i else []}
            for i in range(steps)
        ],
    }
    intent = runtime.intent_submit(principal=agent, draft=draft, idempotency_key="race-1")
    return Execution.objects.get(intent=intent)


def _approval(execution: Execution, key: str = "s0") -> ApprovalRequest:
    run = StepRun.objects.get(execution=execution, step__key=key)
    return ApprovalRequest.objects.get(subject_id=str(run.pk))


def _race(*calls):
    """Run the calls at once (a barrier), each in its own thread and connection; their outcomes."""
    start = threading.Barrier(len(calls))

    def run(call):
        try:
            start.wait()
            call()
            return "ok"
        except ControlPlaneError as refusal:
            return refusal.code
        except Exception as exc:  # a deadlock or any other error: reported by the assertions
            return repr(exc)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def _decide(approval, actor, decision="approve"):
    return lambda: approvals.approval_decide(
        approval=approval, actor=actor, decision=decision, reason="ok", content_hash=approval.content_hash
    )


def _events(approval, verb):
    return LedgerEvent.objects.filter(
        subject=f"approval/{approval.id}", type=f"controlplane.approval.request.{verb}"
    ).count()


def test_the_same_person_deciding_twice_at_once_counts_once(agent):
    execution = _execution(agent, quorum=2)
    approval = _approval(execution)
    (alice,) = _deciders(agent.tenant, "alice")

    outcomes = _race(_decide(approval, alice), _decide(approval, alice))

    assert sorted(outcomes) == ["APPROVAL_DUPLICATE_DECISION", "ok"]
    assert ApprovalDecision.objects.filter(request=approval).count() == 1
    assert _events(approval, "decided") == 1
    approval.refresh_from_db()
    assert approval.status == "pending"
    assert verify_chain().ok


def test_two_people_racing_for_the_last_vote_approve_once(agent):
    execution = _execution(agent, quorum=2)
    approval = _approval(execution)
    carol, alice, bob = _deciders(agent.tenant, "carol", "alice", "bob")
    _decide(approval, carol)()

    outcomes = _race(_decide(approval, alice), _decide(approval, bob))

    assert sorted(outcomes) == ["APPROVAL_NOT_PENDING", "ok"]
    assert ApprovalDecision.objects.filter(request=approval).count() == 2
    assert _events(approval, "decided") == 2
    assert _events(approval, "approved") == 1
    assert _events(approval, "consumed") == 1
    execution.refresh_from_db()
    assert execution.status == "completed"
    assert LedgerEvent.objects.filter(type="controlplane.execution.step.completed").count() == 1
    assert verify_chain().ok


@pytest.mark.parametrize("attempt", range(3))
def test_cancel_racing_approve_has_one_consistent_outcome(agent, attempt):
    execution = _execution(agent, quorum=1, steps=2)
    approval = _approval(execution, "s0")
    (alice,) = _deciders(agent.tenant, "alice")

    def cancel():
        runtime.execution_cancel(execution=execution, actor=alice, reason="stop")

    approve_outcome, cancel_outcome = _race(_decide(approval, alice), cancel)

    assert cancel_outcome == "ok"
    assert approve_outcome in ("ok", "APPROVAL_NOT_PENDING")
    execution.refresh_from_db()
    approval.refresh_from_db()
    assert execution.status == "cancelled"
    runs = dict(execution.step_runs.values_list("step__key", "status"))
    if approve_outcome == "ok":  # approved first: s0 cleared (and ran or was cancelled), s1 cancelled
        assert approval.status == "approved" and approval.consumed_at is not None
        assert runs["s0"] in ("completed", "cancelled") and runs["s1"] == "cancelled"
    else:  # cancelled first: nothing was approved, nothing ran
        assert approval.status == "cancelled"
        assert runs == {"s0": "cancelled", "s1": "cancelled"}
        assert ApprovalDecision.objects.count() == 0
    assert not ApprovalRequest.objects.filter(status="pending").exists()
    assert LedgerEvent.objects.filter(type="controlplane.execution.cancelled").count() == 1
    assert verify_chain().ok


def _waiting_for_a_row() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype IN ('transactionid', 'tuple')"
        )
        return cursor.fetchone()[0] > 0


def test_a_decision_holding_its_approval_and_a_cancel_do_not_deadlock(agent):
    """approval_decide locks the approval, then (its resolver) the step run and the execution. Before,
    execution_cancel locked the execution, then the step runs, then the approval: with a decision holding
    the approval, the cancel took the execution and waited; the decision then waited for the step run:
    a deadlock (PostgreSQL aborted one of them). Now the cancel takes the approval first and waits."""
    execution = _execution(agent, quorum=1, steps=2)
    approval = _approval(execution, "s0")
    (alice,) = _deciders(agent.tenant, "alice")
    outcome: list[str] = []

    def cancel():
        try:
            runtime.execution_cancel(execution=execution, actor=alice, reason="stop")
            outcome.append("cancelled")
        except Exception as exc:  # reported by the assertion below
            outcome.append(repr(exc))
        finally:
            connection.close()

    with transaction.atomic():
        # what approval_decide does first: lock the approval ...
        ApprovalRequest.objects.select_for_update().get(pk=approval.pk)
        cancelling = threading.Thread(target=cancel)
        cancelling.start()
        deadline = time.monotonic() + 10
        while not _waiting_for_a_row() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _waiting_for_a_row()
        # ... then decide: the resolver locks the step run and the execution (the cancel holds neither)
        _decide(approval, alice)()
    cancelling.join(timeout=30)
    assert outcome == ["cancelled"]
    execution.refresh_from_db()
    approval.refresh_from_db()
    assert approval.status == "approved" and execution.status == "cancelled"
    assert verify_chain().ok
