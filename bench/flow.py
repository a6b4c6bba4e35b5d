"""Intent-to-completed latency of a three-step autonomous plan, with a real Celery worker.

The benchmark process submits intents through `intent_submit` (autocommit: each submit is its own
transaction, as an API request is), one at a time, and waits for each execution to finish. A Celery
worker (`celery -A controlplane worker`, a separate process on the same Redis broker and database) runs
the steps: a -> b -> c, each dispatched when the one before it completed. Latency is taken from the
ledger, not from polling: `execution.completed`'s time minus `intent.received`'s (both clocks of this
machine), so the wait loop's granularity does not enter it; the client-side time (submit to seeing the
execution completed) is reported beside it.

Baseline, same worker, same broker, same run: three Celery hops of a no-op task (`bench.tasks.hop`), each
sending the next, the last writing a timestamp to Redis: what broker and worker cost for three
sequential steps with no database, no ledger and no policy.

Concurrent submits: `submit_processes` forked copies of this process with `submit_threads` threads each
call `intent_submit` for `submit_seconds` (each call its own transaction, as an API request is; the steps
are published to a queue no worker reads), against a raw baseline of the same threads each appending one
bare ledger event per transaction. What it shows is how much of the chain's serial point a submit occupies.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.loadgen import percentile
from bench.server import REPO
from bench.threads import run_threads

WAIT_SECONDS = 60.0


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


def _log_tail(path: Path, lines: int = 40) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


@contextlib.contextmanager
def celery_worker(
    *, env: dict[str, str], log_path: Path, concurrency: int = 2, start_timeout: float = 60.0
) -> Iterator[subprocess.Popen]:
    """A Celery worker for the product's tasks plus `bench.tasks`, until the block ends."""
    queue = f"bench-{uuid.uuid4().hex[:8]}"  # a queue of its own: no other worker on the broker takes ours
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "controlplane",
        "worker",
        "--include",
        "bench.tasks",
        "--queues",
        queue,
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--hostname",
        f"{queue}@%h",
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, **env, "BENCH_CELERY_QUEUE": queue},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process.queue = queue  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + start_timeout
        while " ready." not in log_path.read_text(errors="replace"):  # bounded by the deadline
            if process.poll() is not None:
                raise RuntimeError(f"celery exited with {process.returncode}:\n{_log_tail(log_path)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"celery was not ready within {start_timeout}s:\n{_log_tail(log_path)}")
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()  # warm shutdown: finishes what it holds
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@contextlib.contextmanager
def routed_to(queue: str) -> Iterator[None]:
    """Send every task of this process to the worker's own queue while the block runs."""
    from controlplane.celery import app

    before = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    app.amqp.router = app.amqp.Router()  # the router caches the default queue
    try:
        yield
    finally:
        app.conf.task_default_queue = before
        app.amqp.router = app.amqp.Router()


def three_steps(n: int) -> dict[str, Any]:
    return {
        "goal": f"bench flow {n}",
        "context": {"bench": "flow"},
        "steps": [
            {"key": "a", "action": "noop.echo", "inputs": {"message": f"a{n}"}},
            {"key": "b", "action": "noop.echo", "inputs": {"message": f"b{n}"}, "depends_on": ["a"]},
            {"key": "c", "action": "noop.echo", "inputs": {"message": f"c{n}"}, "depends_on": ["b"]},
        ],
    }


def _ensure_dev_profile() -> Any:
    """The shipped dev profile active (low steps run on their own), whatever ran before."""
    from controlplane.policy import services, shipped

    environment, content = shipped.SHIPPED[shipped.DEV]
    created = services.profile_create(
        name=shipped.DEV, environment=environment, content=content, actor="bench"
    )
    return services.profile_activate(profile=created.profile, actor="bench", reason="flow benchmark")


def _wait_finished(execution_id: str, timeout: float = WAIT_SECONDS) -> str:
    from controlplane.runtime.models import Execution

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # bounded
        status = Execution.objects.filter(pk=execution_id).values_list("status", flat=True).first()
        if status and status != "running":
            return status
        time.sleep(0.002)
    return "timeout"


def _ledger_latency(intent_id: str, execution_id: str) -> float | None:
    from controlplane.ledger.models import LedgerEvent

    received = LedgerEvent.objects.filter(type="controlplane.intent.received", subject=f"intent/{intent_id}")
    completed = LedgerEvent.objects.filter(
        type="controlplane.execution.completed", subject=f"execution/{execution_id}"
    )
    start = received.values_list("time", flat=True).first()
    end = completed.values_list("time", flat=True).first()
    return (end - start).total_seconds() if start and end else None


def _three_hops(redis_url: str, queue: str, count: int) -> list[float]:
    import redis

    from controlplane.celery import app

    client = redis.Redis.from_url(redis_url)
    samples = []
    for _ in range(count):
        key = f"bench:hop:{uuid.uuid4().hex}"
        began = time.time_ns()
        app.send_task("bench.tasks.hop", args=[3, key], queue=queue)
        deadline = time.monotonic() + WAIT_SECONDS
        value = None
        while value is None and time.monotonic() < deadline:  # bounded
            value = client.get(key)
            if value is None:
                time.sleep(0.001)
        if value is not None:
            samples.append((int(value) - began) / 1e9)
            client.delete(key)
    return samples


def submit_concurrency(
    *, agent: Any, threads: int, seconds: float, redis_url: str, processes: int = 1
) -> dict[str, Any]:
    """Concurrent `intent_submit` calls against concurrent bare ledger appends (see the docstring)."""
    import redis
    from django.db import transaction

    from controlplane.ledger.services import ledger_append
    from controlplane.runtime import services

    run_id = uuid.uuid4().hex[:8]

    def bare_append(thread: int, n: int) -> None:
        with transaction.atomic():
            ledger_append(
                type="bench.flow.raw",
                subject=f"bench/raw-{run_id}-{thread}-{n}",
                data={"thread": thread, "n": n, "draft": three_steps(n)},
                tenant="bench-flow",
                actor="bench",
            )

    def submit(thread: int, n: int) -> None:
        services.intent_submit(
            principal=agent, draft=three_steps(n), idempotency_key=f"bench-submit-{run_id}-{thread}-{n}"
        )

    raw = run_threads(threads, seconds, bare_append, processes=processes)
    queue = f"bench-unread-{run_id}"
    with routed_to(queue):
        submits = run_threads(threads, seconds, submit, processes=processes)
    redis.Redis.from_url(redis_url).delete(queue)  # the published steps nobody will run
    return {
        "raw_ledger_append": raw,
        "intent_submit": submits,
        "ratio": round(submits["per_s"] / raw["per_s"], 3) if submits["per_s"] and raw["per_s"] else None,
    }


def flow_bench(
    *,
    intents: int,
    hops: int,
    env: dict[str, str],
    work: Path,
    concurrency: int = 2,
    submit_threads: int = 4,
    submit_processes: int = 2,
    submit_seconds: float = 10.0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Submit `intents` three-step plans one after another against a real worker; see the docstring."""
    from controlplane.identity.models import Principal, PrincipalKind, Tenant
    from controlplane.runtime import services
    from controlplane.runtime.models import Execution

    profile = _ensure_dev_profile()
    tenant, _ = Tenant.objects.get_or_create(slug="bench-flow", defaults={"name": "Bench flow"})
    agent, _ = Principal.objects.get_or_create(
        tenant=tenant, name="bench-agent", defaults={"kind": PrincipalKind.AGENT}
    )
    run_id = uuid.uuid4().hex[:8]
    ledger_s: list[float] = []
    client_s: list[float] = []
    statuses: dict[str, int] = {}
    warmup = min(3, intents)
    with celery_worker(env=env, log_path=work / "celery-flow.log", concurrency=concurrency) as worker:
        queue = worker.queue  # type: ignore[attr-defined]
        with routed_to(queue):
            for n in range(warmup + intents):
                began = time.monotonic()
                intent = services.intent_submit(
                    principal=agent, draft=three_steps(n), idempotency_key=f"bench-flow-{run_id}-{n}"
                )
                execution_id = Execution.objects.filter(intent=intent).values_list("id", flat=True).get()
                status = _wait_finished(execution_id)
                elapsed = time.monotonic() - began
                if n < warmup:
                    continue
                statuses[status] = statuses.get(status, 0) + 1
                if status == "completed":
                    client_s.append(elapsed)
                    latency = _ledger_latency(intent.pk, execution_id)
                    if latency is not None:
                        ledger_s.append(latency)
            baseline = _three_hops(env["REDIS_URL"], queue, hops)
    result = {
        "intents": intents,
        "warmup": warmup,
        "worker_concurrency": concurrency,
        "profile": f"{profile.name}@v{profile.version}",
        "statuses": statuses,
        "intent_to_completed_ms": _summary_ms(ledger_s),
        "client_submit_to_seen_ms": _summary_ms(client_s),
        "baseline_three_celery_hops_ms": _summary_ms(baseline),
    }
    ours, floor = result["intent_to_completed_ms"]["p50"], result["baseline_three_celery_hops_ms"]["p50"]
    result["ratio_p50_to_baseline"] = round(ours / floor, 2) if ours and floor else None
    log(
        f"  intent -> completed: p50 {ours} ms, p95 {result['intent_to_completed_ms']['p95']} ms "
        f"({statuses}); three raw Celery hops: p50 {floor} ms"
    )
    if submit_threads > 0 and submit_seconds > 0:
        result["submit_concurrency"] = concurrent = submit_concurrency(
            agent=agent,
            threads=submit_threads,
            processes=submit_processes,
            seconds=submit_seconds,
            redis_url=env["REDIS_URL"],
        )
        log(
            f"  {submit_processes} x {submit_threads} threads: intent_submit "
            f"{concurrent['intent_submit']['per_s']}/s, "
            f"bare ledger appends {concurrent['raw_ledger_append']['per_s']}/s"
        )
    return result


def report(results: dict[str, Any]) -> list[str]:
    """The Markdown section of bench/results/latest.md (empty when the part did not run)."""
    flow = results.get("flow")
    if not flow:
        return []
    rows = (
        ("intent.received -> execution.completed (ledger times)", flow["intent_to_completed_ms"]),
        ("client: submit -> sees it completed", flow["client_submit_to_seen_ms"]),
        ("baseline: three raw Celery hops (no DB, ledger, policy)", flow["baseline_three_celery_hops_ms"]),
    )
    out = [
        "## Intent to completed: a three-step autonomous plan on a real Celery worker",
        "",
        f"{flow['intents']} intents submitted one after another (after {flow['warmup']} warm-up), "
        f"each a -> b -> c of `noop.echo` under `{flow['profile']}`; worker concurrency "
        f"{flow['worker_concurrency']}; outcomes {flow['statuses']}.",
        "",
        "| measured | p50 ms | p95 ms | p99 ms | max ms | count |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, row in rows:
        out.append(
            f"| {label} | {row['p50']} | {row['p95']} | {row['p99']} | {row['max']} | {row['count']} |"
        )
    out += ["", f"p50 intent-to-completed / p50 of the three raw hops: {flow['ratio_p50_to_baseline']}", ""]
    concurrent = flow.get("submit_concurrency")
    if concurrent:
        raw, submits = concurrent["raw_ledger_append"], concurrent["intent_submit"]
        out += [
            f"Concurrent submits: {submits['processes']} processes x {submits['threads']} threads for "
            f"{submits['seconds']} s each way (every call its own transaction; steps published to a queue "
            "no worker reads):",
            "",
            "| path | calls | per s | p50 ms | p95 ms | p99 ms | errors |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for label, row in (("raw baseline: one bare ledger append", raw), ("intent_submit", submits)):
            latency = row["latency_ms"]
            out.append(
                f"| {label} | {row['count']} | {row['per_s']} | {latency['p50']} | {latency['p95']} "
                f"| {latency['p99']} | {len(row['errors'])} |"
            )
        out += ["", f"intent_submit / raw baseline: {concurrent['ratio']}", ""]
    return out
