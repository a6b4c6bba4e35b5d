"""What every serving path of `POST /api/v1/events/` runs first: authentication with a short-lived
cache, the checks of `services.event_check`, and the answers' bytes.

- **Short-lived per-process caches** of what authentication reads: the token with its principal,
  tenant and capabilities, and the producer with its keys (`CONTROLPLANE_INGEST_AUTH_CACHE_SECONDS`,
  default 1 s). Only successful lookups are cached. The auth-failure throttle is consulted only when a
  token does not authenticate (a valid token passes a throttled source; controlplane.identity.throttle).
  Time-based validity (token expiry, key windows) is evaluated on every request. A delivery whose
  signature does not verify with the cached keys is checked once more against fresh keys, so a new key
  works at once. Revocations — of a token, a grant, a key, a principal — reach this process at once
  when made in it (a model signal clears the cache) and within the cache's lifetime otherwise: **a
  revocation takes effect on ingest within `CONTROLPLANE_INGEST_AUTH_CACHE_SECONDS`**.
- `ingest_check(..., offline=True)` never reads the database or the cache server: the event loop's path
  (controlplane.channels.ingest.event_loop) runs it on the loop and again on a thread only when it raises
  `NeedsDatabase`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest, HttpResponse

from controlplane.channels import selectors, services
from controlplane.channels.models import Producer, ProducerKey
from controlplane.identity import services as identity
from controlplane.identity.authentication import token_failure_record
from controlplane.identity.models import ApiToken, Grant, Principal, Tenant, hash_token
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.outages import RETRY_AFTER_SECONDS
from controlplane.kernel.telemetry import response_meta, with_meta

_WWW_AUTHENTICATE = 'Bearer realm="api"'


# --- responses ------------------------------------------------------------------------------------------


def json_response(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> HttpResponse:
    """An ingest answer, carrying the telemetry envelope as `meta` as every API answer does."""
    content = orjson.dumps(with_meta(body, response_meta(route=None, body=body)))
    response = HttpResponse(content, status=status, content_type="application/json", headers=headers)
    response._telemetry_meta = True  # type: ignore[attr-defined]
    return response


def refusal(error: ControlPlaneError, request_id: str | None) -> HttpResponse:
    """The API's error body `{detail, code, request_id, ...}` with the catalogue's status."""
    headers = {"WWW-Authenticate": _WWW_AUTHENTICATE} if error.status == 401 else {}
    if error.code == "INGEST_OVERLOADED":
        headers["Retry-After"] = "1"
    elif error.code in RETRY_AFTER_SECONDS:  # a database or broker that is down or full
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS[error.code])
    return json_response({**error.as_dict(), "request_id": request_id}, error.status, headers)


# --- authentication with a short-lived cache -------------------------------------------------------------


@dataclass
class _Identity:
    token: ApiToken
    producer: Producer | None
    keys: list[ProducerKey]
    fetched_at: float


class _AuthCache:
    """token hash -> token, principal (with capabilities), producer and keys. Successes only."""

    MAX_ENTRIES = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Identity] = OrderedDict()

    @staticmethod
    def ttl() -> float:
        return float(settings.CONTROLPLANE_INGEST_AUTH_CACHE_SECONDS)

    def get(self, token_hash: str) -> _Identity | None:
        found = self._entries.get(token_hash)
        if found is None or time.monotonic() - found.fetched_at >= self.ttl():
            return None
        return found

    def put(self, token_hash: str, entry: _Identity) -> None:
        if self.ttl() <= 0:
            return
        with self._lock:
            self._entries[token_hash] = entry
            self._entries.move_to_end(token_hash)
            while len(self._entries) > self.MAX_ENTRIES:
                self._entries.popitem(last=False)

    def clear(self, **_: Any) -> None:
        with self._lock:
            self._entries.clear()


auth_cache = _AuthCache()

# Any change to what the cache holds, made in this process, empties it (other processes: within its TTL).
for _model in (ApiToken, Principal, Producer, ProducerKey, Grant, Tenant):
    uid = f"ingest-auth-cache-{_model.__name__}"
    post_save.connect(auth_cache.clear, sender=_model, dispatch_uid=uid)
    post_delete.connect(auth_cache.clear, sender=_model, dispatch_uid=uid)


class NeedsDatabase(Exception):
    """`ingest_check(..., offline=True)` would have to read the database or the cache server (a cache miss,
    or a signature that only fresh keys might verify): run it again with `offline=False`, on a thread."""


def _authenticate(meta: dict[str, Any], *, offline: bool = False) -> _Identity:
    """Who is delivering: bearer token -> principal holding `events.ingest` -> registered producer.

    Same refusals as the API's authentication and permission classes: AUTH_REQUIRED, AUTH_THROTTLED,
    AUTH_INVALID_TOKEN, CAPABILITY_MISSING; PRODUCER_UNKNOWN.
    """
    scheme, _, secret = meta.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme != "Bearer":
        raise ControlPlaneError("AUTH_REQUIRED", "Authentication credentials were not provided.")
    secret = secret.strip()
    token_hash = hash_token(secret) if secret else ""
    cached = auth_cache.get(token_hash) if secret else None
    if cached is not None and cached.token.is_usable():
        found = cached
    elif offline:
        raise NeedsDatabase
    else:
        token = identity.token_authenticate(secret=secret) if secret else None
        if token is None:  # the throttle is consulted only now: a valid token passes a throttled source
            token_failure_record(source=identity.client_source(meta))
        found = _Identity(token, None, [], time.monotonic())
    principal = found.token.principal
    if not principal.has_capability(services.INGEST_CAPABILITY):
        raise ControlPlaneError("CAPABILITY_MISSING", f"{principal.ref} lacks {services.INGEST_CAPABILITY!r}")
    if found.producer is None:
        found.producer, found.keys = selectors.producer_for_principal(principal=principal)
        auth_cache.put(token_hash, found)
    return found


def _fresh_keys(found: _Identity) -> list[ProducerKey]:
    _, keys = selectors.producer_for_principal(principal=found.token.principal)
    found.keys = keys
    return keys


@dataclass
class Attempt:
    """What a check learnt before it ended: the producer, once known (a refusal is counted against it)."""

    producer: Producer | None = None


def ingest_batch_check(
    request: HttpRequest, attempt: Attempt
) -> list[services.CheckedDelivery | ControlPlaneError]:
    """Authenticate and check a batched delivery (`application/cloudevents-batch+json`): the batch's
    refusal is raised; otherwise each event's checked delivery or its own refusal. Writes nothing."""
    found = _authenticate(request.META)
    attempt.producer = found.producer
    try:
        body = request.body
    except RequestDataTooBig as exc:
        raise ControlPlaneError("MALFORMED_EVENT", "the body is larger than the upload limit") from exc
    meta = request.META
    arguments = {
        "producer": found.producer,
        "body": body,
        "webhook_id": meta.get("HTTP_WEBHOOK_ID"),
        "webhook_timestamp": meta.get("HTTP_WEBHOOK_TIMESTAMP"),
        "webhook_signature": meta.get("HTTP_WEBHOOK_SIGNATURE"),
    }
    try:
        return services.events_batch_check(keys=found.keys, **arguments)
    except ControlPlaneError as exc:
        if exc.code not in ("SIGNATURE_INVALID", "KEY_UNKNOWN"):
            raise
        return services.events_batch_check(keys=_fresh_keys(found), **arguments)


