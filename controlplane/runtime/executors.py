"""Executors perform a step's side effect, given its execution key (the idempotency key of the effect).

Executors are registered by name (`register_executor`); the runtime's own, registered from
`RuntimeConfig.ready()`:

- `noop.echo` returns its inputs.
- `http.webhook` POSTs the step to a registered runner (`Runner`), signed the Standard Webhooks way
  (`webhook-id` = the execution key, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`
  over `id.timestamp.body`), with a timeout, and returns the runner's JSON reply as the outcome.
  The protocol is in docs/runtime.md; `manage.py runner` is the reference runner.

An executor either returns the outcome (a JSON object) or raises `ExecutorError` with a reason code and
whether trying again may help. The worker (`services.steps.step_run_execute`) owns retries, validation of the
outcome against the action's output schema, and the ledger.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from controlplane.kernel import signatures  # pure functions, no models: ingest and runners share them
from controlplane.kernel.errors import ControlPlaneError

MAX_REPLY_BYTES = 1024 * 1024
USER_AGENT = "ControlPlane-Runner-Client/1"
DEFAULT_SECRET_ENV = "CONTROLPLANE_RUNNER_SECRET"  # noqa: S105  (a variable name)
SECRET_ENV = re.compile(r"^CONTROLPLANE_RUNNER_SECRET(_[A-Z0-9_]{1,60})?$")
# Statuses after which trying again may succeed; any other 4xx is the runner refusing the step.
RETRYABLE_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class ExecutorError(Exception):
    """A step's effect did not happen (or its outcome is unusable), with a reason code."""

    def __init__(self, code: str, detail: str, *, retryable: bool = False, extra: dict | None = None):
        super().__init__(detail)
        self.code = code
        self.retryable = retryable
        self.extra = extra or {}

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "detail": str(self), "retryable": self.retryable, **self.extra}


@dataclass(frozen=True)
class StepCall:
    """Everything an executor may know about the attempt it performs."""

    execution_key: str
    execution: str
    step: str
    action: str
    action_version: str
    inputs: dict[str, Any]
    traceparent: str
    tenant: str
    attempt: int
    # The capabilities the action's skill manifest declared; an executor asks `require` before using one.
    capabilities: tuple[str, ...] = ()

    def require(self, capability: str) -> None:
        """Refuse (SKILL_CAPABILITY_UNDECLARED, not retryable) a capability the manifest did not declare."""
        if capability not in self.capabilities:
            raise ExecutorError(
                "SKILL_CAPABILITY_UNDECLARED",
                f"{self.action}@{self.action_version} did not declare {capability!r} in its manifest",
            )


Executor = Callable[[StepCall], dict[str, Any]]


def noop_echo(call: StepCall) -> dict[str, Any]:
    """`noop.echo`: the inputs back, with the execution key."""
    return {"echo": call.inputs, "execution_key": call.execution_key}


def runner_secret(secret_env: str) -> str:
    """The signing secret of a runner, from the environment only. Empty when it is not set."""
    if not secret_env or secret_env == DEFAULT_SECRET_ENV:
        return settings.CONTROLPLANE_RUNNER_SECRET
    return os.environ.get(secret_env, "") if SECRET_ENV.match(secret_env) else ""


def child_traceparent(traceparent: str) -> str:
    """The same trace, a new span for this attempt (W3C trace context)."""
    parts = traceparent.split("-")
    if len(parts) != 4:
        return traceparent
    return f"{parts[0]}-{parts[1]}-{secrets.token_hex(8)}-{parts[3]}"


