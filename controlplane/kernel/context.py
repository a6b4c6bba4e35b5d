"""Request-scoped context that ledger events pick up: the request id and the W3C trace context.

Set by `RequestIdMiddleware` for web requests; management commands and tasks set it with
`request_context(...)`. Kept in contextvars so concurrent requests never see each other's values.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
traceparent_var: ContextVar[str | None] = ContextVar("traceparent", default=None)

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def clean_request_id(value: str | None) -> str:
    """Accept a caller's X-Request-ID if it is a sane token; otherwise mint a new one."""
    if value and _REQUEST_ID_RE.match(value):
        return value
    return secrets.token_hex(16)


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """Return (trace_id, parent_id) from a W3C traceparent header, or None if absent or invalid."""
    if not value:
        return None
    match = _TRACEPARENT_RE.match(value.strip())
    if not match or match.group(1) == "0" * 32 or match.group(2) == "0" * 16:
        return None
    return match.group(1), match.group(2)


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


@contextlib.contextmanager
def request_context(*, request_id: str | None = None, traceparent: str | None = None) -> Iterator[None]:
    rid = request_id_var.set(request_id)
    tp = traceparent_var.set(traceparent)
    try:
        yield
    finally:
        request_id_var.reset(rid)
        traceparent_var.reset(tp)
