"""`replay --verify`: compare the fold with the projection tables, re-run compilation and policy, and
re-take every approval and dispatch (`decisions.py`).

See the package docstring for the kinds of check and docs/replay.md for what each field means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from approvals.models import ApprovalRequest
from controlplane.identity.models import Principal
from controlplane.kernel.canonical import canonical_bytes
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.replay import Difference, ReplayReport
from controlplane.policy.evaluation import PolicyDecision, evaluate
from controlplane.policy.models import PolicyProfile
from controlplane.runtime.compiler import PlanRejected, plan_canonical_body, plan_compile
from controlplane.runtime.models import (
    Execution,
    Intent,
    KillSwitch,
    Plan,
    PlanStep,
    Runner,
    RunnerGrant,
    StepRun,
)
from controlplane.runtime.replay.decisions import decisions_check
from controlplane.runtime.replay.fold import (
    ApprovalState,
    ExecutionState,
    IntentState,
    Ledger,
    PlanState,
    StepState,
    fold,
    recorded_facts,
    runtime_events,
    sha256,
)
from controlplane.runtime.runners import MIGRATION_GRANT
from controlplane.runtime.verdicts import (
    escalation_ladder,
    policy_context_build,
    policy_context_from_record,
    policy_context_record,
    verdict_record,
)
from skills.models import ActionContract


@dataclass
class _Lookups:
    """Rows replay reads more than once: contracts, profile versions, principals; and what each step's
    approval request must say (filled while executions are re-evaluated)."""

    profiles: dict[tuple[str, Any], PolicyProfile | None] = field(default_factory=dict)
    contracts: dict[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict)
    principals: dict[str, Principal | None] = field(default_factory=dict)
    # approval request id -> (the decision that opened it, the expiry that decision gives)
    step_approvals: dict[str, tuple[PolicyDecision, datetime | None]] = field(default_factory=dict)

    def profile(self, name: str, version: Any) -> PolicyProfile | None:
        if (name, version) not in self.profiles:
            self.profiles[(name, version)] = PolicyProfile.objects.filter(name=name, version=version).first()
        return self.profiles[(name, version)]

    def contract(self, name: str, version: str) -> dict[str, Any] | None:
        """An action contract as plain data, whatever its skill's status now (it was installed then)."""
        if (name, version) not in self.contracts:
            row = ActionContract.objects.filter(name=name, version=version).first()
            self.contracts[(name, version)] = row.as_contract() if row else None
        return self.contracts[(name, version)]

    def principal_kind(self, ledger: Ledger, ref: str) -> str | None:
        """The kind a principal was created with, as the ledger recorded it; for one created without that
        event (a fixture, an import), its row's kind, which no service changes. None: nobody knows it."""
        if ref in ledger.principal_kinds:
            return ledger.principal_kinds[ref]
        row = self.principal(ref)
        return row.kind if row is not None else None

    def principal(self, ref: str) -> Principal | None:
        if ref not in self.principals:
            tenant, _, name = ref.partition("/")
            self.principals[ref] = (
                Principal.objects.select_related("tenant").filter(tenant__slug=tenant, name=name).first()
            )
        return self.principals[ref]


def _intents_in_scope(ledger: Ledger, execution_id: str | None) -> set[str]:
    """Every intent, or the one behind `execution_id` (as the ledger and the table name it)."""
    if execution_id is None:
        return set(ledger.intents) | set(Intent.objects.values_list("id", flat=True))
    found = ledger.executions.get(execution_id)
    row = Execution.objects.filter(pk=execution_id).values_list("intent_id", flat=True).first()
    return {i for i in (found.intent if found else None, row) if i}


def _compare(report: ReplayReport, subject: str, pairs: dict[str, tuple[Any, Any]], seq: int | None) -> None:
    for name, (recorded, rebuilt) in pairs.items():
        report.differ(subject, name, recorded, rebuilt, seq)


