"""Signals per second from ingest through promotion, on PostgreSQL, against a raw baseline of the same run.

Three measurements, all in the scratch database of the run:

1. raw baseline: one bare `ledger_append` per transaction, serially, in this process (what the cheapest
   possible signal would cost: its one ledger event);
2. the service path: `incidents.services.signal_ingest` per signal, serially, in this process; every
   signal after the second of its service meets the rule's threshold, so it goes through evidence,
   confidence, the promotion gate and attaching to the service's open incident (about five events);
3. the same two concurrently: `processes` forked copies of this process with `threads` threads each, for
   `concurrent_seconds` each way (each thread's signals on services of its own, so only the chain is
   shared), which shows how much of the chain's serial point a delivery occupies;
4. the HTTP path: Alertmanager webhooks (`POST /api/v1/signals/alertmanager/`, one alert each) offered
   open-loop at increasing rates to gunicorn, as the ingest benchmark does; latency from each
   request's scheduled send time.

Signal times advance by SPACING_S per signal across SERVICES services, so a rule's window holds a bounded
number of signals however long the run. Each step's signals start on a day of their own.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench import ingest, loadgen
from bench.server import ServerConfig
from bench.threads import run_threads

SIGNALS_PATH = "/api/v1/signals/alertmanager/"
SERVICES = 16
SPACING_S = 0.5  # one signal per service every 8 s: a 300 s window holds about 37 of them
RULE = {"threshold": 3, "window_seconds": 300, "severity": "high", "precision_bp": 9000}
EPOCH = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Sender:
    """The monitoring system's service principal (holding signals.ingest) and its bearer token."""

    tenant: str
    ref: str
    token: str


def setup(*, tenant_slug: str = "bench-signals") -> Sender:
    """A tenant, a sender principal with a token, and one detection rule (through the services)."""
    from controlplane.identity import services as identity
    from controlplane.identity.models import PrincipalKind
    from incidents import services

    tenant = identity.tenant_create(slug=tenant_slug, actor="bench")
    principal = identity.principal_create(
        tenant=tenant, name=f"alertmanager-{secrets.token_hex(3)}", kind=PrincipalKind.SERVICE, actor="bench"
    )
    identity.grant_add(principal=principal, capability="signals.ingest", actor="bench")
    token = identity.token_issue(principal=principal, name="bench", actor="bench").secret
    services.rule_version_create(
        tenant=tenant,
        name="bench-errors",
        content=services.RuleContent(match_name="HighErrorRate", **RULE),
        actor="bench",
    )
    return Sender(tenant=tenant_slug, ref=principal.ref, token=token)


def _moment(day: int, index: int) -> datetime:
    return EPOCH + timedelta(days=day, seconds=index * SPACING_S)


def alert(*, run: str, index: int, day: int) -> dict[str, Any]:
    """One firing alert as Alertmanager writes it (critical, so every bundle is promoted)."""
    return {
        "status": "firing",
        "labels": {
            "alertname": "HighErrorRate",
            "service": f"svc-{index % SERVICES}",
            "severity": "critical",
            "instance": f"10.0.{index % 7}.{index % 250}:9100",
            "job": "api",
        },
        "annotations": {"summary": "5xx ratio above 5% for 5 minutes", "runbook_url": "https://runbooks/5xx"},
        "startsAt": _moment(day, index).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=job%3Aerrors%3Aratio5m+%3E+0.05",
        "fingerprint": f"{run}{index:08x}"[-32:],
    }


def webhook_body(*, run: str, index: int, day: int) -> bytes:
    """An Alertmanager webhook, payload version 4, carrying one alert (about 900 bytes)."""
    one = alert(run=run, index=index, day=day)
    return orjson.dumps(
        {
            "version": "4",
            "groupKey": '{}:{alertname="HighErrorRate"}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "control-plane",
            "groupLabels": {"alertname": "HighErrorRate"},
            "commonLabels": one["labels"],
            "commonAnnotations": one["annotations"],
            "externalURL": "http://alertmanager:9093",
            "alerts": [one],
        }
    )


class RequestFactory:
    """Builds each step's requests; every step's signals fall on a day of their own."""

    def __init__(self, sender: Sender, *, host: str, port: int, first_day: int = 1) -> None:
        self.sender, self.host, self.port, self.day = sender, host, port, first_day

    def __call__(self, count: int, tag: str) -> list[bytes]:
        self.day += 1
        run = secrets.token_hex(4)
        headers = {"Authorization": f"Bearer {self.sender.token}", "Content-Type": "application/json"}
        return [
            loadgen.build_request(
                method="POST",
                path=SIGNALS_PATH,
                host=self.host,
                port=self.port,
                headers=headers,
                body=webhook_body(run=run, index=index, day=self.day),
            )
            for index in range(count)
        ]


def _summary(seconds: list[float], count: int, elapsed: float) -> dict[str, Any]:
    ordered = sorted(seconds)

    def ms(fraction: float) -> float | None:
        value = loadgen.percentile(ordered, fraction)
        return None if value is None else round(value * 1000, 3)

    return {
        "count": count,
        "seconds": round(elapsed, 3),
        "per_s": round(count / elapsed, 1) if elapsed else None,
        "latency_ms": {"p50": ms(0.5), "p95": ms(0.95), "p99": ms(0.99), "max": ms(1.0)},
    }