def ingest_check(
    request: HttpRequest, attempt: Attempt, *, offline: bool = False
) -> services.CheckedDelivery:
    """Authenticate and check one delivery, in the documented order; raise its refusal. Writes nothing.

    Reads the database only on a cache miss and when a signature does not verify with the cached keys
    (a key added just now?); with `offline`, raises NeedsDatabase there instead (the event loop's path).
    """
    found = _authenticate(request.META, offline=offline)
    attempt.producer = found.producer
    try:
        body = request.body
    except RequestDataTooBig as exc:
        raise ControlPlaneError("MALFORMED_EVENT", "the body is larger than the upload limit") from exc
    meta = request.META
    arguments = {
        "producer": found.producer,
        "body": body,
        "content_type": meta.get("CONTENT_TYPE", "").partition(";")[0].strip().lower(),
        "webhook_id": meta.get("HTTP_WEBHOOK_ID"),
        "webhook_timestamp": meta.get("HTTP_WEBHOOK_TIMESTAMP"),
        "webhook_signature": meta.get("HTTP_WEBHOOK_SIGNATURE"),
    }
    try:
        return services.event_check(keys=found.keys, **arguments)
    except ControlPlaneError as exc:
        if exc.code not in ("SIGNATURE_INVALID", "KEY_UNKNOWN"):
            raise
        if offline:
            raise NeedsDatabase from exc
        return services.event_check(keys=_fresh_keys(found), **arguments)