def webhook_request(
    call: StepCall, *, secret: str, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The exact body and headers `http.webhook` sends for one attempt (also used by tests and docs)."""
    traceparent = child_traceparent(call.traceparent)
    body = json.dumps(
        {
            "execution_key": call.execution_key,
            "execution": call.execution,
            "step": call.step,
            "action": call.action,
            "action_version": call.action_version,
            "attempt": call.attempt,
            "tenant": call.tenant,
            "inputs": call.inputs,
            "traceparent": traceparent,
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    timestamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": call.execution_key,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures.sign_hmac(secret, call.execution_key, timestamp, body),
        "Idempotency-Key": call.execution_key,
        "traceparent": traceparent,
    }
    return body, headers


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A signed step goes to the registered URL and nowhere else."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _reply_error(status: int, raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return {"status": status}
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return {"status": status}
    return {
        "status": status,
        "runner_code": str(error.get("code", ""))[:100],
        "runner_detail": str(error.get("detail", ""))[:500],
    }


def http_webhook(call: StepCall) -> dict[str, Any]:
    """`http.webhook`: POST the step, signed, to the runner its inputs name; the JSON reply is the outcome."""
    from controlplane.runtime.runners import runner_for_tenant  # runners imports this module

    name = call.inputs.get("runner", "")
    try:
        runner = runner_for_tenant(name=name, tenant=call.tenant)  # its own, or a shared one granted to it
    except ControlPlaneError as refusal:
        raise ExecutorError(refusal.code, refusal.detail) from refusal
    secret = runner_secret(runner.secret_env)
    if not secret:
        raise ExecutorError(
            "RUNNER_SECRET_MISSING",
            f"{runner.secret_env or 'CONTROLPLANE_RUNNER_SECRET'} is not set; nothing was sent",
        )
    try:
        body, headers = webhook_request(call, secret=secret)
    except ValueError as exc:  # a secret that is not whsec_<base64>
        raise ExecutorError("RUNNER_SECRET_MISSING", f"the runner secret is unusable: {exc}") from exc
    timeout = runner.timeout_seconds or settings.CONTROLPLANE_RUNNER_TIMEOUT_SECONDS
    request = urllib.request.Request(runner.url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with _opener.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read(MAX_REPLY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read(MAX_REPLY_BYTES + 1)
    except TimeoutError as exc:
        raise ExecutorError(
            "EXECUTOR_TIMEOUT", f"runner {name} did not answer within {timeout}s", retryable=True
        ) from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError | socket.timeout):
            raise ExecutorError(
                "EXECUTOR_TIMEOUT", f"runner {name} did not answer within {timeout}s", retryable=True
            ) from exc
        raise ExecutorError(
            "RUNNER_UNREACHABLE", f"runner {name} is unreachable: {exc.reason}", retryable=True
        ) from exc
    except (ConnectionError, OSError) as exc:
        raise ExecutorError(
            "RUNNER_UNREACHABLE", f"runner {name} is unreachable: {exc}", retryable=True
        ) from exc
    if len(raw) > MAX_REPLY_BYTES:
        raise ExecutorError("EXECUTOR_OUTPUT_INVALID", f"runner {name} replied with more than 1 MiB")
    if status in (401, 403):
        raise ExecutorError(
            "RUNNER_SIGNATURE_INVALID",
            f"runner {name} refused the signature (HTTP {status}); check the shared secret and clocks",
            extra=_reply_error(status, raw),
        )
    if status in RETRYABLE_STATUSES:
        raise ExecutorError(
            "RUNNER_ERROR",
            f"runner {name} answered HTTP {status}",
            retryable=True,
            extra=_reply_error(status, raw),
        )
    if not 200 <= status < 300:
        raise ExecutorError(
            "RUNNER_REJECTED",
            f"runner {name} refused the step (HTTP {status})",
            extra=_reply_error(status, raw),
        )
    try:
        reply = json.loads(raw)
    except ValueError as exc:
        raise ExecutorError(
            "EXECUTOR_OUTPUT_INVALID", f"runner {name} replied with something not JSON"
        ) from exc
    if not isinstance(reply, dict):
        raise ExecutorError(
            "EXECUTOR_OUTPUT_INVALID", f"runner {name} replied with JSON that is not an object"
        )
    return reply


_EXECUTORS: dict[str, Executor] = {}


def register_executor(name: str, executor: Executor) -> None:
    """Make an executor available to steps under `name` (the built-ins register in `RuntimeConfig.ready()`;
    a plugin or a skill registers its own from its app's). Registering a name twice with another
    implementation is a bug."""
    existing = _EXECUTORS.get(name)
    if existing is not None and existing is not executor:
        raise ValueError(f"executor {name!r} is already registered")
    _EXECUTORS[name] = executor


def executor_for(name: str) -> Executor:
    """The executor registered under `name`; ExecutorError EXECUTOR_UNAVAILABLE when there is none."""
    executor = _EXECUTORS.get(name)
    if executor is None:
        raise ExecutorError("EXECUTOR_UNAVAILABLE", f"no executor {name!r} in this process")
    return executor


def register_builtin_executors() -> None:
    """The executors the runtime itself provides."""
    register_executor("noop.echo", noop_echo)
    register_executor("http.webhook", http_webhook)
