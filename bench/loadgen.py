"""An open-loop HTTP/1.1 load generator: requests leave on a fixed schedule, whatever the server does.

A closed-loop client (send, wait, send the next) slows down when the server does, so it never offers
the load it claims and hides queueing ("coordinated omission"). Here request `i` of a step is due at
`start + i / rate`; its latency is measured from that *scheduled* time to the last byte of the
response, so time spent waiting for a connection, in the kernel's accept queue or in the server's
queues all shows up in the numbers.

Requests are prepared in full (bytes on the wire, signatures included) before the step starts, and
are written over raw keep-alive connections with asyncio streams: the generator spends its CPU on
sockets, not on HTTP libraries or HMAC. A step may be spread over several processes (`procs`), each
taking every `procs`-th request of the same schedule. Every loop is bounded: a step schedules exactly
`len(requests)` requests and each request has a deadline; whatever is still open at the end of the
drain period is counted as a timeout.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import math
import multiprocessing
import os
import resource
import socket
import time
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

# A connection unused for longer than this is not reused (the server may be closing it: gunicorn's
# keep-alive timeout is set well above it in bench/gunicorn_conf.py).
_IDLE_REUSE_SECONDS = 1.0
_MAX_HEAD_BYTES = 64 * 1024
# Connections being opened at once. asyncio runs every ready callback before it looks at its timers
# again, so opening hundreds at once (a burst when the server slows down) would stall the schedule.
_MAX_CONNECTING = 8
GENERATOR_NICE = -10
# Status codes stored per request; 0 means no response (timeout or connection error).
NO_RESPONSE = 0


def build_request(
    *, method: str, path: str, host: str, port: int, headers: dict[str, str], body: bytes = b""
) -> bytes:
    """The exact bytes of one HTTP/1.1 keep-alive request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


# --- one process's share of a step -------------------------------------------------------------------


@dataclass
class _Share:
    """What one generator process measured: per request, in schedule order of its share."""

    statuses: array = field(default_factory=lambda: array("H"))
    latencies: array = field(default_factory=lambda: array("d"))  # seconds from scheduled to done
    finished: array = field(default_factory=lambda: array("d"))  # monotonic time the response ended
    errors: dict[str, int] = field(default_factory=dict)
    dispatch_lag: array = field(default_factory=lambda: array("d"))  # loop wake-up minus schedule
    connections_opened: int = 0
    stale_retries: int = 0
    cpu_seconds: float = 0.0
    samples: dict[int, str] = field(default_factory=dict)  # the first response body seen per status


