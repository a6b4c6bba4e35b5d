"""Re-taking the decisions of people and switches: every approval, every dispatch under a kill switch.

The projection checks (verify.py) prove the tables follow from the events; these prove the events
themselves follow the rules, judged from what the ledger recorded and nothing the event under check says
about itself:

- **Approvals** (every subject kind): each `approval.request.decided` is by a human principal (the kind
  `identity.principal.created` recorded; a principal created without that event, by a fixture or an
  import, is judged by its row, whose kind no service changes), not by the requester (nor, for a step, by
  the principal whose intent it is), once per approver, before the deadline, on the request's content
  hash; an `approved` event has at least the quorum of such approvals before it (the quorum policy gives
  again for a step, the recorded one otherwise); a `consumed` event follows a grant and names the same
  content hash. A step's request is bound to the content hash of the step (the fold matched it by the hash
  computed from the plan's step and its execution key), and the started step runs that execution key.
- **Dispatch**: no `execution.step.started` while a kill switch covering the step (global, its tenant,
  its action: `selectors.killswitch_covers`, the runtime's own judgement) was engaged by the
  `killswitch.*` events before that seq; no step that needed people started before its approval was
  granted and consumed; no step that policy denied started at all.

Each violation is a `Difference` whose rebuilt side starts with its reason code (`CODE: what was found`):
APPROVAL_APPROVER_NOT_HUMAN, APPROVAL_SELF_APPROVAL, APPROVAL_DUPLICATE_DECISION, APPROVAL_EXPIRED,
APPROVAL_CONTENT_CHANGED, APPROVAL_NOT_PENDING, APPROVAL_QUORUM_NOT_MET, APPROVAL_NOT_GRANTED,
KILL_SWITCH_ENGAGED, and the deny codes of the step's verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from controlplane.identity.models import PrincipalKind
from controlplane.kernel.replay import Difference, ReplayReport
from controlplane.policy.evaluation import PolicyDecision
from controlplane.policy.models import PolicyVerdict
from controlplane.runtime.replay.fold import ApprovalState, Ledger, RequestEvent, StepStart
from controlplane.runtime.services import APPROVAL_SUBJECT

_FINAL = ("approved", "rejected", "expired", "cancelled")


def _violation(
    report: ReplayReport, subject: str, name: str, recorded: object, code: str, detail: str, seq: int
) -> None:
    report.differences.append(Difference(subject, name, recorded, f"{code}: {detail}", seq))


def _judge_decision(
    report: ReplayReport,
    request: ApprovalState,
    event: RequestEvent,
    *,
    kind_of: Callable[[str], str | None],
    requesters: set[str],
    expires_at: datetime | None,
    final_seq: int | None,
) -> bool:
    """Report what is wrong with one recorded decision; True when it may count towards the quorum."""
    subject, approver, seq = f"approval/{request.id}", event.data.get("approver", ""), event.seq
    recorded = f"{approver} {event.data.get('decision')}"
    valid = True
    kind = kind_of(approver)
    if kind != PrincipalKind.HUMAN:
        _violation(
            report,
            subject,
            "approval.approver",
            recorded,
            "APPROVAL_APPROVER_NOT_HUMAN",
            f"{approver} is of kind {kind}"
            if kind
            else f"{approver} is no principal the ledger or tables know",
            seq,
        )
        valid = False
    if approver in requesters:
        _violation(
            report,
            subject,
            "approval.approver",
            recorded,
            "APPROVAL_SELF_APPROVAL",
            f"{approver} asked for this approval",
            seq,
        )
        valid = False
    if expires_at is not None and event.at >= expires_at:
        _violation(
            report,
            subject,
            "approval.deadline",
            recorded,
            "APPROVAL_EXPIRED",
            f"decided at {event.at.isoformat()}, the request expired at {expires_at.isoformat()}",
            seq,
        )
        valid = False
    if event.data.get("content_hash") != request.content_hash:
        _violation(
            report,
            subject,
            "approval.content_hash",
            event.data.get("content_hash"),
            "APPROVAL_CONTENT_CHANGED",
            f"the request is bound to {request.content_hash}",
            seq,
        )
        valid = False
    if final_seq is not None and seq > final_seq:
        _violation(
            report,
            subject,
            "approval.decided",
            recorded,
            "APPROVAL_NOT_PENDING",
            f"the request was final at seq {final_seq}",
            seq,
        )
        valid = False
    return valid


def _approval_check(
    report: ReplayReport,
    request: ApprovalState,
    *,
    kind_of: Callable[[str], str | None],
    requesters: set[str],
    quorum: int,
    expires_at: datetime | None,
) -> None:
    """Re-take one approval from its recorded events (see the module docstring)."""
    subject = f"approval/{request.id}"
    final_seq = next((e.seq for e in request.events if e.verb in _FINAL), None)
    approvers: set[str] = set()  # distinct people whose approval counts
    seen: set[str] = set()  # everyone who decided so far
    granted: RequestEvent | None = None
    for event in request.events:
        if event.verb != "decided" and event.data.get("content_hash", request.content_hash) != (
            request.content_hash
        ):
            _violation(
                report,
                subject,
                "approval.content_hash",
                event.data.get("content_hash"),
                "APPROVAL_CONTENT_CHANGED",
                f"{event.verb}, but the request is bound to {request.content_hash}",
                event.seq,
            )
        if event.verb == "decided":
            approver = event.data.get("approver", "")
            valid = _judge_decision(
                report,
                request,
                event,
                kind_of=kind_of,
                requesters=requesters,
                expires_at=expires_at,
                final_seq=final_seq,
            )
            if approver in seen:
                _violation(
                    report,
                    subject,
                    "approval.approver",
                    f"{approver} {event.data.get('decision')}",
                    "APPROVAL_DUPLICATE_DECISION",
                    f"{approver} had decided already",
                    event.seq,
                )
                valid = False
            seen.add(approver)
            if valid and event.data.get("decision") == "approve":
                approvers.add(approver)
        elif event.verb == "approved" and granted is None:
            granted = event
            if len(approvers) < quorum:
                _violation(
                    report,
                    subject,
                    "approval.quorum",
                    "approved",
                    "APPROVAL_QUORUM_NOT_MET",
                    f"{len(approvers)} valid approval(s) by distinct people, quorum {quorum}",
                    event.seq,
                )
            if expires_at is not None and event.at >= expires_at:
                _violation(
                    report,
                    subject,
                    "approval.deadline",
                    "approved",
                    "APPROVAL_EXPIRED",
                    f"granted at {event.at.isoformat()}, the request expired at {expires_at.isoformat()}",
                    event.seq,
                )
        elif event.verb == "consumed" and granted is None:
            _violation(
                report,
                subject,
                "approval.consumed",
                "consumed",
                "APPROVAL_NOT_GRANTED",
                "no approved event before it",
                event.seq,
            )


def _start_check(report: ReplayReport, start: StepStart, ledger: Ledger) -> None:
    """Re-take one dispatch: no covering switch engaged, the approval granted and used, not denied."""
    subject = f"execution/{start.execution}/step/{start.step}"
    recorded = f"started (attempt {start.attempt})"
    if start.switch is not None:
        switch = start.switch
        _violation(
            report,
            subject,
            "dispatch.killswitch",
            recorded,
            "KILL_SWITCH_ENGAGED",
            f"{switch.scope}/{switch.target or '*'} engaged by {switch.changed_by} at "
            f"{switch.changed_at.isoformat()}",
            start.seq,
        )
    if start.acting == PolicyVerdict.REQUIRE_APPROVAL:
        if not start.consumed:
            _violation(
                report,
                subject,
                "dispatch.approval",
                recorded,
                "APPROVAL_NOT_GRANTED",
                f"request {start.request} not granted and consumed before" if start.request else "no request",
                start.seq,
            )
        execution = ledger.executions[start.execution]
        expected = next(s for s in ledger.plans[execution.plan].steps if s["key"] == start.step)
        if start.execution_key != expected["execution_key"]:
            _violation(
                report,
                subject,
                "dispatch.execution_key",
                start.execution_key,
                "APPROVAL_CONTENT_CHANGED",
                f"the approval covers execution key {expected['execution_key']}",
                start.seq,
            )
    elif start.acting == PolicyVerdict.DENY:
        codes = [c for c in start.verdict.get("reason_codes", []) if c.startswith("POLICY_")]
        _violation(
            report,
            subject,
            "dispatch.verdict",
            recorded,
            (codes or ["POLICY_MISSING"])[0],
            "policy denied this step",
            start.seq,
        )


def decisions_check(
    *,
    report: ReplayReport,
    ledger: Ledger,
    approvals: set[str],
    executions: set[str],
    kind_of: Callable[[str], str | None],
    step_approvals: dict[str, tuple[PolicyDecision, datetime | None]],
) -> None:
    """Re-take every approval in `approvals` and every recorded start of a step of `executions`."""
    for request_id in sorted(approvals):
        request = ledger.approvals.get(request_id)
        if request is None:
            continue  # reported as `exists` by the projection check
        requesters = {request.requested_by}
        quorum, expires_at = request.quorum, None
        if request.subject_kind == APPROVAL_SUBJECT and request.step is not None:
            requesters.add(ledger.executions[request.step[0]].actor)
            if request_id in step_approvals:
                decision, expires_at = step_approvals[request_id]
                quorum = max(decision.quorum, 1)
        _approval_check(
            report, request, kind_of=kind_of, requesters=requesters, quorum=quorum, expires_at=expires_at
        )
    for start in ledger.starts:
        if start.execution in executions:
            _start_check(report, start, ledger)
