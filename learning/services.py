"""Every write of the learning loop: outcomes synced from the ledger, labels, claims, findings, reports,
proposals. It only proposes: nothing here changes a policy, a rule or a model.

The loop is offline: it reads finished executions and closed incidents from the chain (`learning.derive`),
never an execution or incident in flight, and its report is a pure function of the chain up to a seq, so
the replayer (learning.replay) recomputes it and compares hashes.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from controlplane.identity.models import Principal, PrincipalKind, Tenant
from controlplane.kernel.canonical import canonical_bytes
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.models import LedgerEvent
from controlplane.ledger.services import ledger_append
from learning import metrics
from learning.derive import EVENT_TYPES, Folded, OutcomeFacts, outcome_id, outcomes_fold
from learning.models import CalibrationReport, Finding, FindingSeverity, FindingStatus, Outcome, Proposal
from learning.profile import DEFAULT_PROFILE, NEVER_AUTONOMOUS, fidelity_at_least, profile_hash

LABELS = {"execution": ("success", "partial", "failure"), "incident": ("true_incident", "false_positive")}
REVIEW_CAPABILITY = "learning.review"
# What an action touching the evaluator's own artefacts names in its inputs.
EVALUATOR_MARKERS = ("/api/v1/learning", "learning_outcome", "learning_finding", "learning_calibrationreport")


def _digest(*parts: Any) -> str:
    return hashlib.sha256(canonical_bytes(list(parts))).hexdigest()


# --- reading the chain ----------------------------------------------------------------------------------


def learning_fold(*, tenant: Tenant, until_seq: int | None = None) -> Folded:
    """The tenant's outcomes, labels, decisions and findings as the chain has them (up to `until_seq`)."""
    events = LedgerEvent.objects.filter(type__in=EVENT_TYPES).filter(Q(tenant=tenant.slug) | Q(tenant=""))
    if until_seq is not None:
        events = events.filter(seq__lte=until_seq)
    fields = (
        "seq",
        "type",
        "subject",
        "tenant",
        "actor",
        "time",
        "data",
        "fidelity",
        "trace_id",
        "reason_codes",
    )
    return outcomes_fold(events.order_by("seq").only(*fields).iterator(chunk_size=2000))


# --- anti-gaming: pure checks over what the chain holds ---------------------------------------------------


