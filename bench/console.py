"""Approval-queue page render time with N (default 10,000) pending requests.

The queue is filled through the product's own path: intents of `steps_per_plan` independent steps each,
submitted with `intent_submit` under a profile that sends every tier to people, so every step opens a
`runtime.step` approval request (with its ledger events) and waits. Then an operator holding
`approvals.read` requests `GET /approvals/` through Django's test client in this process (the view, its
queries and the template; no network), the full page and the htmx fragment the page polls, `renders`
times each after warm-up.

Baselines, same run: the same page for an operator of a tenant with an empty queue (the console shell,
sign-in and layout with nothing to list), and the queue's two queries by hand with psycopg (the count and
the first page of 25, oldest first): the database floor.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench.loadgen import percentile

ASSIST_EVERYTHING = {
    "description": "Benchmark: every tier waits for one person (fills the approval queue).",
    "tiers": {
        "low": {"mode": "assist", "quorum": 1, "approval_timeout_seconds": 604800},
        "medium": {"mode": "assist", "quorum": 1, "approval_timeout_seconds": 604800},
        "high": {"mode": "assist", "quorum": 1, "approval_timeout_seconds": 604800},
        "critical": {"mode": "assist", "quorum": 2, "approval_timeout_seconds": 604800},
    },
    "rules": [],
    "deny": [],
}
OPERATOR_CAPABILITIES = ["console.view", "approvals.read", "approvals.decide", "executions.read"]


def _summary_ms(samples_s: list[float]) -> dict[str, float | None]:
    ordered = sorted(samples_s)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    return {
        "p50": ms(percentile(ordered, 0.50)),
        "p95": ms(percentile(ordered, 0.95)),
        "p99": ms(percentile(ordered, 0.99)),
        "max": ms(ordered[-1] if ordered else None),
        "count": len(ordered),
    }


def _operator(tenant: Any, name: str) -> Any:
    from django.contrib.auth import get_user_model

    from controlplane.identity.models import PrincipalKind
    from controlplane.identity.services import principal_ensure

    user, _ = get_user_model().objects.get_or_create(username=f"{tenant.slug}-{name}")
    return principal_ensure(
        tenant=tenant, name=name, kind=PrincipalKind.HUMAN, capabilities=OPERATOR_CAPABILITIES, user=user
    )


def fill_queue(*, tenant: Any, pending: int, steps_per_plan: int) -> int:
    """Submit intents until the tenant has `pending` pending requests; returns how many were opened."""
    from approvals.models import ApprovalRequest
    from controlplane.identity.models import PrincipalKind
    from controlplane.identity.services import principal_ensure
    from controlplane.runtime import services

    requester = principal_ensure(
        tenant=tenant, name="bench-requester", kind=PrincipalKind.SERVICE, capabilities=["intents.submit"]
    )
    have = ApprovalRequest.objects.filter(tenant=tenant, status="pending").count()
    run = uuid.uuid4().hex[:8]
    for n in range(math.ceil(max(0, pending - have) / steps_per_plan)):
        size = min(steps_per_plan, pending - have - n * steps_per_plan)
        draft = {
            "goal": f"bench queue {run} {n}",
            "context": {"bench": "console"},
            "steps": [
                {"key": f"s{i:03d}", "action": "noop.echo", "inputs": {"message": f"{run}-{n}-{i}"}}
                for i in range(size)
            ],
        }
        services.intent_submit(principal=requester, draft=draft, idempotency_key=f"bench-queue-{run}-{n}")
    return ApprovalRequest.objects.filter(tenant=tenant, status="pending").count()


def _time_get(client: Any, path: str, renders: int, headers: dict[str, str]) -> tuple[list[float], bytes]:
    body = b""
    for _ in range(3):  # warm-up: templates compiled, connections open
        response = client.get(path, **headers)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}: {response.content[:300]!r}")
    samples = []
    for _ in range(renders):
        began = time.perf_counter()
        response = client.get(path, **headers)
        samples.append(time.perf_counter() - began)
        body = response.content
    return samples, body


def _raw_queries(tenant_id: int, renders: int) -> list[float]:
    from django.db import connection

    samples = []
    with connection.cursor() as cursor:
        for _ in range(renders + 3):
            began = time.perf_counter()
            cursor.execute(
                "SELECT count(*) FROM approvals_approvalrequest WHERE tenant_id = %s AND status = 'pending'",
                [tenant_id],
            )
            cursor.fetchone()
            cursor.execute(
                "SELECT * FROM approvals_approvalrequest WHERE tenant_id = %s AND status = 'pending' "
                "ORDER BY created_at, id LIMIT 25",
                [tenant_id],
            )
            cursor.fetchall()
            samples.append(time.perf_counter() - began)
    return samples[3:]


def approval_queue_bench(
    *, pending: int, steps_per_plan: int, renders: int, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Fill the queue (see the module docstring), then time the page, its fragment and the baselines."""
    from django.test import Client

    from controlplane.identity.models import Tenant
    from controlplane.policy import services as policy
    from controlplane.policy.models import PolicyProfile, ProfileStatus

    tenant, _ = Tenant.objects.get_or_create(slug="bench-console", defaults={"name": "Bench console"})
    empty, _ = Tenant.objects.get_or_create(slug="bench-console-empty", defaults={"name": "Bench empty"})
    previous = PolicyProfile.objects.filter(environment="dev", status=ProfileStatus.ACTIVE).first()
    created = policy.profile_create(
        name="bench-assist", environment="dev", content=ASSIST_EVERYTHING, actor="bench"
    )
    policy.profile_activate(profile=created.profile, actor="bench", reason="approval queue benchmark")
    try:
        began = time.monotonic()
        count = fill_queue(tenant=tenant, pending=pending, steps_per_plan=steps_per_plan)
        fill_s = time.monotonic() - began
    finally:
        if previous is not None:
            policy.profile_activate(profile=previous, actor="bench", reason="approval queue benchmark done")
    log(f"  {count:,} pending requests (filled in {fill_s:.1f} s)")
    host = {"HTTP_HOST": "127.0.0.1"}
    htmx = {**host, "HTTP_HX_REQUEST": "true"}
    operator, idle = Client(), Client()
    operator.force_login(_operator(tenant, "bench-operator").user)
    idle.force_login(_operator(empty, "bench-idle").user)
    page, body = _time_get(operator, "/approvals/", renders, host)
    fragment, fragment_body = _time_get(operator, "/approvals/", renders, htmx)
    empty_page, _ = _time_get(idle, "/approvals/", renders, host)
    raw = _raw_queries(tenant.pk, renders)
    result = {
        "pending": count,
        "steps_per_plan": steps_per_plan,
        "fill_s": round(fill_s, 1),
        "renders": renders,
        "page_bytes": len(body),
        "page_lists_total": f'id="pending-count">{count}<' in body.decode(),
        "full_page_ms": _summary_ms(page),
        "fragment_ms": _summary_ms(fragment),
        "fragment_bytes": len(fragment_body),
        "baseline_empty_queue_page_ms": _summary_ms(empty_page),
        "baseline_raw_queries_ms": _summary_ms(raw),
    }
    log(
        f"  /approvals/ with {count:,} pending: p50 {result['full_page_ms']['p50']} ms, "
        f"p95 {result['full_page_ms']['p95']} ms; fragment p50 {result['fragment_ms']['p50']} ms; "
        f"empty queue p50 {result['baseline_empty_queue_page_ms']['p50']} ms; "
        f"raw queries p50 {result['baseline_raw_queries_ms']['p50']} ms"
    )
    return result


def report(results: dict[str, Any]) -> list[str]:
    """The Markdown section of bench/results/latest.md (empty when the part did not run)."""
    queue = results.get("approval_queue")
    if not queue:
        return []
    rows = (
        ("`GET /approvals/` full page", queue["full_page_ms"]),
        ("`GET /approvals/` htmx fragment (what the page polls)", queue["fragment_ms"]),
        ("baseline: the same page, empty queue", queue["baseline_empty_queue_page_ms"]),
        ("baseline: the count and first page by hand (psycopg)", queue["baseline_raw_queries_ms"]),
    )
    out = [
        f"## Approval queue page with {queue['pending']:,} pending requests",
        "",
        f"Filled through `intent_submit` ({queue['steps_per_plan']} steps per plan) in {queue['fill_s']} s; "
        f"{queue['renders']} timed renders each through Django's test client (no network); the page is "
        f"{queue['page_bytes']:,} bytes and lists 25 requests"
        + ("" if queue["page_lists_total"] else " (**the total shown does not match**)")
        + ".",
        "",
        "| measured | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, row in rows:
        out.append(f"| {label} | {row['p50']} | {row['p95']} | {row['p99']} | {row['max']} |")
    return [*out, ""]
