"""Signed-event ingest through `POST /api/v1/events/`, and the no-op ceiling beside it.

Requests are built and signed (Standard Webhooks HMAC, as a real producer would) before a step
starts; the load generator then only writes bytes. Every request carries a fresh webhook-id and
CloudEvents id, so none is refused as a duplicate.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from bench import loadgen
from bench.machine import CpuMeter
from bench.server import Server, settle
from bench.urls import NOOP_PATH

INGEST_PATH = "/api/v1/events/"
EVENT_TYPE = "com.example.bench"

# A step is "sustained" when the server keeps up with it: nearly everything accepted, in the window,
# without latency that only a growing queue explains.
SUSTAIN_MIN_OK_FRACTION = 0.99
SUSTAIN_MIN_ACHIEVED_FRACTION = 0.95
SUSTAIN_MAX_P99_MS = 250.0


@dataclass(frozen=True)
class Producer:
    """What a producer needs to sign: its API token and its `whsec_` HMAC secret."""

    ref: str
    token: str
    hmac_secret: str


def producer_setup(*, name: str = "bench") -> Producer:
    """Register a producer through the channels service (in the database the server uses)."""
    from controlplane.channels.services import producer_create

    created = producer_create(tenant="bench", name=f"{name}-{secrets.token_hex(3)}", actor="bench")
    return Producer(ref=created.producer.ref, token=created.token_secret, hmac_secret=created.hmac_secret)


def event_body(*, ce_id: str, index: int, moment: str) -> bytes:
    """One CloudEvent of typical alert size (about 400 bytes)."""
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": ce_id,
            "source": "bench",
            "type": EVENT_TYPE,
            "subject": f"service/checkout-{index % 16}",
            "time": moment,
            "datacontenttype": "application/json",
            "data": {
                "service": f"checkout-{index % 16}",
                "severity": "warning",
                "metric": "http_request_duration_p99_ms",
                "value": 412 + index % 100,
                "threshold": 400,
                "labels": {"region": "eu-west-1", "cluster": "prod-a", "team": "payments"},
                "summary": "p99 latency above threshold for 5 minutes",
            },
        }
    )


def signed_requests(
    producer: Producer,
    *,
    count: int,
    host: str,
    port: int,
    path: str = INGEST_PATH,
    tag: str = "",
    extra_headers: dict[str, str] | None = None,
) -> list[bytes]:
    """`count` ready-to-send signed deliveries, each with its own webhook-id and CloudEvents id."""
    from controlplane.kernel.signatures import sign_hmac

    # webhook-id allows no "." (the separator of the signed content): keep the tag to [A-Za-z0-9-].
    run = re.sub(r"[^A-Za-z0-9-]", "-", tag) if tag else secrets.token_hex(4)
    timestamp = int(time.time())
    moment = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    requests = []
    for index in range(count):
        webhook_id = f"msg_{run}_{index}"
        body = event_body(ce_id=f"{run}-{index}", index=index, moment=moment)
        headers = {
            "Authorization": f"Bearer {producer.token}",
            "Content-Type": "application/cloudevents+json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign_hmac(producer.hmac_secret, webhook_id, timestamp, body),
            **(extra_headers or {}),
        }
        requests.append(
            loadgen.build_request(method="POST", path=path, host=host, port=port, headers=headers, body=body)
        )
    return requests


def noop_requests(producer: Producer, *, count: int, host: str, port: int, tag: str = "") -> list[bytes]:
    """The same deliveries, bytes for bytes but the path, sent to the no-op view."""
    return signed_requests(producer, count=count, host=host, port=port, path=NOOP_PATH, tag=tag)


# --- sweeps ------------------------------------------------------------------------------------------


def sustained(step: loadgen.StepResult) -> bool:
    """Did the server keep up with this offered rate? (thresholds above, documented in docs/benchmarks.md)"""
    p99 = step.latency_ms["p99"]
    return (
        step.scheduled > 0
        and step.ok >= SUSTAIN_MIN_OK_FRACTION * step.scheduled
        and step.achieved_rate >= SUSTAIN_MIN_ACHIEVED_FRACTION * step.offered_rate
        and p99 is not None
        and p99 <= SUSTAIN_MAX_P99_MS
    )


@dataclass
class Sweep:
    """Steps at increasing offered rates against one endpoint, and what they show."""

    name: str
    steps: list[loadgen.StepResult] = field(default_factory=list)

    @property
    def max_sustained(self) -> float | None:
        rates = [s.offered_rate for s in self.steps if sustained(s)]
        return max(rates) if rates else None

    @property
    def saturated(self) -> bool:
        """Whether some rate above the maximum sustained one was offered (and not sustained)."""
        best = self.max_sustained or 0.0
        return any(not sustained(s) and s.offered_rate > best for s in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "max_sustained_rate": self.max_sustained,
            "saturated": self.saturated,
            "steps": [{**s.as_dict(), "sustained": sustained(s)} for s in self.steps],
        }


RequestMaker = Callable[[int, str], list[bytes]]


def run_rate(
    server: Server,
    *,
    make_requests: RequestMaker,
    rate: float,
    duration: float,
    label: str,
    procs: int,
    timeout: float,
    max_connections: int,
    cpu_trees: dict[str, int],
) -> loadgen.StepResult:
    """One step: build (and sign) its requests, offer them at `rate`, wait for the server to settle."""
    count = max(1, round(rate * duration))
    requests = make_requests(count, f"{label}-{secrets.token_hex(3)}")
    meter = CpuMeter(cpu_trees)
    meter.start()
    step = loadgen.run_step(
        host=server.host,
        port=server.port,
        requests=requests,
        rate=rate,
        label=label,
        procs=procs,
        timeout=timeout,
        max_connections=max_connections,
    )
    step.extra["cpu"] = meter.stop(extra={"generator": step.generator_cpu_s})
    step.extra["settle_s"] = round(settle(server), 2)
    return step


def sweep(
    server: Server,
    *,
    name: str,
    make_requests: RequestMaker,
    rates: Sequence[float],
    duration: float,
    procs: int,
    timeout: float,
    max_connections: int,
    cpu_trees: dict[str, int],
    refine: int = 0,
    probe_down: int = 0,
    min_rate: float = 10.0,
    log: Callable[[str], None] = print,
) -> Sweep:
    """Offer each rate in turn; if none was sustained, halve the lowest until one is (`probe_down`
    times at most); then, `refine` times, bisect between the highest sustained rate and the lowest one
    that was not, to place the maximum sustainable rate more precisely."""
    result = Sweep(name)

    def step(rate: float, label: str) -> loadgen.StepResult:
        outcome = run_rate(
            server,
            make_requests=make_requests,
            rate=rate,
            duration=duration,
            label=label,
            procs=procs,
            timeout=timeout,
            max_connections=max_connections,
            cpu_trees=cpu_trees,
        )
        log(_line(name, outcome))
        return outcome

    for rate in rates:
        result.steps.append(step(rate, f"{name}-{rate:g}"))
    # Nothing sustained: halve the lowest rate until something is (at most `probe_down` times), so the
    # report can still say what the server does sustain.
    lowest = min(rates) if rates else 0.0
    for _ in range(probe_down):
        if result.max_sustained is not None or lowest / 2 < min_rate:
            break
        lowest = round(lowest / 2, 1)
        result.steps.append(step(lowest, f"{name}-{lowest:g}-probe"))
    for _ in range(refine):
        good = result.max_sustained
        above = [
            s.offered_rate
            for s in result.steps
            if not sustained(s) and (good is None or s.offered_rate > good)
        ]
        if good is None or not above:
            break
        middle = round((good + min(above)) / 2, -1 if good >= 50 else 0)
        if middle <= good or middle >= min(above):
            break
        result.steps.append(step(middle, f"{name}-{middle:g}-refine"))
    result.steps.sort(key=lambda s: s.offered_rate)
    return result


def _line(name: str, step: loadgen.StepResult) -> str:
    latency = step.latency_ms
    verdict = "sustained" if sustained(step) else "NOT sustained"
    return (
        f"  {name:<7} offered {step.offered_rate:>6g}/s  ok {step.achieved_rate:>7.1f}/s  "
        f"p50 {latency['p50']} p95 {latency['p95']} p99 {latency['p99']} ms  "
        f"status {step.status_counts} errors {step.errors}  {verdict}"
    )
