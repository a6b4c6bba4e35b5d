"""`POST /api/v1/events/` on an event loop: the ingest path of the ASGI application (controlplane.asgi).

Served by gunicorn's uvicorn worker (`-k uvicorn_worker.UvicornWorker controlplane.asgi:application`,
docs/operations.md), a delivery is handled by one coroutine on the worker's single thread: no thread
pool, no lock handed between threads, no thread waiting for the GIL while it holds the chain's lock.
What it does is the WSGI path's (controlplane.channels.ingest.lean), step for step and code for code:

- **The same checks and answers.** The request is Django's own `ASGIRequest`; `checks.ingest_check`
  authenticates and checks it (with `offline=True`: where the check would read the database or the
  cache server — a cache miss, a signature only fresh keys might verify — it is run again on a thread);
  the answer is made by `checks.json_response` / `checks.refusal`. The middleware the WSGI lean path runs
  (`lean.lean_middleware()`: security headers, ALLOWED_HOSTS, the request id, X-Frame-Options) are
  run here as their request and response phases (`LEAN_PHASES`); a test holds the two lists equal.
- **Group commit on the loop.** Checked deliveries queue on the loop; whatever has queued when the chain
  writer is free is appended as one chain transaction (`AsyncChainWriter`, controlplane/ledger/writer.py:
  one round trip when it knows the head it left) and each waiting request is answered. A 201 still
  means the event is durably on the chain. Signals (incident detection runs through the ORM in their
  transaction) and SQLite take `services.deliveries_append` on a thread.
- **Refusing early.** Besides the in-flight limit (`CONTROLPLANE_INGEST_MAX_INFLIGHT`), a request is
  answered 503 INGEST_OVERLOADED before any other work when the loop is running late by more than
  `CONTROLPLANE_INGEST_QUEUE_BUDGET_MS` (a request reaching the application that late has waited that
  long already) or when the oldest delivery waiting for the appender has waited longer than that.
  Refusals are counted in process and flushed to the shared counters within a second.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.exception import response_for_exception
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware

from controlplane.channels import services
from controlplane.channels.ingest import checks, lean
from controlplane.kernel.context import clean_request_id, parse_traceparent, request_context
from controlplane.kernel.errors import ControlPlaneError
from controlplane.ledger.writer import AsyncChainWriter

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# The lean middleware (controlplane.channels.ingest.lean.lean_middleware), in order, whose phases run here.
LEAN_PHASES = (
    "django.middleware.security.SecurityMiddleware",
    "controlplane.middleware.RequestIdMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
)


def _in_thread(function: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """`function` on asgiref's thread, with Django's connection hygiene around it (as around a request)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(call, thread_sensitive=True)


# --- group commit on the loop ---------------------------------------------------------------------------


_Queued = tuple[services.CheckedDelivery, asyncio.Future, float]  # the delivery, its answer, when queued


class AsyncGroupCommit:
    """Deliveries queue per event loop; whatever has queued when the chain writer is free is appended as
    one batch."""

    max_batch = 64

    def __init__(self) -> None:
        self.writer = AsyncChainWriter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: deque[_Queued] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._appending_since: float | None = None  # when the batch being appended was first queued

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._queue, self._wakeup, self._task = loop, deque(), asyncio.Event(), None
            self._appending_since = None
        return loop

    def oldest_wait(self) -> float:
        """Seconds the oldest delivery not yet answered has been waiting: the first of the batch being
        appended, else the first queued (0 when there is none)."""
        since = self._appending_since or (self._queue[0][2] if self._queue else None)
        return 0.0 if since is None else time.monotonic() - since

    async def append(self, delivery: services.CheckedDelivery) -> services.Accepted:
        loop = self._bind()
        future: asyncio.Future = loop.create_future()
        self._queue.append((delivery, future, time.monotonic()))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="ingest-group-commit")
        assert self._wakeup is not None
        self._wakeup.set()
        outcome = await future
        if isinstance(outcome, ControlPlaneError):
            raise outcome
        return outcome

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
                self._appending_since = batch[0][2]
                try:
                    outcomes = await self._outcomes([delivery for delivery, _, _ in batch])
                finally:
                    self._appending_since = None
                for (_, future, _), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():  # a request that went away is not answered
                        future.set_result(outcome)

    async def _outcomes(self, deliveries: list[services.CheckedDelivery]) -> list[services.Outcome]:
        """As `lean.append_batch`: plain events on the loop's own connection; signals and SQLite on a
        thread. Never raises."""
        if lean.takes_orm_path(deliveries):
            return await _in_thread(lean.append_batch)(deliveries, writer=None)
        try:
            return await services.deliveries_append_pipelined_async(deliveries, writer=self.writer)
        except Exception as exc:  # never leave a waiting request without an answer
            return lean.failed_batch(deliveries, exc)


group_commit = AsyncGroupCommit()


# --- how late the loop runs -----------------------------------------------------------------------------