def _check_intents(report: ReplayReport, ledger: Ledger, lookups: _Lookups, ids: set[str]) -> None:
    rows = {i.id: i for i in Intent.objects.filter(pk__in=ids).select_related("tenant", "principal__tenant")}
    for intent_id in sorted(ids):
        row, state = rows.get(intent_id), ledger.intents.get(intent_id)
        subject = f"intent/{intent_id}"
        if row is None or state is None:
            report.differ(subject, "exists", row is not None, state is not None, state.seq if state else None)
            continue
        report.checked += 1
        _compare(
            report,
            subject,
            {
                "tenant": (row.tenant.slug, state.tenant),
                "principal": (row.principal.ref, state.actor),
                "idempotency_key": (row.idempotency_key, state.idempotency_key),
                "draft": (row.draft, state.draft),
                "status": (row.status, state.status),
                "rejection": (row.rejection, state.rejection),
                "plan": (row.plan_id, state.plan),
                "traceparent": (row.traceparent, state.traceparent),
                "trace_id": (row.trace_id, state.trace_id),
                "received_at": (row.received_at, state.received_at),
            },
            state.seq,
        )
        _compare(
            report,
            subject,
            {
                "ledger.draft_hash": (state.draft_hash, sha256(canonical_bytes(state.draft))),
                "ledger.id": (intent_id, sha256(f"{state.actor}\n{state.idempotency_key}")),
            },
            state.seq,
        )
        _recompile(report, ledger, lookups, state)


def _pinned_resolver(
    answers: dict[tuple[str, str | None], str | None], lookups: _Lookups, unrecorded: list[tuple[str, Any]]
):
    """Resolve contracts as the recorded compilation did: the same version, whatever is newest now."""

    def resolve(name: str, version: str | None) -> dict[str, Any] | None:
        if (name, version) not in answers:
            unrecorded.append((name, version))
            return None
        resolved = answers[(name, version)]
        if isinstance(resolved, ControlPlaneError):  # the registry refused it then (SKILL_NOT_ACTIVE)
            raise resolved
        return lookups.contract(name, resolved) if resolved else None

    return resolve


def _recompile(report: ReplayReport, ledger: Ledger, lookups: _Lookups, intent: IntentState) -> None:
    subject = f"intent/{intent.id}"
    plan = ledger.plan_events.get(intent.id)
    if plan is not None:
        by_key = {s["key"]: s for s in plan.steps}
        draft_steps = intent.draft.get("steps", []) if isinstance(intent.draft, dict) else []
        answers = {
            (s.get("action"), s.get("version")): by_key[s["key"]]["action_version"]
            for s in draft_steps
            if isinstance(s, dict) and s.get("key") in by_key
        }
    else:
        answers = {
            (c["action"], c["version"]): (
                ControlPlaneError(c["refused"], intent.rejection.get("detail", ""))
                if c.get("refused")
                else c["resolved"]
            )
            for c in intent.contracts
        }
    unrecorded: list[tuple[str, Any]] = []
    try:
        # A plan recorded with the tenant in its id is compiled again for the intent's tenant (so a plan id
        # derived from another tenant differs); an older one (no `tenant` on its plan.compiled) in the older
        # form. A refusal carries no id: either form gives the same answer.
        tenant = None if plan is not None and plan.tenant is None else intent.tenant
        compiled = plan_compile(
            draft=intent.draft, resolve=_pinned_resolver(answers, lookups, unrecorded), tenant=tenant
        )
        outcome: dict[str, Any] = {
            "status": "compiled",
            "plan": compiled.plan_id,
            "goal": compiled.goal,
            "context": compiled.context,
            "steps": [s.as_dict() for s in compiled.steps],
        }
    except PlanRejected as refusal:
        outcome = {"status": "rejected", "rejection": refusal.as_dict()}
    if unrecorded:
        report.differ(subject, "compile.contract_lookups", [], unrecorded, intent.seq)
    if plan is not None:
        recorded = {
            "status": "compiled",
            "plan": plan.id,
            "goal": plan.goal,
            "context": plan.context,
            "steps": plan.steps,
        }
    else:
        recorded = {"status": intent.status or "missing", "rejection": intent.rejection}
    for key in sorted(set(recorded) | set(outcome)):
        report.differ(subject, f"compile.{key}", recorded.get(key), outcome.get(key), intent.seq)


