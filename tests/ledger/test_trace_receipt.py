"""The trace explorer offers each node's receipt for download; it verifies against pinned keys."""

from __future__ import annotations

import json

import pytest

from approvals import services as approvals
from approvals.models import ApprovalRequest
from controlplane.ledger.checkpoints import checkpoint_create
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.receipts import receipt_verify
from controlplane.ledger.trust import trusted_keys_export, trusted_keys_parse
from controlplane.ledger.witness import witness_default
from tests.console.flow import (  # noqa: F401  (fixtures)
    TRACE,
    TRACEPARENT,
    acme,
    agent,
    decider,
    dev_policy,
    eager_tasks,
    prod_step_draft,
    submit,
)
from tests.identity.factories import PrincipalFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("dev_policy", "eager_tasks")]


@pytest.fixture
def traced(agent, decider, django_capture_on_commit_callbacks, client):  # noqa: F811
    submit(agent, prod_step_draft(steps=1), "k1", django_capture_on_commit_callbacks, traceparent=TRACEPARENT)
    request = ApprovalRequest.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        approvals.approval_decide(
            approval=request,
            actor=decider,
            decision="approve",
            reason="go",
            content_hash=request.content_hash,
        )
    client.force_login(decider.user)
    return client


def test_every_node_links_its_receipt_and_the_receipt_verifies(traced, django_capture_on_commit_callbacks):
    completed = LedgerEvent.objects.filter(type="controlplane.execution.step.completed").last()
    body = traced.get(f"/traces/{TRACE}/").content.decode()
    assert f'href="/traces/{TRACE}/events/{completed.seq}/receipt/" download>download receipt</a>' in body

    early = traced.get(f"/traces/{TRACE}/events/{completed.seq}/receipt/")
    assert early.status_code == 409 and b'data-code="LEDGER_PROOF_INVALID"' in early.content

    with django_capture_on_commit_callbacks(execute=True):
        checkpoint_create()
    response = traced.get(f"/traces/{TRACE}/events/{completed.seq}/receipt/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="receipt-{completed.seq}.json"'
    receipt = json.loads(response.content)
    trusted = trusted_keys_parse(trusted_keys_export(witness_keys=[witness_default().public_key]))
    result = receipt_verify(receipt, trusted)
    assert result.ok and receipt["event"]["hash"] == completed.hash


def test_a_receipt_of_an_event_outside_the_trace_or_without_ledger_read_is_refused(traced, client, acme):  # noqa: F811
    checkpoint_create()
    outside = LedgerEvent.objects.get(type="controlplane.policy.profile.activated")
    response = traced.get(f"/traces/{TRACE}/events/{outside.seq}/receipt/")
    assert response.status_code == 404 and b'data-code="NOT_FOUND"' in response.content
    reader = PrincipalFactory(
        tenant=acme, human=True, user__username="erin", capabilities=["console.view", "executions.read"]
    )
    client.force_login(reader.user)
    step = LedgerEvent.objects.filter(type="controlplane.execution.step.completed").last()
    refused = client.get(f"/traces/{TRACE}/events/{step.seq}/receipt/")
    assert refused.status_code == 403 and b'data-code="CAPABILITY_MISSING"' in refused.content