def raw_baseline(*, count: int) -> dict[str, Any]:
    """`count` bare ledger appends of a signal-sized payload, one transaction each, serially."""
    from django.db import transaction

    from controlplane.ledger.services import ledger_append

    payload = alert(run="raw", index=0, day=0)
    times: list[float] = []
    started = time.perf_counter()
    for index in range(count):
        began = time.perf_counter()
        with transaction.atomic():
            ledger_append(
                type="bench.signal.raw",
                subject=f"bench/raw-{index}",
                data={"index": index, **payload},
                tenant="bench-signals",
                actor="bench",
            )
        times.append(time.perf_counter() - began)
    return _summary(times, count, time.perf_counter() - started)


def service_path(sender: Sender, *, count: int, day: int = 0) -> dict[str, Any]:
    """`count` signals through `signal_ingest` (normalise -> store -> detect -> promote -> incident)."""
    from controlplane.identity.models import Tenant
    from controlplane.ledger.models import LedgerEvent
    from incidents import normalise, services

    tenant = Tenant.objects.get(slug=sender.tenant)
    run = secrets.token_hex(4)
    payloads = [
        {"version": "4", "groupKey": "{}", "alerts": [alert(run=run, index=i, day=day)]} for i in range(count)
    ]
    events_before = LedgerEvent.objects.count()
    times: list[float] = []
    promoted = 0
    started = time.perf_counter()
    for payload in payloads:
        began = time.perf_counter()
        signals = normalise.from_alertmanager(payload, source=f"alertmanager/{sender.ref}")
        result = services.signal_ingest(tenant=tenant, signals=signals, actor=sender.ref)
        times.append(time.perf_counter() - began)
        promoted += sum(1 for o in result.outcomes if o.decision.decision == "PROMOTE")
    elapsed = time.perf_counter() - started
    summary = _summary(times, count, elapsed)
    summary["promoted"] = promoted
    summary["ledger_events_per_signal"] = round((LedgerEvent.objects.count() - events_before) / count, 2)
    return summary


def concurrent_paths(
    sender: Sender, *, threads: int, seconds: float, day: int, processes: int = 1
) -> dict[str, Any]:
    """Bare ledger appends, then `signal_ingest`, from `processes` x `threads` threads at once (thread t
    of T in all sends the signals of index t, t + T, ...: services of its own when T divides SERVICES)."""
    width = threads * processes
    from django.db import transaction

    from controlplane.identity.models import Tenant
    from controlplane.ledger.services import ledger_append
    from incidents import normalise, services

    tenant = Tenant.objects.get(slug=sender.tenant)
    run = secrets.token_hex(4)
    payload = alert(run="raw", index=0, day=0)

    def bare_append(thread: int, n: int) -> None:
        with transaction.atomic():
            ledger_append(
                type="bench.signal.raw",
                subject=f"bench/raw-{run}-{thread}-{n}",
                data={"index": n, **payload},
                tenant=sender.tenant,
                actor="bench",
            )

    def ingest_one(thread: int, n: int) -> None:
        one = {
            "version": "4",
            "groupKey": "{}",
            "alerts": [alert(run=run, index=n * width + thread, day=day)],
        }
        signals = normalise.from_alertmanager(one, source=f"alertmanager/{sender.ref}")
        services.signal_ingest(tenant=tenant, signals=signals, actor=sender.ref)

    raw = run_threads(threads, seconds, bare_append, processes=processes)
    ingested = run_threads(threads, seconds, ingest_one, processes=processes)
    return {
        "raw_ledger_append": raw,
        "service_path": ingested,
        "ratio": round(ingested["per_s"] / raw["per_s"], 3) if ingested["per_s"] and raw["per_s"] else None,
    }


def checks(sender: Sender) -> dict[str, Any]:
    """What the runs left behind: each accepted signal stored once; one open incident per service."""
    from incidents.models import EvidenceBundle, Incident, Signal

    open_incidents = Incident.objects.filter(tenant__slug=sender.tenant, status="open")
    per_service = list(open_incidents.values_list("service", flat=True))
    return {
        "signals": Signal.objects.filter(tenant__slug=sender.tenant).count(),
        "evidence": EvidenceBundle.objects.filter(tenant__slug=sender.tenant).count(),
        "open_incidents": len(per_service),
        "one_open_incident_per_service": len(per_service) == len(set(per_service)) <= SERVICES,
    }