def _plan_canonical(plan: PlanState) -> str:
    body_steps = [
        {
            "key": s["key"],
            "action": s["action"],
            "action_version": s["action_version"],
            "contract_hash": s["contract_hash"],
            "inputs": s["inputs"],
            "depends_on": s["depends_on"],
        }
        for s in plan.steps
    ]
    body = plan_canonical_body(tenant=plan.tenant, goal=plan.goal, context=plan.context, steps=body_steps)
    return canonical_bytes(body).decode()


def _check_plans(report: ReplayReport, ledger: Ledger, ids: set[str]) -> None:
    rows = {p.id: p for p in Plan.objects.filter(pk__in=ids).select_related("tenant")}
    steps_by_plan: dict[str, list[PlanStep]] = {}
    for step in PlanStep.objects.filter(plan_id__in=ids).order_by("plan_id", "position"):
        steps_by_plan.setdefault(step.plan_id, []).append(step)
    for plan_id in sorted(ids):
        row, state = rows.get(plan_id), ledger.plans.get(plan_id)
        subject = f"plan/{plan_id}"
        if row is None or state is None:
            report.differ(subject, "exists", row is not None, state is not None, state.seq if state else None)
            continue
        canonical = _plan_canonical(state)
        _compare(
            report,
            subject,
            {
                "goal": (row.goal, state.goal),
                "context": (row.context, state.context),
                "canonical": (row.canonical, canonical),
                "compiled_at": (row.compiled_at, state.compiled_at),
                "ledger.id": (plan_id, sha256(canonical)),
            },
            state.seq,
        )
        recorded_steps = [
            {
                "position": s.position,
                "key": s.key,
                "action": s.action,
                "action_version": s.action_version,
                "risk_tier": s.base_tier,
                "executor": s.executor,
                "contract_hash": s.contract_hash,
                "inputs": s.inputs,
                "depends_on": s.depends_on,
                "execution_key": s.execution_key,
            }
            for s in steps_by_plan.get(plan_id, [])
        ]
        rebuilt_steps = [{"position": index, **s} for index, s in enumerate(state.steps)]
        if len(recorded_steps) != len(rebuilt_steps):
            report.differ(subject, "steps", recorded_steps, rebuilt_steps, state.seq)
            continue
        for recorded, rebuilt in zip(recorded_steps, rebuilt_steps, strict=True):
            step_subject = f"{subject}/step/{rebuilt['key']}"
            for name in rebuilt:
                report.differ(step_subject, name, recorded.get(name), rebuilt[name], state.seq)


def _check_executions(report: ReplayReport, ledger: Ledger, lookups: _Lookups, ids: set[str]) -> None:
    rows = {
        e.id: e
        for e in Execution.objects.filter(pk__in=ids)
        .select_related("tenant")
        .prefetch_related("step_runs__step")
    }
    for execution_id in sorted(ids):
        row, state = rows.get(execution_id), ledger.executions.get(execution_id)
        subject = f"execution/{execution_id}"
        if row is None or state is None:
            report.differ(subject, "exists", row is not None, state is not None, state.seq if state else None)
            continue
        report.checked += 1
        _compare(
            report,
            subject,
            {
                "intent": (row.intent_id, state.intent),
                "plan": (row.plan_id, state.plan),
                "tenant": (row.tenant.slug, state.tenant),
                "status": (row.status, state.status),
                "trace_id": (row.trace_id, state.trace_id),
                "traceparent": (row.traceparent, state.traceparent),
                "environment": (row.environment, state.environment),
                "profile_name": (row.profile_name, state.profile.get("name")),
                "profile_version": (row.profile_version, state.profile.get("version")),
                "profile_hash": (row.profile_hash, state.profile.get("content_hash")),
                "started_at": (row.started_at, state.started_at),
                "finished_at": (row.finished_at, state.finished_at),
                "reason_codes": (row.reason_codes, state.reason_codes),
                "ledger.id": (execution_id, sha256(f"execution\n{state.intent}")),
            },
            state.seq,
        )
        if state.completed_outcomes is not None:
            outcomes = {key: step.outcome for key, step in state.steps.items()}
            report.differ(subject, "ledger.outcomes", state.completed_outcomes, outcomes, state.seq)
        runs = {run.step.key: run for run in row.step_runs.all()}
        for key in sorted(set(runs) | set(state.steps)):
            _check_step(report, f"{subject}/step/{key}", runs.get(key), state.steps.get(key), state.seq)
        _reevaluate(report, ledger, lookups, state)


