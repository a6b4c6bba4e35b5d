"""Alert storm (issue 17): grouped Alertmanager deliveries of 1, 10, 100 and 500 alerts through the full
Django stack of `POST /api/v1/signals/alertmanager/` (URL resolving, every middleware, the webhook view and
`signal_ingest`, in this process with Django's test client: no socket), against batched raw chain appends
of the same row count measured beside it in the same run.

Real v4 payloads: many services (a rule matching any service, so after the first few deliveries the
signals attach to incidents that are already open), one alert in ten resolved, one delivery in ten a
redelivery of an earlier one (Alertmanager's retries). Per group size: signals/s sustained, delivery
latency p50/p95, ledger events per new signal, and the ratio to batched raw appends. Closed loop (one
delivery at a time): the rising offered rate over HTTP is the `signals` part's; this one measures what a
delivery costs.

Goals (issue 17): >= 2,000 signals/s in 100-alert deliveries and >= 0.15 of batched raw appends; a 500-alert
delivery answered in under 2 s at p95; <= 1.5 ledger events per signal once incidents are open.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

GROUPS = (1, 10, 100, 500)
SERVICES = 40
PATH = "/api/v1/signals/alertmanager/"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _alert(run: str, n: int, base: datetime) -> dict[str, Any]:
    service = f"svc-{n % SERVICES}"
    starts = base + timedelta(milliseconds=50 * n)
    resolved = (n // SERVICES) % 10 == 9  # one alert in ten of each service resolved
    return {
        "status": "resolved" if resolved else "firing",
        "labels": {
            "alertname": "HighErrorRate",
            "service": service,
            "severity": "critical",
            "instance": f"10.1.{n % 250}.{n % 7}:9100",
            "job": "node",
        },
        "annotations": {
            "summary": f"5xx above 5% on {service}",
            "runbook_url": "https://runbooks.example/5xx",
        },
        "startsAt": _iso(starts),
        "endsAt": _iso(starts + timedelta(seconds=30)) if resolved else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=rate%28errors%5B5m%5D%29",
        "fingerprint": f"{run}{n:012x}",
    }


def _payload(alerts: list[dict[str, Any]]) -> bytes:
    return orjson.dumps(
        {
            "version": "4",
            "groupKey": '{}:{alertname="HighErrorRate"}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "control-plane",
            "groupLabels": {"alertname": "HighErrorRate"},
            "commonLabels": {"alertname": "HighErrorRate"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.example:9093",
            "alerts": alerts,
        }
    )


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def batched_raw(*, rows: int, batches: int) -> dict[str, Any]:
    """`batches` transactions of `rows` prepared events appended in one `ledger_append_prepared` each:
    the cheapest way the same row count reaches the chain."""
    from django.db import transaction

    from controlplane.ledger.services import ledger_append_prepared, ledger_prepare

    started = time.perf_counter()
    for b in range(batches):
        events = [
            ledger_prepare(
                type="bench.storm.raw",
                subject=f"bench/raw-{b}-{i}",
                data={"index": i, "labels": {"service": "svc", "instance": "10.0.0.1:9100"}},
                tenant="bench-storm",
                actor="bench",
            )
            for i in range(rows)
        ]
        with transaction.atomic():
            ledger_append_prepared(events)
    elapsed = time.perf_counter() - started
    return {"rows_per_s": round(rows * batches / elapsed, 1) if elapsed else None}


def storm_bench(*, quick: bool, log: Any = print) -> dict[str, Any]:
    from django.test import Client

    from controlplane.identity import services as identity
    from controlplane.identity.models import PrincipalKind
    from controlplane.ledger.models import LedgerEvent
    from incidents import services
    from incidents.models import Incident

    tenant = identity.tenant_create(slug=f"bench-storm-{secrets.token_hex(2)}", actor="bench")
    sender = identity.principal_create(
        tenant=tenant, name="alertmanager", kind=PrincipalKind.SERVICE, actor="bench"
    )
    identity.grant_add(principal=sender, capability="signals.ingest", actor="bench")
    token = identity.token_issue(principal=sender, name="bench", actor="bench").secret
    services.rule_version_create(
        tenant=tenant,
        name="any-errors",
        content=services.RuleContent(threshold=3, window_seconds=600, severity="high", precision_bp=9000),
        actor="bench",
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    signals_per_size = 40 if quick else 5000
    results: dict[str, Any] = {"groups": {}}
    base = datetime(2026, 6, 1, tzinfo=UTC)
    for day, size in enumerate(GROUPS):
        run = secrets.token_hex(2)
        moment = base + timedelta(days=day)
        deliveries = max(2, signals_per_size // size)
        bodies = [
            _payload([_alert(run, d * size + i, moment) for i in range(size)]) for d in range(deliveries)
        ]
        # one delivery in ten is a redelivery (Alertmanager retries): stored once, writes nothing
        schedule = [bodies[d - 1] if d % 10 == 9 and d else bodies[d] for d in range(deliveries)]
        events_before, latencies, new, statuses = LedgerEvent.objects.count(), [], 0, {}
        started = time.perf_counter()
        for body in schedule:
            began = time.perf_counter()
            response = client.post(PATH, body, content_type="application/json")
            latencies.append(time.perf_counter() - began)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 200:
                new += response.json()["accepted"]
        elapsed = time.perf_counter() - started
        events = LedgerEvent.objects.count() - events_before
        raw = batched_raw(rows=size, batches=max(2, min(deliveries, 20)))
        rate = round(new / elapsed, 1) if elapsed else None
        results["groups"][str(size)] = {
            "deliveries": deliveries,
            "new_signals": new,
            "statuses": statuses,
            "signals_per_s": rate,
            "latency_ms": {"p50": _pct(latencies, 0.5), "p95": _pct(latencies, 0.95)},
            "ledger_events_per_signal": round(events / new, 2) if new else None,
            "batched_raw_rows_per_s": raw["rows_per_s"],
            "ratio_to_batched_raw": round(rate / raw["rows_per_s"], 3)
            if rate and raw["rows_per_s"]
            else None,
        }
        log(f"  storm: {size}-alert deliveries: {results['groups'][str(size)]}")
    results["incidents_open"] = Incident.objects.filter(tenant=tenant).count()
    hundred, five_hundred = results["groups"]["100"], results["groups"]["500"]
    results["goals"] = {
        ">= 2000 signals/s in 100-alert deliveries": (hundred["signals_per_s"] or 0) >= 2000,
        ">= 0.15 of batched raw appends (100)": (hundred["ratio_to_batched_raw"] or 0) >= 0.15,
        "500-alert delivery p95 < 2 s": (five_hundred["latency_ms"]["p95"] or 1e9) < 2000,
        "<= 1.5 ledger events per signal (100, incidents open)": (hundred["ledger_events_per_signal"] or 99)
        <= 1.5,
    }
    results["quick"] = quick
    return results


def report(results: dict[str, Any]) -> list[str]:
    """The Markdown section of bench/results/latest.md."""
    part = results.get("storm")
    if not part:
        return []
    out = [
        "## Alert storm (grouped Alertmanager deliveries, full Django stack in-process)",
        "",
        "| group size | deliveries | new signals | signals/s | p50 ms | p95 ms | events/signal | "
        "batched raw rows/s | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for size, row in part["groups"].items():
        out.append(
            f"| {size} | {row['deliveries']} | {row['new_signals']} | {row['signals_per_s']} | "
            f"{row['latency_ms']['p50']} | {row['latency_ms']['p95']} | {row['ledger_events_per_signal']} | "
            f"{row['batched_raw_rows_per_s']} | {row['ratio_to_batched_raw']} |"
        )
    out += [
        "",
        "Goals" + (" (a --quick run: sizes too small to judge)" if part.get("quick") else "") + ":",
        "",
    ]
    out += [f"- {goal}: {'met' if met else 'NOT met'}" for goal, met in part["goals"].items()]
    out.append("")
    return out