class _Client(asyncio.Protocol):
    """One keep-alive connection: sends a request, parses the response, asks the pool for the next."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.index = -1  # the request in flight, or -1 when idle
        self.retried = False
        self.served = 0
        self.head_end = -1
        self.body_left = 0
        self.status = 0
        self.close_after = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, index: int, retried: bool = False) -> None:
        self.index, self.retried = index, retried
        self.buffer.clear()
        self.head_end = -1
        self.transport.write(self.pool.requests[index])

    def data_received(self, data: bytes) -> None:
        if self.index < 0:
            return  # unsolicited bytes from the server: ignored, the connection is closed when reused
        self.buffer += data
        if self.head_end < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > _MAX_HEAD_BYTES:
                    self._fail("bad-response")
                return
            try:
                self.status, length, self.close_after = _parse_head(bytes(self.buffer[:end]))
            except ValueError:
                self._fail("bad-response")
                return
            self.head_end = end + 4
            self.body_left = length
        if len(self.buffer) - self.head_end >= self.body_left:
            index, status = self.index, self.status
            self.index = -1
            self.served += 1
            samples = self.pool.share.samples
            if status not in samples:
                body = bytes(self.buffer[self.head_end : self.head_end + min(self.body_left, 300)])
                samples[status] = body.decode("utf-8", "replace")
            self.pool.answered(self, index, status)

    def _fail(self, outcome: str) -> None:
        index, self.index = self.index, -1
        self.pool.failed(index, outcome)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        index, self.index = self.index, -1
        self.pool.lost(self, index, exc, nothing_received=not self.buffer)


class _Pool:
    """Requests of one process, their keep-alive connections (at most `limit`) and their outcomes."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, host: str, port: int, requests: Sequence[bytes], limit: int
    ) -> None:
        self.loop, self.host, self.port, self.requests, self.limit = loop, host, port, requests, limit
        count = len(requests)
        self.share = _Share(
            statuses=array("H", [NO_RESPONSE]) * count,
            latencies=array("d", [math.inf]) * count,
            finished=array("d", [math.inf]) * count,
        )
        self.scheduled = array("d", [0.0]) * count
        self.idle: list[_Client] = []
        self.waiting: collections.deque[tuple[int, bool]] = collections.deque()
        self.in_flight: dict[int, _Client] = {}
        self.open = 0  # connected or connecting
        self.connecting = 0
        self.pending = count  # requests without an outcome yet
        self.all_done = loop.create_future()

    # --- outcomes ---

    def _record(self, index: int, status: int, outcome: str = "") -> None:
        if self.share.finished[index] != math.inf:
            return  # already recorded (a timeout raced with the response)
        done = time.monotonic()
        self.share.statuses[index] = status
        self.share.latencies[index] = done - self.scheduled[index]
        self.share.finished[index] = done
        self.in_flight.pop(index, None)
        if outcome:
            self.share.errors[outcome] = self.share.errors.get(outcome, 0) + 1
        self.pending -= 1
        if self.pending == 0 and not self.all_done.done():
            self.all_done.set_result(None)

    def answered(self, client: _Client, index: int, status: int) -> None:
        self._record(index, status)
        if client.close_after:
            client.transport.close()  # connection_lost frees the slot
            return
        client.idle_since = time.monotonic()
        self.idle.append(client)
        self._pump()

    def failed(self, index: int, outcome: str) -> None:
        self._record(index, NO_RESPONSE, outcome)

    def lost(self, client: _Client, index: int, exc: Exception | None, nothing_received: bool) -> None:
        self.open -= 1
        if client in self.idle:
            self.idle.remove(client)
        if index >= 0:
            if client.served > 0 and nothing_received and not client.retried:
                # A reused keep-alive connection the server had already closed: send it again, once.
                self.share.stale_retries += 1
                self.waiting.appendleft((index, True))
            else:
                self._record(index, NO_RESPONSE, type(exc).__name__ if exc else "closed-by-server")
        self._pump()

    # --- dispatch ---

    def fire(self, index: int, scheduled: float) -> None:
        self.scheduled[index] = scheduled
        self.waiting.append((index, False))
        self._pump()

    def _pump(self) -> None:
        now = time.monotonic()
        while self.waiting:
            client = None
            while self.idle:
                candidate = self.idle.pop()
                if now - candidate.idle_since <= _IDLE_REUSE_SECONDS and not candidate.transport.is_closing():
                    client = candidate
                    break
                candidate.transport.close()
            if client is not None:
                index, retried = self.waiting.popleft()
                self.in_flight[index] = client
                client.send(index, retried)
                continue
            if self.open >= self.limit or self.connecting >= _MAX_CONNECTING:
                return  # the request waits for a connection; its clock is already running
            self.open += 1
            self.connecting += 1
            self.loop.create_task(self._connect())
            if self.connecting >= len(self.waiting):
                return

    async def _connect(self) -> None:
        try:
            _, client = await self.loop.create_connection(lambda: _Client(self), self.host, self.port)
        except OSError as exc:
            self.connecting -= 1
            self.open -= 1
            if self.waiting:
                index, _ = self.waiting.popleft()
                self._record(index, NO_RESPONSE, f"connect:{exc.errno}")
            self._pump()
            return
        self.connecting -= 1
        self.share.connections_opened += 1
        client.idle_since = time.monotonic()
        self.idle.append(client)
        self._pump()

    def expire(self, timeout: float) -> None:
        """Give up on requests older than `timeout`: queued ones are dropped, sent ones lose their
        connection (a late response must not be read as the answer to the next request)."""
        limit = time.monotonic() - timeout
        # The queue is in schedule order (a retry goes to the front, older than what follows it), so the
        # expired requests are at its head: no scan of the whole queue, which may hold thousands.
        while self.waiting and self.scheduled[self.waiting[0][0]] < limit:
            index, _ = self.waiting.popleft()
            self._record(index, NO_RESPONSE, "timeout")
        for index, client in list(self.in_flight.items()):
            if self.scheduled[index] < limit:
                client.index = -1
                self._record(index, NO_RESPONSE, "timeout")
                client.transport.close()

    def close_all(self) -> None:
        for client in self.idle:
            client.transport.close()
        self.idle.clear()


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    """(status, content-length, server wants close) from a response head (no chunked bodies here:
    Django's CommonMiddleware sets Content-Length, and so does the sink)."""
    status_line, _, rest = head.partition(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP/1.x response: {status_line[:80]!r}")
    status = int(parts[1])
    length = None
    close = parts[0] == b"HTTP/1.0"
    for line in rest.split(b"\r\n"):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"connection":
            close = value.strip().lower() == b"close"
        elif name == b"transfer-encoding":
            raise ValueError("chunked responses are not expected")
    if length is None:
        raise ValueError("a response without Content-Length")
    return status, length, close


async def _drive(
    *,
    host: str,
    port: int,
    requests: Sequence[bytes],
    first_due: float,
    interval: float,
    timeout: float,
    max_connections: int,
) -> _Share:
    loop = asyncio.get_running_loop()
    pool = _Pool(loop, host, port, requests, max_connections)
    share = pool.share
    count = len(requests)
    index = 0
    last_expiry = loop.time()
    while index < count:  # bounded: each pass fires at least one request or sleeps until the next
        now = loop.time()
        while index < count and first_due + index * interval <= now:
            scheduled = first_due + index * interval
            share.dispatch_lag.append(now - scheduled)
            pool.fire(index, scheduled)
            index += 1
        if now - last_expiry > 0.1:
            pool.expire(timeout)
            last_expiry = now
        if index < count:
            await asyncio.sleep(max(0.0, first_due + index * interval - loop.time()))
    drain_until = first_due + count * interval + timeout
    while pool.pending and loop.time() < drain_until + 0.5:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pool.all_done), timeout=0.1)
        pool.expire(timeout)
    pool.close_all()
    for client in list(pool.in_flight.values()):
        client.transport.close()
    await asyncio.sleep(0)
    return share


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(sender: Connection, kwargs: dict[str, Any]) -> None:
    """Entry point of one forked generator process; always leaves through os._exit (no finalisers run
    on objects inherited from the parent, such as database connections)."""
    status = 1
    try:
        # The generator stands in for clients on other machines: it must not queue behind the server
        # it measures for a core. It uses little CPU; without root this stays at the default priority.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, GENERATOR_NICE)
        # A full collection over thousands of connections and pending requests stalls the schedule
        # for tens of milliseconds; a step's garbage is bounded, so the collector waits until exit.
        gc.freeze()
        gc.disable()
        before = _cpu_seconds()
        share = asyncio.run(_drive(**kwargs))
        share.cpu_seconds = _cpu_seconds() - before
        sender.send(share)
        status = 0
    except BaseException as exc:  # report anything to the parent, which raises it
        with contextlib.suppress(Exception):
            sender.send(RuntimeError(f"generator process failed: {exc!r}"))
    finally:
        sender.close()
        os._exit(status)