def findings_scan(folded: Folded, profile: dict[str, Any] = DEFAULT_PROFILE) -> list[dict[str, Any]]:
    """Every finding the chain supports, each with a stable fingerprint (the same facts, the same one)."""
    found: list[dict[str, Any]] = []

    def add(code: str, severity: str, principal: str, outcome: str, evidence: dict[str, Any]) -> None:
        found.append(
            {
                "fingerprint": _digest(code, principal, outcome, evidence.get("key", "")),
                "code": code,
                "severity": severity,
                "principal": principal,
                "outcome": outcome,
                "evidence": evidence,
            }
        )

    executions = [o for o in folded.outcomes.values() if o.kind == "execution"]
    for o in executions:
        if any(marker in o.inputs_text for marker in EVALUATOR_MARKERS):
            add(
                "LEARNING_ABUSE_EVALUATOR_TAMPERING",
                FindingSeverity.BLOCK,
                o.actor,
                o.id,
                {"execution": o.subject, "actions": o.actions, "seqs": o.seqs},
            )
        if not o.trace_complete and not o.actions:
            add(
                "LEARNING_ABUSE_NO_TRACE",
                FindingSeverity.BLOCK,
                o.actor,
                o.id,
                {"execution": o.subject, "seqs": o.seqs, "detail": "a final event with no plan or start"},
            )
    success_labels = {
        (outcome, reviewer) for outcome, reviewer, label, _, _ in folded.labels if label == "success"
    }
    claimed: dict[str, int] = {}
    for outcome, claimant, result, seq in folded.claims:
        facts = folded.outcomes.get(outcome)
        key = f"claim:{seq}"
        if facts is None:
            add(
                "LEARNING_ABUSE_NO_TRACE",
                FindingSeverity.BLOCK,
                claimant,
                outcome,
                {"key": key, "claim_seq": seq, "detail": "a claimed outcome the ledger does not hold"},
            )
        elif outcome in claimed:
            add(
                "LEARNING_ABUSE_REPLAYED",
                FindingSeverity.BLOCK,
                claimant,
                outcome,
                {"key": key, "claim_seq": seq, "first_claim_seq": claimed[outcome]},
            )
        elif result == "success" and not (
            facts.confirmed_independently
            or facts.human_approved
            or any(o == outcome and r != claimant for o, r in success_labels)
        ):
            add(
                "LEARNING_ABUSE_SELF_CONFIRMED",
                FindingSeverity.BLOCK,
                claimant,
                outcome,
                {"key": key, "claim_seq": seq, "detail": "success reported only by the acting agent"},
            )
        claimed.setdefault(outcome, seq)
    # Review: an approver approving everything within seconds of its opening.
    stamp = profile["rubber_stamp"]
    by_approver: dict[str, list[tuple[float, str, int]]] = defaultdict(list)
    for approver, seconds, decision, _, seq in folded.decisions:
        by_approver[approver].append((seconds, decision, seq))
    for approver, decisions in sorted(by_approver.items()):
        quick = [d for d in decisions if d[0] <= stamp["seconds"] and d[1] == "approve"]
        if len(quick) >= stamp["min_decisions"] and len(quick) == len(decisions):
            add(
                "LEARNING_REVIEW_RUBBER_STAMP",
                FindingSeverity.REVIEW,
                approver,
                "",
                {
                    "key": f"{len(decisions)}",
                    "decisions": len(decisions),
                    "median_seconds": sorted(d[0] for d in decisions)[len(decisions) // 2],
                    "seqs": [d[2] for d in decisions][-20:],
                },
            )
    # Review: a burst of trivial low-tier successes of one agent.
    burst = profile["success_burst"]
    by_agent: dict[str, list[OutcomeFacts]] = defaultdict(list)
    for o in executions:
        if o.result == "completed" and o.tier == "low":
            by_agent[o.actor].append(o)
    for agent, outcomes in sorted(by_agent.items()):
        times = sorted((datetime.fromisoformat(o.finished_at), o) for o in outcomes)
        start = 0
        for end in range(len(times)):
            while (times[end][0] - times[start][0]).total_seconds() > burst["window_seconds"]:
                start += 1
            if end - start + 1 >= burst["count"]:
                window = times[start : end + 1]
                add(
                    "LEARNING_REVIEW_SYNTHETIC_SUCCESS",
                    FindingSeverity.REVIEW,
                    agent,
                    "",
                    {
                        "key": window[0][1].id,
                        "successes": len(window),
                        "window_seconds": burst["window_seconds"],
                        "from": window[0][1].finished_at,
                        "to": window[-1][1].finished_at,
                    },
                )
                break
    return found


# --- rewards --------------------------------------------------------------------------------------------


def reward_of(
    facts: OutcomeFacts, findings: dict[str, dict[str, Any]], profile: dict[str, Any] = DEFAULT_PROFILE
) -> dict[str, Any]:
    """Quality x provenance confidence, in basis points; excluded or penalised by the findings on chain."""
    quality = profile["quality"].get(facts.result, 0.0) if facts.kind == "execution" else 1.0
    if facts.reopened:
        quality *= 0.5
    provenance = profile["fidelity_factor"].get(facts.fidelity, 0.0)
    if not facts.trace_complete:
        provenance *= profile["incomplete_trace_factor"]
    if facts.kind == "execution" and not (facts.confirmed_independently or facts.human_approved):
        provenance *= profile["unconfirmed_factor"]
    about = [f for f in findings.values() if f["outcome"] == facts.id or f["principal"] == facts.actor]
    excluded = any(
        (f["severity"] == FindingSeverity.BLOCK and f["status"] != FindingStatus.DISMISSED)
        or (f["severity"] == FindingSeverity.REVIEW and f["status"] == FindingStatus.CONFIRMED)
        for f in about
    )
    penalised = not excluded and any(
        f["severity"] == FindingSeverity.REVIEW and f["status"] == FindingStatus.OPEN for f in about
    )
    value = 0.0 if excluded else quality * provenance * (profile["review_penalty"] if penalised else 1.0)
    return {
        "quality_bp": round(quality * 10_000),
        "provenance_bp": round(provenance * 10_000),
        "reward_bp": round(value * 10_000),
        "excluded": excluded,
        "penalised": penalised,
        # The `live` gate: only live outcomes may feed a policy-changing update.
        "feeds_updates": not excluded and fidelity_at_least(facts.fidelity, profile["fidelity_gate"]),
    }


# --- sync: outcomes and findings as rows, new findings on the chain ---------------------------------------


@transaction.atomic
def learning_sync(*, tenant: Tenant, actor: str = "system", at: datetime | None = None) -> Folded:
    """Record every new finding the chain supports (a ledger event each) and refresh the outcome rows."""
    at = at or timezone.now()
    folded = learning_fold(tenant=tenant)
    for finding in findings_scan(folded):
        if finding["fingerprint"] in folded.findings:
            continue
        Finding.objects.create(tenant=tenant, created_at=at, **finding)
        ledger_append(
            type="controlplane.learning.finding.recorded",
            subject=f"learning-finding/{finding['fingerprint']}",
            reason_codes=[finding["code"]],
            data={
                k: finding[k] for k in ("fingerprint", "code", "severity", "principal", "outcome", "evidence")
            },
            tenant=tenant.slug,
            actor=actor,
            time=at,
        )
        folded.findings[finding["fingerprint"]] = {**finding, "status": FindingStatus.OPEN}
    digest = profile_hash()
    for facts in folded.outcomes.values():
        Outcome.objects.update_or_create(
            id=facts.id,
            defaults={
                "tenant": tenant,
                "kind": facts.kind,
                "subject": facts.subject,
                "actor": facts.actor,
                "result": facts.result,
                "finished_at": facts.finished_at,
                "facts": facts.as_dict(),
                "reward_model": DEFAULT_PROFILE["reward_model"],
                "profile_hash": digest,
                "last_seq": max(facts.seqs) if facts.seqs else 0,
                **{k: v for k, v in reward_of(facts, folded.findings).items() if k != "feeds_updates"},
            },
        )
    return folded


# --- people: labels and decisions; agents: claims ----------------------------------------------------------


def _require_reviewer(actor: Principal) -> None:
    if actor.kind != PrincipalKind.HUMAN:
        raise ControlPlaneError(
            "LEARNING_REVIEWER_NOT_HUMAN", f"{actor.ref} is a {actor.kind}; people review"
        )
    if not actor.has_capability(REVIEW_CAPABILITY):
        raise ControlPlaneError("CAPABILITY_MISSING", f"{actor.ref} lacks {REVIEW_CAPABILITY!r}")


@transaction.atomic
def label_record(*, reviewer: Principal, outcome: str, label: str, reason: str) -> LedgerEvent:
    """A person labels an outcome (success | partial | failure; true_incident | false_positive) with a
    reason. Not their own action (the acting agent's owner or an approver of it), once per reviewer."""
    _require_reviewer(reviewer)
    row = Outcome.objects.filter(id=outcome, tenant=reviewer.tenant).first()
    if row is None:
        raise ControlPlaneError("NOT_FOUND", "no such outcome in your tenant")
    if label not in LABELS[row.kind]:
        raise ControlPlaneError(
            "LEARNING_LABEL_INVALID", f"a {row.kind} is labelled {' | '.join(LABELS[row.kind])}"
        )
    if not reason.strip():
        raise ControlPlaneError("VALIDATION_FAILED", "a label needs a reason")
    if reviewer.ref == row.actor or reviewer.ref in row.facts.get("approvers", []):
        raise ControlPlaneError(
            "LEARNING_SELF_LABEL", "a reviewer cannot label an outcome of their own action"
        )
    folded_labels = LedgerEvent.objects.filter(
        type="controlplane.learning.label.recorded", subject=f"learning-outcome/{outcome}", actor=reviewer.ref
    )
    if folded_labels.exists():
        raise ControlPlaneError(
            "LEARNING_LABEL_DUPLICATE", f"{reviewer.ref} has labelled this outcome already"
        )
    return ledger_append(
        type="controlplane.learning.label.recorded",
        subject=f"learning-outcome/{outcome}",
        data={"outcome": outcome, "reviewer": reviewer.ref, "label": label, "reason": reason.strip()},
        tenant=reviewer.tenant.slug,
        actor=reviewer.ref,
    )


@transaction.atomic
def claim_record(*, principal: Principal, execution: str, result: str) -> list[Finding]:
    """An agent reports how an execution went. Recorded on the chain, then checked at once: a claim of an
    execution the chain does not hold, a claim made twice, or a success only the agent vouches for is a
    hard-block finding (returned) and keeps the outcome out of rewards."""
    if result not in LABELS["execution"]:
        raise ControlPlaneError("LEARNING_LABEL_INVALID", f"a claim is {' | '.join(LABELS['execution'])}")
    ledger_append(
        type="controlplane.learning.claim.recorded",
        subject=f"learning-outcome/{outcome_id('execution', execution)}",
        data={"outcome": outcome_id("execution", execution), "execution": execution, "result": result},
        tenant=principal.tenant.slug,
        actor=principal.ref,
    )
    before = set(Finding.objects.filter(tenant=principal.tenant).values_list("fingerprint", flat=True))
    learning_sync(tenant=principal.tenant, actor="system")
    return list(Finding.objects.filter(tenant=principal.tenant).exclude(fingerprint__in=before))


@transaction.atomic
def finding_decide(*, actor: Principal, fingerprint: str, status: str, reason: str) -> Finding:
    """A person confirms (the outcomes leave the rewards) or dismisses (the penalty lifts) a finding."""
    _require_reviewer(actor)
    finding = Finding.objects.select_for_update().filter(fingerprint=fingerprint, tenant=actor.tenant).first()
    if finding is None:
        raise ControlPlaneError("NOT_FOUND", "no such finding in your tenant")
    if status not in (FindingStatus.CONFIRMED, FindingStatus.DISMISSED):
        raise ControlPlaneError("VALIDATION_FAILED", "a finding is confirmed or dismissed")
    if finding.status != FindingStatus.OPEN:
        raise ControlPlaneError("LEARNING_FINDING_DECIDED", f"the finding is {finding.status} already")
    if not reason.strip():
        raise ControlPlaneError("VALIDATION_FAILED", "a decision needs a reason")
    if actor.ref == finding.principal:
        raise ControlPlaneError("LEARNING_SELF_LABEL", "a finding about you is decided by someone else")
    at = timezone.now()
    finding.status, finding.decided_by, finding.decided_reason, finding.decided_at = (
        status,
        actor.ref,
        reason,
        at,
    )
    finding.save(update_fields=["status", "decided_by", "decided_reason", "decided_at"])
    ledger_append(
        type="controlplane.learning.finding.decided",
        subject=f"learning-finding/{fingerprint}",
        reason_codes=[finding.code],
        data={"fingerprint": fingerprint, "status": status, "reason": reason.strip()},
        tenant=actor.tenant.slug,
        actor=actor.ref,
        time=at,
    )
    return finding


# --- calibration: a pure report, recorded with its hash ----------------------------------------------------


def _label_majority(folded: Folded) -> dict[str, str]:
    votes: dict[str, list[str]] = defaultdict(list)
    for outcome, _, label, _, _ in folded.labels:
        votes[outcome].append(label)
    return {o: max(sorted(set(v)), key=v.count) for o, v in votes.items()}


def report_content(folded: Folded, profile: dict[str, Any] = DEFAULT_PROFILE) -> dict[str, Any]:
    """The calibration report: the incident promotion model (overall and per rule) and the agents, from
    outcomes with human labels; plus what earned autonomy would need. Deterministic: no clock, no order
    that is not the chain's."""
    labels = _label_majority(folded)
    bins = profile["calibration_bins"]
    incidents = [
        o
        for o in folded.outcomes.values()
        if o.kind == "incident" and o.id in labels and o.score_bp is not None
    ]

    def model(outcomes: list[OutcomeFacts]) -> dict[str, Any]:
        pairs = [(o.score_bp / 10_000, 1 if labels[o.id] == "true_incident" else 0) for o in outcomes]
        true = sum(o for _, o in pairs)
        brier, ece = metrics.brier(pairs), metrics.ece(pairs, bins)
        interval = metrics.wilson(true, len(pairs))
        return {
            "labelled": len(pairs),
            "true_incidents": true,
            "brier": round(brier, 6) if brier is not None else None,
            "ece": round(ece, 6) if ece is not None else None,
            "precision": round(true / len(pairs), 6) if pairs else None,
            "precision_interval": [round(v, 6) for v in interval] if interval else None,
            "bins": [
                {
                    "lower": b.lower,
                    "upper": b.upper,
                    "count": b.count,
                    "mean_forecast": None if b.mean_forecast is None else round(b.mean_forecast, 6),
                    "observed_rate": None if b.observed_rate is None else round(b.observed_rate, 6),
                }
                for b in metrics.reliability_bins(pairs, bins)
            ],
        }

    per_rule = defaultdict(list)
    for o in incidents:
        per_rule[o.actor].append(o)
    agents: dict[str, dict[str, Any]] = {}
    for o in sorted(folded.outcomes.values(), key=lambda o: o.id):
        if o.kind != "execution":
            continue
        key = f"{o.actor} {'+'.join(o.actions)}"
        row = agents.setdefault(
            key,
            {
                "agent": o.actor,
                "action": "+".join(o.actions),
                "tier": o.tier,
                "executions": 0,
                "successes": 0,
                "violations": 0,
                "reward_bp": 0,
            },
        )
        reward = reward_of(o, folded.findings, profile)
        success = labels.get(o.id, "success" if o.result == "completed" else "failure") == "success"
        row["executions"] += 1
        row["successes"] += int(success and not reward["excluded"])
        row["violations"] += int(o.policy_denied)
        row["reward_bp"] += reward["reward_bp"]
    for row in agents.values():
        interval = metrics.wilson(row["successes"], row["executions"])
        row["success_rate"] = round(row["successes"] / row["executions"], 6)
        row["interval"] = [round(v, 6) for v in interval] if interval else None
    return {
        "profile": {"name": profile["name"], "hash": profile_hash(profile)},
        "until_seq": folded.last_seq,
        "incident_model": {
            "overall": model(incidents),
            "rules": {r: model(v) for r, v in sorted(per_rule.items())},
        },
        "agents": [agents[k] for k in sorted(agents)],
        "findings": {
            "open": sorted(f for f, v in folded.findings.items() if v["status"] == FindingStatus.OPEN),
            "by_code": {
                c: sum(1 for v in folded.findings.values() if v["code"] == c)
                for c in sorted({v["code"] for v in folded.findings.values()})
            },
        },
        "autonomy": autonomy_candidates(folded, profile),
    }


def report_hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(content)).hexdigest()


