"""Inbound webhook adapters: what a provider's webhook must say for the channels' one webhook view to serve
it, and the registry that holds them. Model-free: the kernel knows no provider and no app.

An app adds a provider with one class and one call from its `AppConfig.ready()`:

    class AlertmanagerWebhook(WebhookAdapter):
        '''Prometheus Alertmanager's webhook ...'''    # the endpoint's description in the OpenAPI schema

        name = "alertmanager"
        path = "signals/alertmanager/"
        capability = "signals.ingest"

        def verify(self, request): ...          # the provider's signature and timestamp, or nothing
        def accept(self, request, principal): ...  # normalise, hand to the domain, return the answer

    register_webhook_adapter(AlertmanagerWebhook())

`controlplane.channels.webhooks` serves every registered adapter at `/api/v1/<path>` and runs, for each
delivery and in this order: the bearer token (AUTH_REQUIRED, AUTH_INVALID_TOKEN, AUTH_THROTTLED), the
adapter's `capability` (CAPABILITY_MISSING), `verify`, `delivery_id` (a delivery id seen before is
refused with DUPLICATE_EVENT and writes nothing), then `accept`. A refusal is `{detail, code,
request_id}` with the catalogue's status and is counted per (adapter, code). docs/incidents.md,
"Adding a webhook provider", says the same at more length. Chat and code-host providers
(`controlplane.channels.providers`) are served by `ChannelWebhookView` instead: they carry no bearer
token, and the provider's signature over the raw body, checked by `verify`, is their authentication.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import HttpRequest


class WebhookAdapter:
    """One provider's inbound webhook. Subclass it, set the four attributes, implement `verify` and
    `accept` (and `delivery_id` when the provider names its deliveries), and register one instance.

    The class docstring is the endpoint's description in the OpenAPI schema.
    """

    name: str = ""  # unique among adapters, e.g. "alertmanager"; labels its refusal counters
    path: str = ""  # the URL under /api/v1/, e.g. "signals/alertmanager/"
    url_name: str = ""  # the URL's name for reverse(); "webhook-<name>" when empty
    capability: str = ""  # the grant the sender's principal needs (deny by default: empty refuses all)
    # drf-spectacular `extend_schema` keyword arguments (request, parameters, responses) documenting the
    # endpoint; opaque here, read by the view.
    openapi: Mapping[str, Any] = {}

    def verify(self, request: HttpRequest) -> None:
        """Check the provider's own proof (a signature, its timestamp) over the raw body; raise
        `ControlPlaneError` with a catalogue code when it fails. An adapter whose provider signs nothing
        says so by returning: the bearer token is then the only authentication."""
        raise NotImplementedError(f"{type(self).__name__} must say how a delivery is verified")

    def authenticate(self, request: HttpRequest) -> Any | None:
        """The sender's principal when the provider's own proof identifies it (a tenant-scoped secret),
        so the delivery needs no bearer token; None leaves authentication to the bearer token. Raise
        `ControlPlaneError` when the proof is present but wrong. The view still checks `capability`."""
        return None

    def delivery_id(self, request: HttpRequest) -> str | None:
        """The provider's id of this delivery, kept across its retries, or None when it has none (then
        repeats are the domain's to recognise, e.g. by content hash)."""
        return None

    def accept(self, request: HttpRequest, principal: Any) -> dict[str, Any]:
        """Normalise the verified delivery, hand it to the domain as `principal` (the sender), and return
        the body of the 200 answer. Raise `ControlPlaneError` to refuse; it runs in one transaction."""
        raise NotImplementedError

    def route_name(self) -> str:
        return self.url_name or f"webhook-{self.name}"


_ADAPTERS: dict[str, WebhookAdapter] = {}


def register_webhook_adapter(adapter: WebhookAdapter) -> None:
    """Add an adapter. A name or path already registered by another adapter is a bug, and raises."""
    if not adapter.name or not adapter.path:
        raise ValueError(f"{type(adapter).__name__} needs a name and a path")
    existing = _ADAPTERS.get(adapter.name)
    if existing is adapter:  # ready() run again registers the same instance: nothing changes
        return
    if existing is not None:
        raise ValueError(
            f"webhook adapter {adapter.name!r} is already registered ({type(existing).__name__})"
        )
    for other in _ADAPTERS.values():
        if other.path == adapter.path:
            raise ValueError(f"webhook path {adapter.path!r} is already served by adapter {other.name!r}")
    _ADAPTERS[adapter.name] = adapter


def unregister_webhook_adapter(name: str) -> None:
    """Remove an adapter (tests register their own and take it away again)."""
    _ADAPTERS.pop(name, None)


def webhook_adapter(name: str) -> WebhookAdapter:
    """The adapter registered as `name`; LookupError when there is none."""
    try:
        return _ADAPTERS[name]
    except KeyError:
        raise LookupError(f"no webhook adapter {name!r} is registered") from None


def webhook_adapters() -> list[WebhookAdapter]:
    """Every registered adapter, by name."""
    return [_ADAPTERS[name] for name in sorted(_ADAPTERS)]
