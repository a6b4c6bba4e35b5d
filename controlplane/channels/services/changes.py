"""GitHub deliveries that say something changed: change signals, and deployments held for a review.

- `deployment`, `deployment_status`, a completed `workflow_run`, a `push` (not a branch deletion) and a
  merged `pull_request` become a `ChangeSignal` (what changed on which service, by whom, when) and a
  `controlplane.channels.change.recorded` event; the incident page lists those of the window before it
  (`controlplane.channels.selectors.changes_before`). Read only: a change signal decides nothing.
- `deployment_protection_rule` (a custom deployment protection rule asking for a review) opens an
  approval request for the deployment (subject `channels.github.deployment`); when it is decided, expires
  or is cancelled, the decision goes to GitHub's review endpoint for that run through the outbox:
  `POST /repos/{owner}/{repo}/actions/runs/{run_id}/deployment_protection_rule` with the environment,
  `approved` or `rejected` and who decided. The run id is read from `deployment_callback_url` and the path
  is rebuilt under CONTROLPLANE_GITHUB_API_URL: a URL in a delivery is never called as given.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from controlplane.channels.models import (
    ChangeSignal,
    ChannelConnection,
    DeploymentReview,
    OutboundMethod,
)
from controlplane.channels.services.outbox import channel_message_enqueue
from controlplane.kernel.canonical import canonical_bytes
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.services import ledger_append

CHANGE_EVENTS = {"deployment", "deployment_status", "workflow_run", "push", "pull_request"}
DEPLOYMENT_SUBJECT = "channels.github.deployment"
REVIEW_KIND = "github.review"
_CALLBACK = re.compile(
    r"^https://[^/]+(?:/api/v3)?/repos/(?P<repo>[\w.-]+/[\w.-]+)/actions/runs/(?P<run>\d+)"
    r"/deployment_protection_rule$"
)


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _login(value: Any) -> str:
    return _text(value.get("login"), 120) if isinstance(value, dict) else ""


def _when(value: Any) -> datetime | None:
    parsed = parse_datetime(value) if isinstance(value, str) else None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def _change_fields(event: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """The change a delivery describes, or None when it describes none (an opened PR, a deleted branch)."""
    deployment = payload.get("deployment") if isinstance(payload.get("deployment"), dict) else {}
    if event == "deployment":
        return {
            "environment": _text(deployment.get("environment"), 120),
            "ref": _text(deployment.get("ref"), 200),
            "sha": _text(deployment.get("sha"), 64),
            "actor": _login(deployment.get("creator")) or _login(payload.get("sender")),
            "status": "created",
            "summary": _text(deployment.get("description"), 300) or "deployment created",
            "url": _text(deployment.get("url"), 500),
            "occurred_at": _when(deployment.get("created_at")),
        }
    if event == "deployment_status":
        status = (
            payload.get("deployment_status") if isinstance(payload.get("deployment_status"), dict) else {}
        )
        return {
            "environment": _text(status.get("environment") or deployment.get("environment"), 120),
            "ref": _text(deployment.get("ref"), 200),
            "sha": _text(deployment.get("sha"), 64),
            "actor": _login(status.get("creator")) or _login(payload.get("sender")),
            "status": _text(status.get("state"), 40),
            "summary": _text(status.get("description"), 300)
            or f"deployment {_text(status.get('state'), 40)}",
            "url": _text(status.get("target_url") or status.get("log_url"), 500),
            "occurred_at": _when(status.get("created_at")),
        }
    if event == "workflow_run":
        run = payload.get("workflow_run") if isinstance(payload.get("workflow_run"), dict) else {}
        if payload.get("action") != "completed":
            return None
        return {
            "ref": _text(run.get("head_branch"), 200),
            "sha": _text(run.get("head_sha"), 64),
            "actor": _login(run.get("actor")) or _login(payload.get("sender")),
            "status": _text(run.get("conclusion"), 40),
            "summary": _text(run.get("name") or run.get("display_title"), 300),
            "url": _text(run.get("html_url"), 500),
            "occurred_at": _when(run.get("updated_at")),
        }
    if event == "push":
        if payload.get("deleted"):
            return None
        head = payload.get("head_commit") if isinstance(payload.get("head_commit"), dict) else {}
        pusher = payload.get("pusher") if isinstance(payload.get("pusher"), dict) else {}
        commits = payload.get("commits") if isinstance(payload.get("commits"), list) else []
        message = _text(head.get("message"), 300).splitlines()
        return {
            "ref": _text(payload.get("ref"), 200),
            "sha": _text(payload.get("after"), 64),
            "actor": _login(payload.get("sender")) or _text(pusher.get("name"), 120),
            "status": f"{len(commits)} commits",
            "summary": message[0] if message else "push",
            "url": _text(payload.get("compare") or head.get("url"), 500),
            "occurred_at": _when(head.get("timestamp")),
        }
    if event == "pull_request":
        pull = payload.get("pull_request") if isinstance(payload.get("pull_request"), dict) else {}
        if payload.get("action") != "closed" or pull.get("merged") is not True:
            return None
        base = pull.get("base") if isinstance(pull.get("base"), dict) else {}
        return {
            "ref": _text(base.get("ref"), 200),
            "sha": _text(pull.get("merge_commit_sha"), 64),
            "actor": _login(pull.get("merged_by")) or _login(payload.get("sender")),
            "status": "merged",
            "summary": f"#{pull.get('number')} {_text(pull.get('title'), 280)}",
            "url": _text(pull.get("html_url"), 500),
            "occurred_at": _when(pull.get("merged_at")),
        }
    return None


def change_signal_record(
    *, connection: ChannelConnection, event: str, payload: dict[str, Any], delivery_id: str
) -> ChangeSignal | None:
    """Record the change a GitHub delivery describes (None when it describes none); runs inside the
    delivery's transaction, which the delivery id deduplicates."""
    if event not in CHANGE_EVENTS:
        return None
    fields = _change_fields(event, payload)
    if fields is None:
        return None
    repository = payload.get("repository") if isinstance(payload.get("repository"), dict) else {}
    full_name = _text(repository.get("full_name"), 200)
    if not full_name:
        raise ControlPlaneError("CHANNEL_MALFORMED", f"a {event} delivery without repository.full_name")
    fields["occurred_at"] = fields["occurred_at"] or timezone.now()
    change = ChangeSignal.objects.create(
        tenant_id=connection.tenant_id,
        connection=connection,
        kind=event,
        service=full_name.rsplit("/", 1)[-1],
        repository=full_name,
        delivery_id=delivery_id[:100],
        **fields,
    )
    ledger_append(
        type="controlplane.channels.change.recorded",
        subject=f"service/{change.service}",
        data={
            "connection": connection.ref,
            "kind": change.kind,
            "service": change.service,
            "repository": change.repository,
            "environment": change.environment,
            "ref": change.ref,
            "sha": change.sha,
            "actor": change.actor,
            "status": change.status,
            "delivery_id": change.delivery_id,
        },
        tenant=connection.tenant.slug,
        actor=connection.principal.ref,
        time=change.occurred_at,
    )
    return change


