"""Reads of the runtime for the services, the API, the console and the CLI: which kill switch covers a
step; the actions a plan may name; and behind the runtime's console pages: executions, the trace
explorer, the kill switch and what it holds; what the approval queue shows of a plan step; and the
dashboard's executions panel.

Everything is restricted to the principal's tenant, like the API. Every page costs a fixed number of
queries however many steps a plan has (tests pin the counts).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.paginator import Page, Paginator
from django.db.models import Case, Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, When

from approvals.selectors import QueueRow, SiblingStep
from controlplane.identity.models import Principal
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.selectors import EventVerification, event_verify
from controlplane.ledger.verify import load_keys
from controlplane.runtime.models import (
    STEP_FINAL,
    Execution,
    ExecutionStatus,
    KillSwitch,
    KillSwitchScope,
    StepRun,
    StepStatus,
)
from controlplane.runtime.traces import Trace, TraceNode
from skills.models import ActionContract, SkillStatus
from skills.selectors import action_get

EXECUTIONS_PAGE_SIZE = 25
FAILED_WINDOW = timedelta(hours=24)  # the dashboard counts the failures of the last day


# --- Runtime reads -------------------------------------------------------------------------------------


def killswitch_covers(*, scope: str, target: str, tenant: str, action: str) -> bool:
    """Does a switch of this scope and target cover a step of this tenant and action? Pure: the runtime
    judges a dispatch with it, and replay judges every recorded dispatch again with the same function."""
    return (
        scope == KillSwitchScope.GLOBAL
        or (scope == KillSwitchScope.TENANT and target == tenant)
        or (scope == KillSwitchScope.ACTION and target == action)
    )


def killswitch_engaged_for(*, tenant: str, action: str) -> KillSwitch | None:
    """The engaged switch that covers this tenant and action, if any. Read fresh each time (no cache).

    Engaged switches are few (an operator's emergency brake), so all of them are read and judged by
    `killswitch_covers`, in scope order as before.
    """
    for switch in KillSwitch.objects.filter(engaged=True).order_by("scope"):
        if killswitch_covers(scope=switch.scope, target=switch.target, tenant=tenant, action=action):
            return switch
    return None


# --- The actions a plan may name ----------------------------------------------------------------------


def actions_installed() -> list[ActionContract]:
    """Every action a plan step may name now: the newest version of each, from installed skills that
    still verify (what compilation resolves, `skills.selectors.action_get`), by name."""
    names = (
        ActionContract.objects.filter(skill__status=SkillStatus.INSTALLED)
        .order_by("name")
        .values_list("name", flat=True)
        .distinct()
    )
    return [contract for name in names if (contract := action_get(name=name)) is not None]


# --- The approval queue's plan steps -------------------------------------------------------------------


def approval_queue_context(rows: list[QueueRow]) -> None:
    """What the approval queue shows of approvals of plan steps: the plan around each, its trace, and the
    policy rules that matched. Two queries for the page: the steps of the plans around the page's steps,
    and those steps' policy trails."""
    step_rows = {int(row.approval.subject_id): row for row in rows}
    for row in rows:
        row.is_step = True
    executions = {row.summary.get("execution") for row in step_rows.values()} - {None}
    plan_steps: dict[str, list[StepRun]] = defaultdict(list)
    for run in (
        StepRun.objects.filter(execution_id__in=executions)
        .select_related("step", "execution")
        .only(
            "id",
            "status",
            "verdict",
            "effective_tier",
            "execution_id",
            "execution__trace_id",
            "step__key",
            "step__action",
            "step__position",
        )
        .order_by("execution_id", "step__position")
    ):
        plan_steps[run.execution_id].append(run)
    trails = dict(StepRun.objects.filter(pk__in=list(step_rows)).order_by().values_list("pk", "decision"))
    for run_id, row in step_rows.items():
        runs = plan_steps.get(row.summary.get("execution"), [])
        row.siblings = [
            SiblingStep(
                key=run.step.key,
                action=run.step.action,
                status=run.status,
                verdict=run.verdict,
                tier=run.effective_tier,
                is_subject=run.pk == run_id,
            )
            for run in runs
        ]
        row.trace_id = runs[0].execution.trace_id if runs else ""
        row.trail = [entry for entry in (trails.get(run_id) or {}).get("trail", []) if entry["matched"]]


# --- States in words ----------------------------------------------------------------------------------

_STEP_WORDS = {
    StepStatus.PENDING: "waiting for earlier steps",
    StepStatus.WAITING_APPROVAL: "waiting for approval",
    StepStatus.READY: "queued",
    StepStatus.RUNNING: "running",
    StepStatus.COMPLETED: "completed",
    StepStatus.FAILED: "failed",
    StepStatus.CANCELLED: "cancelled",
    StepStatus.BLOCKED: "blocked",
}


def step_state(run: StepRun) -> str:
    """What an on-call person reads for a step: "waiting for approval", "held by the kill switch", the
    hold's own words for any other gate ("waiting for plugin runner-eu (crashed)"), "retry scheduled"."""
    if run.status == StepStatus.HELD:
        if run.held_gate == KILLSWITCH_GATE:
            return "held by the kill switch"
        return run.held_detail or "held"
    if run.status == StepStatus.READY and run.not_before is not None:
        return "retry scheduled"
    return _STEP_WORDS.get(run.status, run.status)


def execution_state(execution: Execution, runs: list[StepRun]) -> str:
    """An execution's state in words: its end, or what it waits for now (the most pressing first: the kill
    switch, a person, another hold, a step running, a step queued)."""
    if execution.status != ExecutionStatus.RUNNING:
        return str(execution.status)
    states = [step_state(run) for run in runs if run.status not in STEP_FINAL]
    for wanted in ("held by the kill switch", "waiting for approval"):
        if wanted in states:
            return wanted
    held = [step_state(run) for run in runs if run.status == StepStatus.HELD]
    if held:
        return held[0]
    for wanted in ("running", "retry scheduled", "queued"):
        if wanted in states:
            return wanted
    return "running"


# --- Executions --------------------------------------------------------------------------------------


def duration_words(seconds: float | None) -> str:
    """A duration as an on-call person reads it: "45 s", "3 min 05 s", "2 h 03 min", "3 d 4 h"."""
    if seconds is None:
        return ""
    total = max(int(seconds), 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def execution_duration(execution: Execution, *, now: datetime) -> str:
    """How long it ran (finished) or has been running so far."""
    end = execution.finished_at or now
    return duration_words((end - execution.started_at).total_seconds())


WAITING_STEP = (StepStatus.WAITING_APPROVAL, StepStatus.HELD)


def executions_page(*, principal: Principal, status: str, page: int, now: datetime) -> Page:
    """The tenant's executions: those waiting for a person or a hold first, oldest first (they have waited
    longest), then the rest newest first; each with its state in words and its duration. Three queries a
    page: the count, the page, its steps."""
    waiting = Exists(StepRun.objects.filter(execution_id=OuterRef("pk"), status__in=WAITING_STEP))
    executions = (
        Execution.objects.filter(tenant_id=principal.tenant_id)
        .select_related("plan", "intent__principal__tenant")
        .only(
            "id",
            "status",
            "trace_id",
            "started_at",
            "finished_at",
            "reason_codes",
            "environment",
            "profile_name",
            "profile_version",
            "plan__goal",
            "intent__principal__name",
            "intent__principal__tenant__slug",
        )
        .annotate(waiting=waiting & Q(status=ExecutionStatus.RUNNING))
        .order_by(
            F("waiting").desc(),
            Case(When(waiting=True, then=F("started_at"))).asc(nulls_last=True),
            "-started_at",
            "id",
        )
        .prefetch_related(
            Prefetch(
                "step_runs",
                queryset=StepRun.objects.select_related("step")
                .only(
                    "id", "execution_id", "status", "held_gate", "held_detail", "not_before", "step__position"
                )
                .order_by("step__position"),
            )
        )
    )
    if status:
        executions = executions.filter(status=status)
    result = Paginator(executions, EXECUTIONS_PAGE_SIZE).get_page(page)
    for execution in result.object_list:
        execution.state = execution_state(execution, list(execution.step_runs.all()))
        execution.duration = execution_duration(execution, now=now)
    return result


# --- Traces ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceVerification:
    """Each of the trace's events checked by the chain verifier, one by one."""

    results: dict[int, EventVerification]

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results.values())

    @property
    def failed(self) -> list[int]:
        return sorted(seq for seq, result in self.results.items() if not result.ok)


def trace_verify(*, trace: Trace) -> TraceVerification:
    """Verify every event the trace's nodes name (hash, columns, link to its predecessor, key, signature).

    Three queries: the events, their predecessors' hashes, and the keys; then each event goes through
    the same `verify_rows` the event page and `manage.py ledger verify` use.
    """
    seqs = trace.seqs()
    events = list(LedgerEvent.objects.filter(seq__in=seqs).order_by("seq"))
    previous = dict(LedgerEvent.objects.filter(seq__in=[s - 1 for s in seqs]).values_list("seq", "hash"))
    keys = load_keys()
    return TraceVerification(
        results={event.seq: event_verify(event=event, prev_hashes=previous, keys=keys) for event in events}
    )


@dataclass
class TraceRow:
    """A node of the tree as the explorer draws it: the node, its event's verification, its children."""

    node: TraceNode
    check: EventVerification | None
    children: list[TraceRow]


def trace_rows(*, trace: Trace, verification: TraceVerification) -> list[TraceRow]:
    def row(node: TraceNode) -> TraceRow:
        check = verification.results.get(node.seq) if node.seq is not None else None
        return TraceRow(node=node, check=check, children=[row(child) for child in node.children])

    return [row(root) for root in trace.roots]


@dataclass(frozen=True)
class TraceHeader:
    """What the trace page says first about one intent of the trace (Temporal's workflow header)."""

    goal: str
    submitted_by: str
    received_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration: str
    status: str  # the execution's status, or `rejected`
    outcome: str  # in words: "completed", "waiting for approval", "held by the kill switch" ...
    reason_codes: list[str]


def trace_headers(*, trace: Trace, now: datetime) -> list[TraceHeader]:
    """The goal, who submitted it, start, end, duration and outcome of each intent of the trace, from what
    `trace_get` already read (no query)."""
    headers = []
    for intent in trace.intents:
        execution = trace.executions.get(intent.pk)
        goal = intent.plan.goal if intent.plan else str((intent.draft or {}).get("goal", ""))
        if execution is None:
            code = (intent.rejection or {}).get("code")
            headers.append(
                TraceHeader(
                    goal=goal,
                    submitted_by=intent.principal.ref,
                    received_at=intent.received_at,
                    started_at=None,
                    finished_at=None,
                    duration="",
                    status=str(intent.status),
                    outcome=str(intent.status),
                    reason_codes=[code] if code else [],
                )
            )
            continue
        headers.append(
            TraceHeader(
                goal=goal,
                submitted_by=intent.principal.ref,
                received_at=intent.received_at,
                started_at=execution.started_at,
                finished_at=execution.finished_at,
                duration=execution_duration(execution, now=now),
                status=str(execution.status),
                outcome=execution_state(execution, list(execution.step_runs.all())),
                reason_codes=list(execution.reason_codes),
            )
        )
    return headers


def trace_outcomes(*, trace: Trace) -> list[str]:
    """What became of each intent of the trace: its execution's status, or `rejected`."""
    return [
        node.status
        for node in trace.nodes()
        if node.kind == "execution" or (node.kind == "plan" and node.status == "rejected")
    ]


def trace_event_get(*, trace: Trace, seq: int) -> LedgerEvent | None:
    """An event the trace names (the trace was already restricted to the principal's tenant)."""
    if seq not in set(trace.seqs()):
        return None
    return LedgerEvent.objects.filter(seq=seq).first()


# --- Kill switch -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KillSwitchStatus:
    switches: list[KillSwitch]

    @property
    def engaged(self) -> list[KillSwitch]:
        return [s for s in self.switches if s.engaged]


def killswitch_visible(*, principal: Principal | None) -> QuerySet[KillSwitch]:
    """The switches a principal may see: a platform principal (`platform.killswitch.manage`) every one; a
    tenant principal the global and action-wide ones (they hold its steps too) and its own tenant's, never
    another tenant's. None (the installation itself, e.g. the shell) sees every one."""
    switches = KillSwitch.objects.order_by("scope", "target")
    if principal is None or principal.has_capability("platform.killswitch.manage"):
        return switches
    return switches.filter(
        Q(scope=KillSwitchScope.GLOBAL)
        | Q(scope=KillSwitchScope.ACTION)
        | Q(scope=KillSwitchScope.TENANT, target=principal.tenant.slug)
    )


def killswitch_status(*, principal: Principal | None) -> KillSwitchStatus:
    """What the kill switch page shows the principal (see `killswitch_visible`)."""
    return KillSwitchStatus(switches=list(killswitch_visible(principal=principal)))


def killswitch_engaged_for_principal(*, principal: Principal) -> list[KillSwitch]:
    """The engaged switches that hold this principal's tenant: global, its tenant, or any action."""
    return list(
        KillSwitch.objects.filter(engaged=True)
        .filter(
            Q(scope=KillSwitchScope.GLOBAL)
            | Q(scope=KillSwitchScope.TENANT, target=principal.tenant.slug)
            | Q(scope=KillSwitchScope.ACTION)
        )
        .order_by("scope", "target")
    )


# --- What the kill switch holds ----------------------------------------------------------------------

KILLSWITCH_GATE = "killswitch"  # the dispatch gate's name (controlplane.runtime.gates), in `held_gate`


def killswitch_held_runs(*, scope: str, target: str) -> QuerySet[StepRun]:
    """Steps of running executions held by the kill switch gate that a switch of this scope covers."""
    runs = StepRun.objects.filter(
        status=StepStatus.HELD, held_gate=KILLSWITCH_GATE, execution__status=ExecutionStatus.RUNNING
    )
    if scope == KillSwitchScope.TENANT:
        runs = runs.filter(execution__tenant__slug=target)
    elif scope == KillSwitchScope.ACTION:
        runs = runs.filter(step__action=target)
    return runs


@dataclass
class HeldExecution:
    """An execution with steps the kill switch holds, as the kill switch page and API show it."""

    execution: Execution
    steps: list[StepRun]
    held_since: datetime | None
    # The engaged switches still covering one of its steps: resuming is refused while there is one.
    engaged: list[KillSwitch]

    @property
    def detail(self) -> str:
        return self.steps[0].held_detail if self.steps else ""


def killswitch_held_executions(*, principal: Principal | None) -> list[HeldExecution]:
    """The executions the kill switch holds that the principal may decide on, oldest hold first.

    A platform principal (`platform.killswitch.manage`) or the installation (None) sees every tenant's;
    anyone else their own tenant's only. Two queries: the held steps (with their execution, plan and
    submitter) and the engaged switches.
    """
    runs = (
        StepRun.objects.filter(
            status=StepStatus.HELD, held_gate=KILLSWITCH_GATE, execution__status=ExecutionStatus.RUNNING
        )
        .select_related(
            "step", "execution__tenant", "execution__plan", "execution__intent__principal__tenant"
        )
        .order_by("held_since", "pk")
    )
    if principal is not None and not principal.has_capability("platform.killswitch.manage"):
        runs = runs.filter(execution__tenant_id=principal.tenant_id)
    engaged = list(KillSwitch.objects.filter(engaged=True).order_by("scope", "target"))
    held: dict[str, HeldExecution] = {}
    for run in runs:
        entry = held.get(run.execution_id)
        if entry is None:
            entry = held[run.execution_id] = HeldExecution(
                execution=run.execution, steps=[], held_since=run.held_since, engaged=[]
            )
        entry.steps.append(run)
        for switch in engaged:
            if switch not in entry.engaged and killswitch_covers(
                scope=switch.scope,
                target=switch.target,
                tenant=run.execution.tenant.slug,
                action=run.step.action,
            ):
                entry.engaged.append(switch)
    return list(held.values())


def killswitch_decidable_execution(*, principal: Principal | None, execution_id: str) -> Execution | None:
    """The execution a person may decide on through the kill switch (as `killswitch_held_executions`
    restricts them): their own tenant's, any tenant's for a platform principal. None when not visible."""
    executions = Execution.objects.select_related("tenant")
    if principal is not None and not principal.has_capability("platform.killswitch.manage"):
        executions = executions.filter(tenant_id=principal.tenant_id)
    return executions.filter(pk=execution_id).first()


def killswitch_holding(*, switch: KillSwitch, held: list[HeldExecution]) -> int:
    """How many of these held executions a switch covers (what releasing it would let a person decide on)."""
    return sum(
        1
        for entry in held
        if any(
            killswitch_covers(
                scope=switch.scope,
                target=switch.target,
                tenant=entry.execution.tenant.slug,
                action=run.step.action,
            )
            for run in entry.steps
        )
    )


# --- Dashboard panel -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionCounts:
    """What the dashboard's executions panel shows."""

    running: int  # running, no step waiting for a person or held by the kill switch
    waiting: int  # running, with a step waiting for approval
    held: int  # running, with a step held by the kill switch
    failed: int  # failed within FAILED_WINDOW


def execution_counts(*, principal: Principal, now: datetime) -> ExecutionCounts:
    """The tenant's executions running, waiting for approval, held by the kill switch, and failed in the
    last day; one query. An execution both waiting and held counts as held (a person must act on the
    switch first)."""
    running = Q(status=ExecutionStatus.RUNNING)
    held = running & Q(step_runs__status=StepStatus.HELD, step_runs__held_gate=KILLSWITCH_GATE)
    counted = (
        Execution.objects.filter(tenant_id=principal.tenant_id)
        .filter(running | Q(status=ExecutionStatus.FAILED, finished_at__gte=now - FAILED_WINDOW))
        .aggregate(
            running=Count("id", filter=running, distinct=True),
            waiting=Count(
                "id", filter=running & Q(step_runs__status=StepStatus.WAITING_APPROVAL), distinct=True
            ),
            held=Count("id", filter=held, distinct=True),
            both=Count(
                "id",
                filter=held
                & Q(pk__in=StepRun.objects.filter(status=StepStatus.WAITING_APPROVAL).values("execution_id")),
                distinct=True,
            ),
            failed=Count("id", filter=Q(status=ExecutionStatus.FAILED), distinct=True),
        )
    )
    waiting = counted["waiting"] - counted["both"]
    return ExecutionCounts(
        running=counted["running"] - waiting - counted["held"],
        waiting=waiting,
        held=counted["held"],
        failed=counted["failed"],
    )
