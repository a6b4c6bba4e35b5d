"""Policy decisions per second: `evaluate()` against a raw dict-lookup baseline, in the same run.

Four ways to get a verdict for the same mixed set of steps (tiers low to critical, production targets,
agents and people, a denied action) under the shipped strict profile:

- raw dict lookup   — the floor: tier -> mode -> verdict through two dicts (no rules, no trail)
- evaluate          — the pure function (rules, deny rules, tier mode, dev mode, the rule trail)
- evaluate + hash   — what the runtime records per step: the decision and its SHA-256 over RFC 8785 bytes
- explain (DB)      — as the runtime asks today: read the active profile row, validate and parse its
                      content, evaluate (one query and a JSON Schema validation per decision)

Throughput comes from a tight loop over every decision (no timer per call); latency percentiles from a
second pass that times each call with `perf_counter_ns` (its own overhead, measured alongside, is
reported, not subtracted).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from bench.loadgen import percentile

STRICT_NAME = "bench-strict"


def _cases() -> list[tuple[Any, Any]]:
    from controlplane.policy.evaluation import Context, StepFacts

    steps = [
        StepFacts(action="noop.echo", tier="low", inputs={"message": "hi"}),
        StepFacts(action="http.webhook", tier="medium", inputs={"runner": "r", "operation": "restart"}),
        StepFacts(
            action="http.webhook",
            tier="medium",
            inputs={"runner": "r", "operation": "restart", "target": {"environment": "prod"}},
        ),
        StepFacts(action="db.migrate", tier="high", inputs={"database": "orders"}),
        StepFacts(action="dns.cutover", tier="critical", inputs={"zone": "example.com"}),
        StepFacts(action="danger.drop", tier="low", inputs={}),
    ]
    contexts = [
        Context(environment=env, principal_kind=kind, principal=f"acme/{kind}", tenant="acme", labels=labels)
        for env, kind, labels in (
            ("prod", "agent", {"ticket": "OPS-7"}),
            ("prod", "human", {}),
            ("dev", "service", {"change": "CHG-1"}),
            ("stage", "agent", {}),
        )
    ]
    return list(itertools.product(steps, contexts))


def _summary_us(samples_ns: list[int]) -> dict[str, float | None]:
    ordered = sorted(samples_ns)

    def us(value: float | None) -> float | None:
        return None if value is None else round(value / 1000, 2)

    return {
        "p50": us(percentile(ordered, 0.50)),
        "p95": us(percentile(ordered, 0.95)),
        "p99": us(percentile(ordered, 0.99)),
        "max": us(ordered[-1] if ordered else None),
        "count": len(ordered),
    }


def _measure(decide: Callable[[Any, Any], Any], cases: list[tuple[Any, Any]], count: int) -> dict[str, Any]:
    work = [cases[i % len(cases)] for i in range(count)]
    for step, context in work[: min(len(work), 200)]:  # warm caches and code paths
        decide(step, context)
    began = time.perf_counter_ns()
    for step, context in work:
        decide(step, context)
    elapsed = time.perf_counter_ns() - began
    samples = []
    clock = time.perf_counter_ns
    for step, context in work:
        start = clock()
        decide(step, context)
        samples.append(clock() - start)
    return {
        "decisions": count,
        "seconds": round(elapsed / 1e9, 4),
        "per_s": round(count / (elapsed / 1e9), 1) if elapsed else None,
        "latency_us": _summary_us(samples),
    }


def _timer_overhead(count: int) -> dict[str, float | None]:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(count):
        start = clock()
        samples.append(clock() - start)
    return _summary_us(samples)


def policy_bench(
    *, decisions: int, explain_decisions: int, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Decisions per second for each way (see the module docstring). `explain (DB)` needs a database."""
    from controlplane.policy import services, shipped
    from controlplane.policy.evaluation import ProfileContent, evaluate
    from controlplane.policy.models import PolicyProfile, ProfileStatus
    from controlplane.policy.selectors import explain

    content = shipped.STRICT_CONTENT
    profile = ProfileContent.from_content(content, name=STRICT_NAME, version=1, environment="prod")
    cases = _cases()
    modes = {tier: spec["mode"] for tier, spec in content["tiers"].items()}
    verdict_of = {"autonomous": "allow", "assist": "require_approval", "blocked": "deny"}

    def raw(step: Any, context: Any) -> str:
        return verdict_of[modes[step.tier]]

    def pure(step: Any, context: Any) -> Any:
        return evaluate(step=step, context=context, profile=profile)

    def hashed(step: Any, context: Any) -> str:
        return evaluate(step=step, context=context, profile=profile).decision_hash

    # explain() reads the profile active for the context's environment: give each environment the same one.
    rows = {}
    for environment in ("dev", "stage", "prod"):
        name = f"{STRICT_NAME}-{environment}"
        created = services.profile_create(name=name, environment=environment, content=content, actor="bench")
        rows[environment] = created.profile
    previous = {
        env: PolicyProfile.objects.filter(environment=env, status=ProfileStatus.ACTIVE).first()
        for env in rows
    }
    for row in rows.values():
        services.profile_activate(profile=row, actor="bench", reason="policy benchmark")

    def through_db(step: Any, context: Any) -> Any:
        return explain(step=step, context=context)

    results: dict[str, Any] = {"cases": len(cases), "profile": "control-plane-strict-v1 content"}
    try:
        variants = {}
        for label, decide, count in (
            ("raw dict lookup", raw, decisions),
            ("evaluate", pure, decisions),
            ("evaluate + decision hash", hashed, decisions),
            ("explain (DB: active profile, parse, evaluate)", through_db, explain_decisions),
        ):
            variants[label] = _measure(decide, cases, count)
            row = variants[label]
            log(
                f"  {label}: {row['per_s']:,.0f} decisions/s, p50 {row['latency_us']['p50']} us, "
                f"p99 {row['latency_us']['p99']} us"
            )
        results["variants"] = variants
        results["timer_overhead_us"] = _timer_overhead(min(decisions, 100_000))
        verdicts = sorted({pure(step, context).verdict for step, context in cases})
        results["verdicts_seen"] = verdicts
        base = variants["raw dict lookup"]["per_s"]
        results["ratios"] = {
            f"{label} / raw dict lookup": round(row["per_s"] / base, 5) if base and row["per_s"] else None
            for label, row in variants.items()
            if label != "raw dict lookup"
        }
    finally:
        for row in previous.values():
            if row is not None:
                services.profile_activate(profile=row, actor="bench", reason="policy benchmark done")
    return results


def report(results: dict[str, Any]) -> list[str]:
    """The Markdown section of bench/results/latest.md (empty when the part did not run)."""
    policy = results.get("policy")
    if not policy:
        return []
    out = [
        "## Policy decisions per second",
        "",
        f"{policy['cases']} step/context cases (tiers low to critical, production targets, agents, people, "
        "a denied action) under the shipped strict profile's content; one process. Throughput from a tight "
        "loop; latency from timing each call (timer overhead p50 "
        f"{policy['timer_overhead_us']['p50']} us, not subtracted).",
        "",
        "| way | decisions | decisions/s | p50 us | p95 us | p99 us | max us | / raw |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = policy["variants"]["raw dict lookup"]["per_s"]
    for label, row in policy["variants"].items():
        latency = row["latency_us"]
        ratio = f"{row['per_s'] / base:.2g}" if base and row["per_s"] else "–"
        out.append(
            f"| {label} | {row['decisions']:,} | {row['per_s']:,.0f} | {latency['p50']} | {latency['p95']} "
            f"| {latency['p99']} | {latency['max']} | {ratio} |"
        )
    return [*out, ""]