def signals_bench(
    *,
    env: dict[str, str],
    work: Path,
    config: ServerConfig,
    rates: list[float],
    duration: float,
    count: int,
    common: dict[str, Any],
    postmaster: int | None,
    refine: int = 0,
    probe_down: int = 0,
    threads: int = 4,
    processes: int = 2,
    concurrent_seconds: float = 10.0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The raw baseline and the service path in this process (serially, then from several threads),
    then the HTTP sweep through gunicorn."""
    from bench import server

    sender = setup()
    log(f"raw baseline: {count} bare ledger appends ...")
    raw = raw_baseline(count=count)
    log(f"  {raw['per_s']}/s  latency {raw['latency_ms']}")
    log(f"service path: {count} signals through signal_ingest (detect, promote, attach) ...")
    inproc = service_path(sender, count=count)
    log(f"  {inproc['per_s']}/s  latency {inproc['latency_ms']}  promoted {inproc['promoted']}")
    concurrent = None
    if threads > 0 and concurrent_seconds > 0:
        log(f"both again from {processes} processes x {threads} threads, {concurrent_seconds} s each ...")
        concurrent = concurrent_paths(
            sender, threads=threads, processes=processes, seconds=concurrent_seconds, day=1
        )
        log(
            f"  bare appends {concurrent['raw_ledger_append']['per_s']}/s, "
            f"signal_ingest {concurrent['service_path']['per_s']}/s"
        )
    with server.gunicorn(config=config, env=env, log_path=work / "gunicorn-signals.log") as srv:
        make = RequestFactory(sender, host=srv.host, port=srv.port)
        warm = make(max(20, config.workers * config.threads * 2), "signals-warmup")
        loadgen.run_step(host=srv.host, port=srv.port, requests=warm, rate=50, **common)
        server.settle(srv)
        log("Alertmanager webhooks through gunicorn ...")
        sweep = ingest.sweep(
            srv,
            name="signals",
            make_requests=make,
            rates=rates,
            duration=duration,
            cpu_trees={"gunicorn": srv.pid, "postgres": postmaster or 0},
            refine=refine,
            probe_down=probe_down,
            log=log,
            **common,
        )
    http = sweep.as_dict()
    best = http["max_sustained_rate"]
    return {
        "path": SIGNALS_PATH,
        "rule": RULE,
        "services": SERVICES,
        "raw_ledger_append": raw,
        "service_path": inproc,
        "concurrent": concurrent,
        "http": http,
        "ratios": {
            "service path / raw ledger append": round(inproc["per_s"] / raw["per_s"], 3)
            if inproc["per_s"] and raw["per_s"]
            else None,
            "http max sustained / service path": round(best / inproc["per_s"], 3)
            if best and inproc["per_s"]
            else None,
        },
        "checks": checks(sender),
    }


def report(results: dict[str, Any]) -> list[str]:
    """The Markdown section of bench/results/latest.md."""
    part = results.get("signals")
    if not part:
        return []
    from bench.report import _step_table

    raw, inproc, http, checked = part["raw_ledger_append"], part["service_path"], part["http"], part["checks"]

    def row(name: str, summary: dict[str, Any]) -> str:
        latency = summary["latency_ms"]
        return (
            f"| {name} | {summary['count']:,} | {summary['per_s'] or 0:,.1f} | {latency['p50']} "
            f"| {latency['p95']} | {latency['p99']} | {latency['max']} |"
        )

    best = http.get("max_sustained_rate")
    return [
        "## Signals: ingest through promotion (`POST /api/v1/signals/alertmanager/`)",
        "",
        f"Rule: {part['rule']['threshold']} signals within {part['rule']['window_seconds']} s over "
        f"{part['services']} services; every signal from a service's third on is promoted and attached to "
        "its open incident. Serial, one transaction per signal, in the benchmark process:",
        "",
        "| path | signals | per s | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
        row("raw baseline: one bare ledger append", raw),
        row("signal_ingest: store, detect, promote, attach", inproc),
        "",
        f"Promoted {inproc['promoted']:,} of {inproc['count']:,}; "
        f"{inproc['ledger_events_per_signal']} ledger events per signal. "
        f"Service path / raw baseline: {part['ratios']['service path / raw ledger append']}.",
        "",
        *_concurrent_lines(part.get("concurrent"), row),
        "Alertmanager webhooks (one alert each) through gunicorn, open loop:",
        "",
        *_step_table(http["steps"]),
        "",
        f"Maximum sustained: **{best:,.0f} signals/s**"
        if best
        else "Maximum sustained: none of the rates offered",
        "",
        f"Checks: {checked['signals']:,} signals stored, {checked['evidence']:,} evidence bundles, "
        f"{checked['open_incidents']} open incidents (one per service: "
        f"{'yes' if checked['one_open_incident_per_service'] else '**no**'}).",
        "",
    ]


def _concurrent_lines(
    concurrent: dict[str, Any] | None, row: Callable[[str, dict[str, Any]], str]
) -> list[str]:
    if not concurrent:
        return []
    raw, ingested = concurrent["raw_ledger_append"], concurrent["service_path"]
    return [
        f"The same from {raw['processes']} processes x {raw['threads']} threads at once ({raw['seconds']} s "
        "each; each thread's signals on services of its own):",
        "",
        "| path | signals | per s | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
        row("raw baseline: one bare ledger append", raw),
        row("signal_ingest: store, detect, promote, attach", ingested),
        "",
        f"Service path / raw baseline, concurrently: {concurrent['ratio']}"
        + (f" (errors: {raw['errors'] + ingested['errors']})" if raw["errors"] or ingested["errors"] else "")
        + ".",
        "",
    ]