def autonomy_candidates(folded: Folded, profile: dict[str, Any] = DEFAULT_PROFILE) -> list[dict[str, Any]]:
    """For each (agent, single action) pair: each precondition of earned autonomy with its evidence, and
    whether all hold. High and critical tiers are never candidates, whatever the profile says."""
    rules = profile["autonomy"]
    window_end = datetime.fromisoformat(folded.last_time) if folded.last_time else None
    out = []
    pairs: dict[tuple[str, str], list[OutcomeFacts]] = defaultdict(list)
    for o in folded.outcomes.values():
        if o.kind == "execution" and len(o.actions) == 1:
            pairs[(o.actor, o.actions[0])].append(o)
    for (agent, action), outcomes in sorted(pairs.items()):
        tier = max(
            (o.tier for o in outcomes), key=lambda t: ("", "low", "medium", "high", "critical").index(t)
        )
        if tier in NEVER_AUTONOMOUS or tier not in rules["tiers"]:
            continue
        start = window_end - timedelta(days=rules["window_days"]) if window_end else None
        recent = sorted(
            (o for o in outcomes if start is None or datetime.fromisoformat(o.finished_at) >= start),
            key=lambda o: o.finished_at,
        )
        successes = [
            o
            for o in recent
            if o.result == "completed"
            and o.human_approved
            and not reward_of(o, folded.findings, profile)["excluded"]
        ]
        halves = [recent[: len(recent) // 2], recent[len(recent) // 2 :]]
        # stable: the success rate of each half of the window (the older and the newer) meets the bar
        rates = [sum(o.result == "completed" for o in h) / len(h) for h in halves if h]
        open_findings = sorted(
            f
            for f, v in folded.findings.items()
            if v["principal"] == agent and v["status"] == FindingStatus.OPEN
        )
        drills = [d for d in folded.drills if start is None or datetime.fromisoformat(d[1]) >= start]
        preconditions = {
            "human_approved_successes": {
                "needed": rules["min_successes"],
                "have": len(successes),
                "met": len(successes) >= rules["min_successes"],
            },
            "policy_violations": {
                "have": sum(o.policy_denied for o in recent),
                "met": not any(o.policy_denied for o in recent),
            },
            "unresolved_findings": {"have": open_findings, "met": not open_findings},
            "kill_switch_drill": {"have": [list(d) for d in drills][-3:], "met": bool(drills)},
            "stable_success_rate": {
                "halves": [round(r, 6) for r in rates],
                "needed": rules["stable_rate_min"],
                "met": bool(recent) and min(rates) >= rules["stable_rate_min"],
            },
            "live_fidelity": {
                "met": all(fidelity_at_least(o.fidelity, profile["fidelity_gate"]) for o in successes)
            },
        }
        out.append(
            {
                "agent": agent,
                "action": action,
                "tier": tier,
                "preconditions": preconditions,
                "eligible": all(p["met"] for p in preconditions.values()),
            }
        )
    return out


@transaction.atomic
def learning_calibrate(*, tenant: Tenant, actor: str, dry_run: bool = False) -> tuple[dict[str, Any], str]:
    """Compute the tenant's calibration report (after recording new findings); unless `dry_run`, record it
    (a ledger event with its hash) and propose earned autonomy for each eligible pair. Returns the report
    and its hash; a dry run writes nothing at all."""
    if dry_run:
        folded = learning_fold(tenant=tenant)
        content = report_content(folded)
        return content, report_hash(content)
    learning_sync(tenant=tenant, actor=actor)
    folded = learning_fold(tenant=tenant)
    content = report_content(folded)
    digest = report_hash(content)
    at = timezone.now()
    _, created = CalibrationReport.objects.get_or_create(
        tenant=tenant,
        content_hash=digest,
        defaults={
            "until_seq": folded.last_seq,
            "profile_hash": content["profile"]["hash"],
            "content": content,
            "created_at": at,
            "created_by": actor,
        },
    )
    if created:
        ledger_append(
            type="controlplane.learning.report.recorded",
            subject=f"learning-report/{digest}",
            data={
                "tenant": tenant.slug,
                "content_hash": digest,
                "until_seq": folded.last_seq,
                "profile_hash": content["profile"]["hash"],
            },
            tenant=tenant.slug,
            actor=actor,
            time=at,
        )
        for candidate in content["autonomy"]:
            if not candidate["eligible"] or candidate["tier"] in NEVER_AUTONOMOUS:
                continue
            key = f"{candidate['agent']} {candidate['action']}"
            proposal = Proposal.objects.create(
                tenant=tenant, kind="autonomy", key=key, content=candidate, report_hash=digest, created_at=at
            )
            ledger_append(
                type="controlplane.learning.proposal.created",
                subject=f"learning-proposal/{proposal.pk}",
                data={
                    "proposal": proposal.pk,
                    "kind": "autonomy",
                    "key": key,
                    "report": digest,
                    "tier": candidate["tier"],
                },
                tenant=tenant.slug,
                actor=actor,
                time=at,
            )
    return content, digest