def _check_step(
    report: ReplayReport, subject: str, run: StepRun | None, step: StepState | None, seq: int
) -> None:
    if run is None or step is None:
        report.differ(subject, "exists", run is not None, step is not None, seq)
        return
    verdict = step.verdict
    _compare(
        report,
        subject,
        {
            "status": (run.status, step.status),
            "verdict": (run.verdict, verdict.get("verdict")),
            "enforced": (run.enforced, verdict.get("enforced")),
            "effective_tier": (run.effective_tier, verdict.get("tier")),
            "quorum": (run.quorum, verdict.get("quorum")),
            "decision_hash": (run.decision_hash, verdict.get("decision_hash")),
            "decision": (sha256(canonical_bytes(run.decision)), verdict.get("decision_hash")),
            "approval": (run.approval_id, step.approval),
            "attempts": (run.attempts, step.attempts),
            "started_at": (run.started_at, step.started_at),
            "finished_at": (run.finished_at, step.finished_at),
            "outcome": (run.outcome, step.outcome),
            "reason_codes": (run.reason_codes, step.reason_codes),
            "attempt_log": (run.attempt_log, step.attempt_log),
        },
        seq,
    )
    if step.attempts and run.dispatched_at is None:
        report.differ(subject, "dispatched_at", None, "set (the step started)", seq)


def _recorded_profile(
    report: ReplayReport, lookups: _Lookups, subject: str, ref: dict[str, Any], seq: int
) -> Any:
    """The recorded profile version, checked against its recorded hash; False when it cannot be used."""
    if not ref.get("name"):
        return None  # no profile was active: the recorded decisions say POLICY_MISSING
    row = lookups.profile(ref["name"], ref.get("version"))
    if row is None:
        report.differ(subject, "policy.profile", ref, "no such profile version", seq)
        return False
    if row.content_hash != ref.get("content_hash"):
        report.differ(subject, "policy.profile_hash", ref.get("content_hash"), row.content_hash, seq)
        return False
    try:
        return row.as_content()
    except ControlPlaneError as exc:
        report.differ(subject, "policy.profile", ref, exc.code, seq)
        return False


def _reevaluate(report: ReplayReport, ledger: Ledger, lookups: _Lookups, execution: ExecutionState) -> None:
    """Evaluate every step again with the recorded context under the recorded profile version."""
    subject = f"execution/{execution.id}"
    if execution.context is None:
        report.differ(
            subject, "policy.context", None, "plan.verified records no policy context", execution.seq
        )
        return
    plan = ledger.plans[execution.plan]
    principal = lookups.principal(execution.actor)
    if principal is None:
        report.differ(subject, "policy.principal", execution.actor, "no such principal", execution.seq)
    else:
        rebuilt = policy_context_build(
            principal=principal, environment=execution.environment, plan_context=plan.context or {}
        )
        report.differ(
            subject,
            "policy.context",
            execution.context,
            policy_context_record(context=rebuilt),
            execution.seq,
        )
    profile = _recorded_profile(report, lookups, subject, execution.profile, execution.seq)
    if profile is False:
        return
    context = policy_context_from_record(recorded=execution.context)
    for key, facts in recorded_facts(plan).items():
        decision = evaluate(step=facts, context=context, profile=profile)
        recorded = execution.steps[key].verdict
        for name, value in verdict_record(decision=decision).items():
            report.differ(f"{subject}/step/{key}", f"policy.{name}", recorded.get(name), value, execution.seq)
        request = ledger.step_requests.get((execution.id, key))
        if request is not None:
            timeout = decision.approval_timeout_seconds
            expires_at = request.created_at + timedelta(seconds=timeout) if timeout else None
            lookups.step_approvals[request.id] = (decision, expires_at)