# --- a step, across processes ------------------------------------------------------------------------


@dataclass
class StepResult:
    """One offered rate held for `duration_s`: what was sent and what came back."""

    label: str
    offered_rate: float
    duration_s: float
    scheduled: int
    status_counts: dict[str, int]
    errors: dict[str, int]
    ok_in_window: int  # 2xx responses completed inside the step's window
    achieved_rate: float  # ok_in_window / duration_s
    latency_ms: dict[str, float | None]  # over every request that got a response
    latency_ok_ms: dict[str, float | None]  # over 2xx responses only
    dispatch_lag_ms: dict[str, float | None]  # how late the generator woke up for a request
    generator_cpu_s: float
    generator_procs: int
    connections_opened: int
    stale_retries: int
    samples: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return sum(n for code, n in self.status_counts.items() if code.startswith("2"))

    @property
    def shed(self) -> int:
        return self.status_counts.get("429", 0) + self.status_counts.get("503", 0)

    @property
    def no_response(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "offered_rate": self.offered_rate,
            "duration_s": self.duration_s,
            "scheduled": self.scheduled,
            "ok": self.ok,
            "shed": self.shed,
            "no_response": self.no_response,
            "status_counts": self.status_counts,
            "errors": self.errors,
            "ok_in_window": self.ok_in_window,
            "achieved_rate": round(self.achieved_rate, 1),
            "latency_ms": self.latency_ms,
            "latency_ok_ms": self.latency_ok_ms,
            "dispatch_lag_ms": self.dispatch_lag_ms,
            "generator_cpu_s": round(self.generator_cpu_s, 3),
            "generator_cpu_us_per_request": round(1e6 * self.generator_cpu_s / self.scheduled, 1)
            if self.scheduled
            else None,
            "generator_procs": self.generator_procs,
            "connections_opened": self.connections_opened,
            "stale_retries": self.stale_retries,
            "response_samples": self.samples,
            **self.extra,
        }