# --- deployment protection rules ----------------------------------------------------------------------


def deployment_review_open(
    *, connection: ChannelConnection, payload: dict[str, Any], delivery_id: str
) -> dict[str, Any]:
    """Open the approval request a `deployment_protection_rule` delivery asks for; returns its id."""
    from approvals.services import approval_request_open  # the approvals app is below: no cycle at import

    repository = payload.get("repository") if isinstance(payload.get("repository"), dict) else {}
    full_name = _text(repository.get("full_name"), 200)
    environment = _text(payload.get("environment"), 120)
    match = _CALLBACK.match(_text(payload.get("deployment_callback_url"), 500))
    if not full_name or not environment or match is None or match["repo"].lower() != full_name.lower():
        raise ControlPlaneError(
            "CHANNEL_MALFORMED",
            "a deployment_protection_rule needs repository, environment and its run's callback",
        )
    deployment = payload.get("deployment") if isinstance(payload.get("deployment"), dict) else {}
    run_id = int(match["run"])
    ref = _text(payload.get("ref") or deployment.get("ref"), 200)
    sha = _text(payload.get("sha") or deployment.get("sha"), 64)
    content = {"repository": full_name, "environment": environment, "ref": ref, "sha": sha, "run_id": run_id}
    content_hash = hashlib.sha256(canonical_bytes(content)).hexdigest()
    subject = f"{connection.pk}:{full_name}:{run_id}:{environment}"[:128]
    review, _ = DeploymentReview.objects.get_or_create(
        subject=subject,
        defaults={
            "tenant_id": connection.tenant_id,
            "connection": connection,
            "repository": full_name,
            "environment": environment,
            "ref": ref,
            "sha": sha,
            "run_id": run_id,
            "requested_by": _login(payload.get("sender")),
        },
    )
    approval = approval_request_open(
        subject_kind=DEPLOYMENT_SUBJECT,
        subject_id=subject,
        content_hash=content_hash,
        requested_by=connection.principal,
        risk_tier="high",
        quorum=1,
        summary={
            "what": f"deploy {full_name}@{sha[:7] or ref} to {environment}",
            "repository": full_name,
            "environment": environment,
            "ref": ref,
            "sha": sha,
            "run_id": run_id,
            "requested_by": review.requested_by,
        },
        reason_codes=["POLICY_REQUIRES_APPROVAL"],
        timeout_seconds=settings.CONTROLPLANE_GITHUB_REVIEW_TIMEOUT_SECONDS,
    )
    if review.approval_id != approval.id:
        review.approval_id = approval.id
        review.save(update_fields=["approval_id"])
    return {"approval": approval.id, "content_hash": approval.content_hash}


def deployment_review_resolve(approval: Any) -> None:
    """The approvals resolver of `channels.github.deployment`: the decision to GitHub, through the outbox
    (inside the deciding transaction: the row commits with the decision)."""
    review = (
        DeploymentReview.objects.select_related("connection__tenant")
        .filter(subject=approval.subject_id, tenant_id=approval.tenant_id)
        .first()
    )
    if review is None:
        return
    state = "approved" if approval.status == "approved" else "rejected"
    deciders = ", ".join(
        f"{d.approver.name}: {d.reason}" for d in approval.decisions.select_related("approver").order_by("id")
    )
    comment = f"{approval.status} in the control plane" + (f" ({deciders})" if deciders else "")
    channel_message_enqueue(
        connection=review.connection,
        key=f"{REVIEW_KIND}:{review.pk}:{approval.id}",
        kind=REVIEW_KIND,
        to=review.repository,
        method=OutboundMethod.REVIEW,
        payload={
            "path": f"/repos/{review.repository}/actions/runs/{review.run_id}/deployment_protection_rule",
            "body": {"environment_name": review.environment, "state": state, "comment": comment[:1000]},
        },
        approval_id=approval.id,
    )