def _check_step_approval(
    report: ReplayReport,
    request: ApprovalState,
    row: ApprovalRequest,
    expected: tuple[PolicyDecision, datetime | None],
) -> None:
    """What a step's approval request must say, given the decision that opened it."""
    decision, expires_at = expected
    subject = f"approval/{request.id}"
    ladder = escalation_ladder(decision=decision)
    report.differ(subject, "policy.quorum", request.quorum, max(decision.quorum, 1), request.seq)
    report.differ(subject, "policy.risk_tier", request.risk_tier, decision.tier, request.seq)
    report.differ(
        subject, "policy.reason_codes", request.reason_codes, list(decision.reason_codes), request.seq
    )
    report.differ(subject, "expires_at", row.expires_at, expires_at, request.seq)
    report.differ(subject, "escalation_ladder", row.escalation_ladder, ladder, request.seq)


def _check_approvals(report: ReplayReport, ledger: Ledger, lookups: _Lookups, ids: set[str]) -> None:
    executions = {state.step[0] for i in ids if (state := ledger.approvals.get(i)) and state.step}
    run_ids = {
        (execution, key): str(pk)
        for execution, key, pk in StepRun.objects.filter(execution_id__in=executions).values_list(
            "execution_id", "step__key", "pk"
        )
    }
    rows = {
        r.id: r
        for r in ApprovalRequest.objects.filter(pk__in=ids)
        .select_related("tenant", "requested_by__tenant")
        .prefetch_related("decisions__approver__tenant")
    }
    for request_id in sorted(ids):
        row, state = rows.get(request_id), ledger.approvals.get(request_id)
        subject = f"approval/{request_id}"
        if row is None or state is None:
            report.differ(subject, "exists", row is not None, state is not None, state.seq if state else None)
            continue
        report.checked += 1
        decisions = [
            {
                "approver": d.approver.ref,
                "decision": d.decision,
                "reason": d.reason,
                "content_hash": d.content_hash,
                "decided_at": d.decided_at,
            }
            for d in row.decisions.all()
        ]
        _compare(
            report,
            subject,
            {
                "tenant": (row.tenant.slug, state.tenant),
                "subject_kind": (row.subject_kind, state.subject_kind),
                "subject_id": (row.subject_id, state.subject_id),
                "content_hash": (row.content_hash, state.content_hash),
                "risk_tier": (row.risk_tier, state.risk_tier),
                "quorum": (row.quorum, state.quorum),
                "reason_codes": (row.reason_codes, state.reason_codes),
                "requested_by": (row.requested_by.ref, state.requested_by),
                "status": (row.status, state.status),
                "escalation_level": (row.escalation_level, state.escalation_level),
                "created_at": (row.created_at, state.created_at),
                "decided_at": (row.decided_at, state.decided_at),
                "consumed_at": (row.consumed_at, state.consumed_at),
                "decisions": (decisions, state.decisions),
            },
            state.seq,
        )
        if state.step is not None:
            report.differ(subject, "subject_id", row.subject_id, run_ids.get(state.step), state.seq)
        if request_id in lookups.step_approvals:
            _check_step_approval(report, state, row, lookups.step_approvals[request_id])


def _check_killswitches(report: ReplayReport, ledger: Ledger) -> None:
    rows = {(s.scope, s.target): s for s in KillSwitch.objects.all()}
    for key in sorted(set(rows) | set(ledger.killswitches)):
        row, state = rows.get(key), ledger.killswitches.get(key)
        subject = f"killswitch/{key[0]}/{key[1] or '*'}"
        if row is None or state is None:
            report.differ(subject, "exists", row is not None, state is not None)
            continue
        report.checked += 1
        _compare(
            report,
            subject,
            {
                "engaged": (row.engaged, state.engaged),
                "reason": (row.reason, state.reason),
                "changed_by": (row.changed_by, state.changed_by),
                "changed_at": (row.changed_at, state.changed_at),
            },
            None,
        )