class LoopLag:
    """How late this loop's timers fire: a task sleeps `interval` seconds at a time and notes the excess."""

    interval = 0.005

    def __init__(self) -> None:
        self.lag = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None

    def current(self) -> float:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self.lag = loop, 0.0
            self._task = loop.create_task(self._watch(), name="ingest-loop-lag")
        return self.lag

    async def _watch(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.interval)
            self.lag = max(0.0, time.monotonic() - before - self.interval)


loop_lag = LoopLag()


# --- the handler ----------------------------------------------------------------------------------------


class _Phases:
    """The request and response phases of the lean middleware, as the WSGI chain runs them."""

    def __init__(self) -> None:
        def unused(request: HttpRequest) -> HttpResponse:
            raise AssertionError("only the phases run")

        self.security = SecurityMiddleware(unused)
        self.common = CommonMiddleware(unused)
        self.frame = XFrameOptionsMiddleware(unused)

    def request(self, request: HttpRequest) -> HttpResponse | None:
        """SecurityMiddleware's and CommonMiddleware's request phases (HTTPS redirect, ALLOWED_HOSTS...)."""
        try:
            return self.security.process_request(request) or self.common.process_request(request)
        except Exception as exc:  # DisallowedHost and the like: answered as Django's handler would
            return response_for_exception(request, exc)

    def response(self, request: HttpRequest, response: HttpResponse, request_id: str) -> HttpResponse:
        """The response phases, innermost first: X-Frame-Options, Content-Length, X-Request-ID, security."""
        response = self.frame.process_response(request, response)
        response = self.common.process_response(request, response)
        response["X-Request-ID"] = request_id
        return self.security.process_response(request, response)


_phases: _Phases | None = None


def _lean_phases() -> _Phases:
    global _phases
    if _phases is None:
        _phases = _Phases()
    return _phases


def phases_match_settings() -> bool:
    """Whether the lean middleware are exactly those whose phases this path runs. When they are not
    (or the quickstart's in-process periodic work is on), controlplane.asgi sends ingest to Django."""
    inprocess = "controlplane.runtime.inprocess.InProcessPeriodicMiddleware"  # not used unless enabled
    configured = tuple(path for path in lean.lean_middleware() if path != inprocess)
    return not settings.CONTROLPLANE_INPROCESS_PERIODIC and configured == LEAN_PHASES


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The request body, read up to one byte past the upload limit; (body, whether it went past)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        if limit is not None and size + len(chunk) > limit:
            chunks.append(chunk[: limit + 1 - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


async def _send(send: Send, response: HttpResponse) -> None:
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.content})


def _overloaded(request_id: str) -> HttpResponse:
    services.rejection_record(producer=None, code="INGEST_OVERLOADED", deferred=True)
    return checks.refusal(ControlPlaneError("INGEST_OVERLOADED"), request_id)


class _Inflight:
    """Deliveries of this process between their checks and their answer."""

    count = 0


async def handle(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI: one `POST /api/v1/events/`."""
    phases = _lean_phases()
    try:
        body, too_big = await _read_body(receive)
    except ConnectionAbortedError:  # the client went away before sending its body: nothing to answer
        return
    request = ASGIRequest(scope, io.BytesIO(body))
    if too_big:  # so that reading it raises RequestDataTooBig, as it does on the WSGI path
        request.META["CONTENT_LENGTH"] = str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    request_id = clean_request_id(request.META.get("HTTP_X_REQUEST_ID"))
    request.request_id = request_id
    early = phases.request(request)
    if early is not None:
        await _send(send, phases.response(request, early, request_id))
        return
    budget = settings.CONTROLPLANE_INGEST_QUEUE_BUDGET_MS / 1000.0
    limit = max(int(settings.CONTROLPLANE_INGEST_MAX_INFLIGHT), 0)
    if (budget > 0 and (loop_lag.current() > budget or group_commit.oldest_wait() > budget)) or (
        _Inflight.count >= limit
    ):
        await _send(send, phases.response(request, _overloaded(request_id), request_id))
        return
    _Inflight.count += 1
    try:
        response = await _ingest(request, request_id)
    finally:
        _Inflight.count -= 1
    await _send(send, phases.response(request, response, request_id))


async def _ingest(request: ASGIRequest, request_id: str) -> HttpResponse:
    header = request.META.get("HTTP_TRACEPARENT")
    traceparent = header.strip() if header and parse_traceparent(header) else None
    attempt = checks.Attempt()
    with request_context(request_id=request_id, traceparent=traceparent):
        try:
            try:
                checked = checks.ingest_check(request, attempt, offline=True)
            except checks.NeedsDatabase:
                checked = await _in_thread(checks.ingest_check)(request, attempt)
            accepted = await group_commit.append(checked)
            return checks.json_response(accepted.as_dict(), 201)
        except ControlPlaneError as exc:
            services.rejection_record(producer=attempt.producer, code=exc.code, deferred=True)
            return checks.refusal(exc, request_id)