def _summary_ms(values: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(values)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    return {
        "p50": ms(percentile(ordered, 0.50)),
        "p95": ms(percentile(ordered, 0.95)),
        "p99": ms(percentile(ordered, 0.99)),
        "max": ms(ordered[-1] if ordered else None),
        "count": len(ordered),
    }


def run_step(
    *,
    host: str,
    port: int,
    requests: Sequence[bytes],
    rate: float,
    label: str = "",
    procs: int = 1,
    timeout: float = 5.0,
    max_connections: int = 1024,
    lead_in: float = 0.3,
) -> StepResult:
    """Offer `len(requests)` requests at `rate` per second (open loop) and measure what comes back.

    The step lasts `len(requests) / rate` seconds plus at most `timeout` of drain. `max_connections` is
    per process; a request waiting for a free connection is already late, and that counts.
    """
    if rate <= 0 or not requests:
        raise ValueError("a step needs a positive rate and at least one request")
    procs = max(1, min(procs, len(requests)))
    duration = len(requests) / rate
    interval = procs / rate
    context = multiprocessing.get_context("fork")
    start = time.monotonic() + lead_in
    children = []
    for k in range(procs):
        receiver, sender = context.Pipe(duplex=False)
        kwargs = {
            "host": host,
            "port": port,
            "requests": requests[k::procs],
            "first_due": start + k / rate,
            "interval": interval,
            "timeout": timeout,
            "max_connections": max_connections,
        }
        process = context.Process(target=_child, args=(sender, kwargs), daemon=True)
        process.start()
        sender.close()
        children.append((process, receiver))
    shares: list[_Share] = []
    failure: Exception | None = None
    deadline = start + duration + timeout + 30
    for process, receiver in children:
        wait = max(0.1, deadline - time.monotonic())
        message = receiver.recv() if receiver.poll(wait) else RuntimeError("generator process hung")
        if isinstance(message, Exception):
            failure = failure or message
        else:
            shares.append(message)
        receiver.close()
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)
    if failure is not None:
        raise failure
    return _combine(label, rate, duration, start, shares)


def _combine(label: str, rate: float, duration: float, start: float, shares: list[_Share]) -> StepResult:
    status_counts: dict[str, int] = {}
    errors: dict[str, int] = {}
    answered: list[float] = []
    ok_latencies: list[float] = []
    lags: list[float] = []
    ok_in_window = 0
    window_end = start + duration
    for share in shares:
        for status, latency, finished in zip(share.statuses, share.latencies, share.finished, strict=True):
            if status == NO_RESPONSE:
                continue
            status_counts[str(status)] = status_counts.get(str(status), 0) + 1
            answered.append(latency)
            if 200 <= status < 300:
                ok_latencies.append(latency)
                if finished <= window_end:
                    ok_in_window += 1
        for name, count in share.errors.items():
            errors[name] = errors.get(name, 0) + count
        lags.extend(share.dispatch_lag)
    return StepResult(
        label=label,
        offered_rate=rate,
        duration_s=round(duration, 3),
        scheduled=sum(len(share.statuses) for share in shares),
        status_counts=dict(sorted(status_counts.items())),
        errors=dict(sorted(errors.items())),
        ok_in_window=ok_in_window,
        achieved_rate=ok_in_window / duration,
        latency_ms=_summary_ms(answered),
        latency_ok_ms=_summary_ms(ok_latencies),
        dispatch_lag_ms=_summary_ms(lags),
        generator_cpu_s=sum(share.cpu_seconds for share in shares),
        generator_procs=len(shares),
        connections_opened=sum(share.connections_opened for share in shares),
        stale_retries=sum(share.stale_retries for share in shares),
        samples={str(code): body for share in shares for code, body in sorted(share.samples.items())},
    )


# --- a trivial server: the generator's own ceiling -----------------------------------------------------

SINK_RESPONSE = (
    b'HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{"status": "ok"}'
)


class _SinkProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:  # bounded by the buffer: each pass consumes one whole request or stops
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in bytes(self.buffer[:end]).split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            self.transport.write(SINK_RESPONSE)


def _sink_main(sock: socket.socket) -> None:
    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(_SinkProtocol, sock=sock)
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(serve())
    finally:
        os._exit(0)


@contextlib.contextmanager
def sink_server() -> Iterator[int]:
    """A minimal keep-alive HTTP server answering every request with a fixed 201, in its own process.

    It does close to nothing per request, so a generator step against it measures the generator.
    Yields the port on 127.0.0.1.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    process = multiprocessing.get_context("fork").Process(target=_sink_main, args=(sock,), daemon=True)
    process.start()
    sock.close()
    try:
        yield port
    finally:
        process.terminate()
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)