def _check_runners(report: ReplayReport, ledger: Ledger) -> None:
    rows = {r.name: r for r in Runner.objects.select_related("tenant")}
    # Grants the runner-tenancy migration made are not on the ledger (a migration cannot sign): they are
    # left out of the comparison, and named in docs/security.md as grants to review after upgrading.
    grants: dict[str, set[str]] = {}
    for runner_name, tenant in RunnerGrant.objects.exclude(
        granted_by__startswith=MIGRATION_GRANT
    ).values_list("runner__name", "tenant__slug"):
        grants.setdefault(runner_name, set()).add(tenant)
    for name in sorted(set(rows) | set(ledger.runners)):
        row, state = rows.get(name), ledger.runners.get(name)
        subject = f"runner/{name}"
        if row is None or state is None:
            report.differ(subject, "exists", row is not None, state is not None)
            continue
        report.checked += 1
        _compare(
            report,
            subject,
            {
                "url": (row.url, state.url),
                "secret_env": (row.secret_env, state.secret_env),
                "timeout_seconds": (row.timeout_seconds, state.timeout_seconds),
                "enabled": (row.enabled, state.enabled),
                "changed_by": (row.changed_by, state.changed_by),
                "changed_at": (row.changed_at, state.changed_at),
                "tenant": (row.tenant.slug if row.tenant else "", state.tenant),
                "grants": (sorted(grants.get(name, set())), sorted(state.grants)),
            },
            None,
        )


def replay_verify(*, execution_id: str | None = None) -> ReplayReport:
    """Rebuild the action flow from the ledger and report every difference (see the module docstring).

    With `execution_id`, only that execution, its intent, plan and step approvals are compared (the fold
    still reads every event of the flow, since the state of one depends on events of others). Refuses an
    execution known neither to the ledger nor to the tables with NOT_FOUND.
    """
    ledger = fold(runtime_events())
    report = ReplayReport(domain="runtime")
    if execution_id is not None:
        if execution_id not in ledger.executions and not Execution.objects.filter(pk=execution_id).exists():
            raise ControlPlaneError("NOT_FOUND", f"no execution {execution_id} in the ledger or the tables")
        executions = {execution_id}
    else:
        executions = set(ledger.executions) | set(Execution.objects.values_list("id", flat=True))
    intents = _intents_in_scope(ledger, execution_id)
    plans = {ledger.intents[i].plan for i in intents if i in ledger.intents and ledger.intents[i].plan}
    plans |= set(Intent.objects.filter(pk__in=intents, plan__isnull=False).values_list("plan_id", flat=True))
    if execution_id is None:
        plans |= set(Plan.objects.values_list("id", flat=True)) | set(ledger.plans)
        approvals = set(ledger.approvals) | set(ApprovalRequest.objects.values_list("id", flat=True))
    else:
        approvals = {a.id for a in ledger.approvals.values() if a.step and a.step[0] == execution_id}
        approvals |= set(
            StepRun.objects.filter(execution_id=execution_id, approval__isnull=False).values_list(
                "approval_id", flat=True
            )
        )
    for subject, name, recorded, rebuilt, seq in ledger.anomalies:
        if execution_id is None or execution_id in subject or subject.removeprefix("approval/") in approvals:
            report.differences.append(Difference(subject, name, recorded, rebuilt, seq))
    lookups = _Lookups()
    _check_intents(report, ledger, lookups, intents)
    _check_plans(report, ledger, plans)
    _check_executions(report, ledger, lookups, executions)
    _check_approvals(report, ledger, lookups, approvals)
    decisions_check(
        report=report,
        ledger=ledger,
        approvals=approvals,
        executions=executions,
        kind_of=lambda ref: lookups.principal_kind(ledger, ref),
        step_approvals=lookups.step_approvals,
    )
    if execution_id is None:
        _check_killswitches(report, ledger)
        _check_runners(report, ledger)
    return report
