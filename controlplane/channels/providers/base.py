"""What every channel adapter shares: the connection named in its URL, fail-closed secrets, helpers.

A channel adapter authenticates by the provider's signature, not by a bearer token: the connection's
secret is the credential, and its deliveries are received as the connection's service principal. A
connection that is unknown is CHANNEL_NOT_FOUND; one disconnected, or lacking the secret a check needs,
is CHANNEL_NOT_CONFIGURED: nothing is ever accepted unsigned.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from controlplane.channels.models import ChannelConnection
from controlplane.channels.services.connections import connection_secrets
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.webhooks import WebhookAdapter

_CONNECTION = "_channel_connection"
CONNECTION_KEY_PATTERN = "^ch[0-9a-f]{20}$"  # as channel_connect makes them
_SECRETS = "_channel_secrets"


class ChannelAdapter(WebhookAdapter):
    """A provider's webhook, served per connection at a path with a `<str:connection>` part."""

    provider: str = ""
    duplicate_code = "CHANNEL_DUPLICATE_DELIVERY"
    authenticates_by_signature = True  # the one view skips the bearer token and capability for these
    handshakes = False  # True: GET on the URL is the provider's verification (`handshake`)
    openapi = {
        "request": OpenApiTypes.BINARY,  # the provider's raw bytes: JSON or a form, signed as received
        "parameters": [
            OpenApiParameter(
                "connection",
                {"type": "string", "pattern": CONNECTION_KEY_PATTERN},
                OpenApiParameter.PATH,
                description="The connection's key (`ch` and 20 hex digits); any other is CHANNEL_NOT_FOUND.",
            )
        ],
        "responses": {200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT, 401: OpenApiTypes.OBJECT},
        "auth": [],
    }

    def connection(self, request: HttpRequest) -> ChannelConnection:
        """The connection named in the URL (cached on the request); CHANNEL_NOT_FOUND when unknown."""
        cached = getattr(request, _CONNECTION, None)
        if cached is not None:
            return cached
        key = request.resolver_match.kwargs.get("connection", "") if request.resolver_match else ""
        connection = (
            ChannelConnection.objects.select_related("tenant", "principal")
            .filter(key=key, provider=self.provider)
            .first()
        )
        if connection is None:
            raise ControlPlaneError("CHANNEL_NOT_FOUND", f"no {self.provider} connection {key!r}")
        setattr(request, _CONNECTION, connection)
        return connection

    def secret(self, request: HttpRequest, name: str) -> str:
        """The connection's secret `name`; CHANNEL_NOT_CONFIGURED when disconnected or unset."""
        connection = self.connection(request)
        if connection.disconnected_at is not None:
            raise ControlPlaneError("CHANNEL_NOT_CONFIGURED", f"{connection.ref} is disconnected")
        values = getattr(request, _SECRETS, None)
        if values is None:
            values = connection_secrets(connection=connection)
            setattr(request, _SECRETS, values)
        value = values.get(name, "")
        if not value:
            raise ControlPlaneError("CHANNEL_NOT_CONFIGURED", f"{connection.ref} has no {name}")
        return value

    def principal(self, request: HttpRequest) -> Any:
        return self.connection(request).principal

    def scoped(self, request: HttpRequest, delivery_id: str | None) -> str | None:
        """The delivery id, scoped to the connection (two connections may see the same provider id)."""
        return f"{self.connection(request).key}:{delivery_id}" if delivery_id else None

    def respond(self, body: dict[str, Any]) -> HttpResponse | None:
        """The provider's answer to an accepted delivery; None: the view's JSON."""
        return None

    def handshake(self, request: HttpRequest) -> HttpResponse:
        """A GET on the webhook URL (Meta's verification); refused unless the provider has one."""
        raise ControlPlaneError("METHOD_NOT_ALLOWED", "this webhook accepts POST only")

    def diagnose(self, request: HttpRequest) -> str:
        """After CHANNEL_SIGNATURE_INVALID: which common variant of the request would have verified (for
        the connection's admins only; never in the answer, and the delivery stays refused)."""
        return ""


def body_variants(body: bytes) -> list[tuple[str, bytes]]:
    """What proxies and frameworks commonly do to a body before it reaches us (or before it was signed)."""
    variants = [
        ("the body without its trailing newline", body.rstrip(b"\r\n")),
        ("the body with a trailing newline", body + b"\n"),
    ]
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        value = None
    if value is not None:
        variants += [
            (
                "the JSON re-serialised with Unicode unescaped",
                json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(),
            ),
            ("the JSON re-serialised compactly", json.dumps(value, separators=(",", ":")).encode()),
            ("the JSON re-serialised with spaces", json.dumps(value).encode()),
        ]
    return [(label, variant) for label, variant in variants if variant != body]


def mismatch(label: str) -> str:
    return f"would verify over {label}: something between the provider and us re-encoded the request"


def hub_diagnose(*, header: str | None, secret: str, body: bytes) -> str:
    """Which body variant the X-Hub-Signature-256 would verify over, if any."""
    given = (header or "").strip().partition("=")[2].lower()
    for label, variant in body_variants(body):
        if hmac.compare_digest(hmac.new(secret.encode(), variant, hashlib.sha256).hexdigest(), given):
            return mismatch(label)
    return "no common variant verifies: most likely the secret differs from the provider's"


def hub_signature_check(*, header: str | None, secret: str, body: bytes) -> None:
    """`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>` (GitHub's and Meta's scheme),
    compared in constant time over the bytes as received."""
    if not header:
        raise ControlPlaneError("CHANNEL_SIGNATURE_MISSING", "X-Hub-Signature-256 is required")
    scheme, _, given = header.strip().partition("=")
    if scheme != "sha256" or not given:
        raise ControlPlaneError("CHANNEL_SIGNATURE_INVALID", "X-Hub-Signature-256 is not sha256=<hex>")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given.lower()):
        raise ControlPlaneError("CHANNEL_SIGNATURE_INVALID", "X-Hub-Signature-256 does not verify")


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; CHANNEL_MALFORMED otherwise."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ControlPlaneError("CHANNEL_MALFORMED", "the body is not JSON") from exc
    if not isinstance(value, dict):
        raise ControlPlaneError("CHANNEL_MALFORMED", "the body is not a JSON object")
    return value


def text_of(value: Any) -> str:
    return value if isinstance(value, str) else ""
