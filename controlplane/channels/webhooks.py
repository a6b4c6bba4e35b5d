"""The one view that serves every inbound webhook adapter (controlplane.kernel.webhooks).

Each registered adapter gets a URL at its `path` under /api/v1/ (controlplane/channels/urls.py) and the
same treatment, in this order: the bearer token, the adapter's capability, `verify`, `delivery_id` and
`accept` (controlplane.channels.services.webhook_delivery_accept). Every refusal answers
`{detail, code, request_id}` through the API's exception handler and is counted per (adapter, code).

Signed CloudEvents ingest (`POST /api/v1/events/`) does not come through here: it has its own fast
paths (controlplane.channels.ingest).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.urls import URLPattern, path
from drf_spectacular.utils import extend_schema
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.channels import services
from controlplane.identity.authentication import BearerTokenAuthentication
from controlplane.kernel.webhooks import WebhookAdapter, webhook_adapter, webhook_adapters


class RawJsonParser(BaseParser):
    """Declares application/json for content negotiation and the schema; adapters read the raw bytes
    themselves (signatures are over them)."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> bytes:
        return stream.read()


class RawBodyParser(BaseParser):
    """Channel webhooks come form-encoded (Slack, Twilio) or as JSON: adapters read the raw bytes."""

    media_type = "*/*"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> bytes:
        return stream.read()


class WebhookView(APIView):
    """Serves the adapter named `adapter_name` (one subclass per adapter, made by `webhook_view`)."""

    authentication_classes = [BearerTokenAuthentication]
    parser_classes = [RawJsonParser]
    adapter_name = ""
    required_capability: str | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # The adapter's own proof of its sender (a tenant-scoped secret) comes before the bearer token.
        principal = webhook_adapter(self.adapter_name).authenticate(request._request)
        if principal is not None:
            request.user, request.auth = principal, None
        super().initial(request, *args, **kwargs)

    # No docstring on `post`: the schema describes each endpoint with its adapter's docstring.
    def post(self, request: Request) -> Response:
        adapter = webhook_adapter(self.adapter_name)
        http_request = request._request  # adapters see Django's request: the raw body, the headers
        adapter.verify(http_request)
        body = services.webhook_delivery_accept(
            adapter=adapter,
            request=http_request,
            principal=request.user,
            delivery_id=adapter.delivery_id(http_request),
        )
        return Response(body, status=200)

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        code = response.data.get("code") if isinstance(response.data, dict) else None
        if code:
            services.webhook_rejection_record(adapter=self.adapter_name, code=code)
            # Channel webhooks: also per connection, once the URL named one that exists (never the URL's
            # text as given: anyone may post to any key, and it would be a cache key).
            http_request = getattr(getattr(self, "request", None), "_request", None)
            connection = getattr(http_request, "_channel_connection", None)
            if connection is not None:
                services.webhook_rejection_record(adapter=f"{self.adapter_name}:{connection.key}", code=code)
                self._note_refusal(http_request, connection, code)
        return response

    def _note_refusal(self, http_request: Any, connection: Any, code: str) -> None:
        """A channel's refusal, kept for its admins with the mismatch diagnostics (never answered)."""
        from controlplane.channels.services.refusals import channel_refusal_note
        from controlplane.kernel.errors import ControlPlaneError

        diagnostic = ""
        if code == "CHANNEL_SIGNATURE_INVALID":
            try:
                diagnostic = webhook_adapter(self.adapter_name).diagnose(http_request)
            except ControlPlaneError:
                diagnostic = ""
        channel_refusal_note(
            connection=connection, adapter=self.adapter_name, code=code, diagnostic=diagnostic
        )


class ChannelWebhookView(WebhookView):
    """Serves a channel adapter (controlplane.channels.providers): the provider's signature, checked with
    the connection's secret, is the authentication (no bearer token, no grant: Slack and GitHub send
    none); deliveries are received as the connection's service principal."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    parser_classes = [RawBodyParser]

    def post(self, request: Request, connection: str = "") -> Any:
        adapter = webhook_adapter(self.adapter_name)
        http_request = request._request
        adapter.verify(http_request)
        body = services.webhook_delivery_accept(
            adapter=adapter,
            request=http_request,
            principal=adapter.principal(http_request),
            delivery_id=adapter.delivery_id(http_request),
        )
        return adapter.respond(body) or Response(body, status=200)

    def get(self, request: Request, connection: str = "") -> Any:
        return webhook_adapter(self.adapter_name).handshake(request._request)


def webhook_view(adapter: WebhookAdapter) -> Callable[..., Any]:
    """The view function serving `adapter`: a `WebhookView` named and documented after it."""
    signed = getattr(adapter, "authenticates_by_signature", False)
    attributes: dict[str, Any] = {
        "__doc__": type(adapter).__doc__,
        "__module__": __name__,
        "adapter_name": adapter.name,
        "required_capability": adapter.capability or None,
    }
    if signed:
        # POST only, and GET for a provider with a handshake (Meta): no other method is served, or
        # documented in the schema (a GET elsewhere is METHOD_NOT_ALLOWED, with its code).
        attributes["http_method_names"] = (
            ["get", "post"] if getattr(adapter, "handshakes", False) else ["post"]
        )
    view_class = type(
        f"{type(adapter).__name__}View", (ChannelWebhookView if signed else WebhookView,), attributes
    )
    if adapter.openapi:
        view_class = extend_schema(**adapter.openapi)(view_class)
    return view_class.as_view()


def webhook_urlpatterns() -> list[URLPattern]:
    """One URL per registered adapter, at its path (relative to /api/v1/)."""
    return [path(a.path, webhook_view(a), name=a.route_name()) for a in webhook_adapters()]
