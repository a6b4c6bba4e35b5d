"""GitHub change signals (deployment, deployment_status, workflow_run, push, merged pull_request) stored
and shown on the incident page as "changes before this incident" (a panel the channels app registers),
never across tenants; and deployment protection rules opened as approval requests whose decision goes
back to GitHub's review endpoint through the outbox (a local stand-in for GitHub's API)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client

from approvals.models import ApprovalRequest, ApprovalStatus
from approvals.services import approval_decide, approvals_sweep
from controlplane.channels.models import ChangeSignal, ChannelMessage, DeploymentReview
from controlplane.channels.services.outbox import channel_outbox_sweep
from controlplane.ledger.models import LedgerEvent
from tests.channels.chat import approver, connect
from tests.channels.test_providers_github import SECRET, deliver
from tests.identity.factories import PrincipalFactory
from tests.incidents.factories import T0, iso, make_rule, open_incident

pytestmark = pytest.mark.django_db

REPO = {"full_name": "acme/checkout", "name": "checkout"}
OCTOCAT = {"login": "octocat"}


@pytest.fixture
def github(settings, stand_in):
    settings.CONTROLPLANE_GITHUB_API_URL = stand_in.base
    return connect("github", {"webhook_secret": SECRET, "token": "ghs_installation"})


def minutes_before(minutes: int) -> str:
    return iso(T0 - timedelta(minutes=minutes))


CHANGES = [
    (
        "deployment",
        {
            "action": "created",
            "deployment": {
                "sha": "a1b2c3d4e5",
                "ref": "main",
                "environment": "production",
                "creator": OCTOCAT,
                "created_at": minutes_before(50),
                "description": "deploy v42",
            },
            "repository": REPO,
            "sender": OCTOCAT,
        },
        ("production", "main", "a1b2c3d4e5", "octocat", "created", "deploy v42"),
    ),
    (
        "deployment_status",
        {
            "action": "created",
            "deployment_status": {
                "state": "success",
                "environment": "production",
                "creator": OCTOCAT,
                "created_at": minutes_before(45),
                "target_url": "https://ci.example.com/run/1",
            },
            "deployment": {"sha": "a1b2c3d4e5", "ref": "main"},
            "repository": REPO,
            "sender": OCTOCAT,
        },
        ("production", "main", "a1b2c3d4e5", "octocat", "success", "deployment success"),
    ),
    (
        "workflow_run",
        {
            "action": "completed",
            "workflow_run": {
                "name": "release",
                "head_branch": "main",
                "head_sha": "f00dbabe",
                "conclusion": "success",
                "actor": {"login": "hubot"},
                "updated_at": minutes_before(40),
                "html_url": "https://github.com/acme/checkout/actions/runs/9",
            },
            "repository": REPO,
            "sender": {"login": "hubot"},
        },
        ("", "main", "f00dbabe", "hubot", "success", "release"),
    ),
    (
        "push",
        {
            "ref": "refs/heads/main",
            "after": "cafe1234",
            "deleted": False,
            "commits": [{}, {}],
            "head_commit": {"message": "Raise the pool size\n\nbody", "timestamp": minutes_before(30)},
            "compare": "https://github.com/acme/checkout/compare/a...b",
            "pusher": {"name": "mona"},
            "repository": REPO,
            "sender": {"login": "mona"},
        },
        ("", "refs/heads/main", "cafe1234", "mona", "2 commits", "Raise the pool size"),
    ),
    (
        "pull_request",
        {
            "action": "closed",
            "number": 7,
            "pull_request": {
                "number": 7,
                "title": "Retry <script>payments</script>",
                "merged": True,
                "merged_by": {"login": "lisa"},
                "merged_at": minutes_before(20),
                "merge_commit_sha": "deadbeef",
                "base": {"ref": "main"},
                "html_url": "https://github.com/acme/checkout/pull/7",
            },
            "repository": REPO,
            "sender": {"login": "lisa"},
        },
        ("", "main", "deadbeef", "lisa", "merged", "#7 Retry <script>payments</script>"),
    ),
]


@pytest.mark.parametrize(("event", "payload", "expected"), CHANGES, ids=[c[0] for c in CHANGES])
def test_each_change_event_is_recorded_as_a_change_signal(client, github, event, payload, expected):
    response = deliver(client, github, payload, event=event, delivery=f"d-{event}")
    assert response.status_code == 200 and "change" in response.json()
    change = ChangeSignal.objects.get()
    assert (change.kind, change.service, change.repository) == (event, "checkout", "acme/checkout")
    assert (
        change.environment,
        change.ref,
        change.sha,
        change.actor,
        change.status,
        change.summary,
    ) == expected
    recorded = LedgerEvent.objects.get(type="controlplane.channels.change.recorded")
    assert recorded.subject == "service/checkout" and recorded.data["actor"] == expected[3]
    assert recorded.data["delivery_id"] == f"d-{event}"


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("pull_request", {"action": "closed", "pull_request": {"merged": False}, "repository": REPO}),
        ("pull_request", {"action": "opened", "pull_request": {"merged": False}, "repository": REPO}),
        ("push", {"deleted": True, "ref": "refs/heads/old", "repository": REPO}),
        ("workflow_run", {"action": "requested", "workflow_run": {}, "repository": REPO}),
    ],
    ids=["closed-unmerged", "opened", "branch-deleted", "run-requested"],
)
def test_what_is_not_a_change_records_none(client, github, event, payload):
    assert deliver(client, github, payload, event=event).status_code == 200
    assert not ChangeSignal.objects.exists()


def test_a_redelivered_change_is_recorded_once(client, github):
    event, payload, _ = CHANGES[0]
    deliver(client, github, payload, event=event, delivery="same")
    again = deliver(client, github, payload, event=event, delivery="same")
    assert again.json()["code"] == "CHANNEL_DUPLICATE_DELIVERY" and ChangeSignal.objects.count() == 1


def operator(tenant, name="olivia"):
    return PrincipalFactory(
        tenant=tenant,
        name=name,
        human=True,
        user__username=name,
        capabilities=["console.view", "incidents.read"],
    )


def test_the_incident_page_shows_the_changes_of_the_window_before_it_escaped(client, github, settings):
    settings.CONTROLPLANE_CHANGE_WINDOW_SECONDS = 3600
    for event, payload, _ in CHANGES:
        deliver(client, github, payload, event=event, delivery=f"d-{event}")
    old = {**CHANGES[0][1], "deployment": {**CHANGES[0][1]["deployment"], "created_at": minutes_before(90)}}
    deliver(client, github, old, event="deployment", delivery="d-old")  # outside the window
    make_rule(github.tenant)
    incident = open_incident(github.tenant)
    page = Client()
    page.force_login(operator(github.tenant).user)
    html = page.get(f"/incidents/{incident.pk}/").content.decode()
    assert 'id="changes" data-count="5"' in html
    assert "Raise the pool size" in html and "a1b2c3d" in html and "octocat" in html
    assert "<script>payments</script>" not in html and "&lt;script&gt;payments&lt;/script&gt;" in html
    fragment = page.get(f"/incidents/{incident.pk}/", headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in fragment and 'id="changes"' in fragment


def test_another_tenants_changes_are_never_shown(client, github):
    other = connect("github", {"webhook_secret": SECRET}, tenant_slug="globex")
    event, payload, _ = CHANGES[3]
    deliver(client, other, payload, event=event, delivery="d-globex")
    make_rule(github.tenant)
    incident = open_incident(github.tenant)
    page = Client()
    page.force_login(operator(github.tenant).user)
    html = page.get(f"/incidents/{incident.pk}/").content.decode()
    assert 'id="changes" data-count="0"' in html and "Raise the pool size" not in html


def protection_rule(run_id: int = 4242, repo: str = "acme/checkout") -> dict:
    return {
        "action": "requested",
        "environment": "production",
        "event": "push",
        "ref": "refs/heads/main",
        "sha": "a1b2c3d4e5f6",
        "deployment_callback_url": f"https://api.github.com/repos/{repo}/actions/runs/{run_id}/deployment_protection_rule",
        "deployment": {"sha": "a1b2c3d4e5f6", "ref": "main", "environment": "production"},
        "repository": REPO,
        "sender": OCTOCAT,
    }


def test_a_deployment_protection_rule_opens_an_approval_whose_decision_goes_to_github(
    client, github, stand_in
):
    answer = deliver(client, github, protection_rule(), event="deployment_protection_rule", delivery="dpr-1")
    approval = ApprovalRequest.objects.get(pk=answer.json()["approval"])
    assert approval.subject_kind == "channels.github.deployment" and approval.status == "pending"
    assert approval.summary["what"] == "deploy acme/checkout@a1b2c3d to production"
    assert approval.requested_by == github.principal
    assert DeploymentReview.objects.get().run_id == 4242
    assert stand_in.seen == []
    alice = approver(github.tenant, "alice")
    approval_decide(
        approval=approval,
        actor=alice,
        decision="approve",
        reason="canary green",
        content_hash=approval.content_hash,
    )
    assert channel_outbox_sweep()["sent"] == 1
    (seen,) = stand_in.seen
    assert seen["path"] == "/repos/acme/checkout/actions/runs/4242/deployment_protection_rule"
    assert seen["headers"]["Authorization"] == "Bearer ghs_installation"
    assert json.loads(seen["body"]) == {
        "environment_name": "production",
        "state": "approved",
        "comment": "approved in the control plane (alice: canary green)",
    }
    sent = LedgerEvent.objects.get(type="controlplane.channels.notification.sent")
    assert sent.data["kind"] == "github.review" and sent.data["approval"] == approval.id


def test_an_expired_deployment_review_is_rejected_at_github(client, github, stand_in, settings):
    settings.CONTROLPLANE_GITHUB_REVIEW_TIMEOUT_SECONDS = 60
    answer = deliver(client, github, protection_rule(), event="deployment_protection_rule", delivery="dpr-2")
    approval = ApprovalRequest.objects.get(pk=answer.json()["approval"])
    approvals_sweep(now=approval.created_at + timedelta(seconds=61))
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.EXPIRED
    channel_outbox_sweep()
    assert json.loads(stand_in.seen[-1]["body"])["state"] == "rejected"


def test_a_callback_url_of_another_repository_is_malformed_and_opens_nothing(client, github):
    before = LedgerEvent.objects.count()
    answer = deliver(
        client,
        github,
        protection_rule(repo="evil/elsewhere"),
        event="deployment_protection_rule",
        delivery="dpr-3",
    )
    assert answer.status_code == 400 and answer.json()["code"] == "CHANNEL_MALFORMED"
    assert LedgerEvent.objects.count() == before
    assert not ApprovalRequest.objects.exists() and not ChannelMessage.objects.exists()
