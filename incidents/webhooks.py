"""Alertmanager's and Grafana's webhooks, as adapters of the channels' one webhook view
(controlplane.kernel.webhooks). Registered from `IncidentsConfig.ready()`; served at
`/api/v1/signals/alertmanager/` and `/api/v1/signals/grafana/` (docs/incidents.md).

Neither provider names its deliveries, so `delivery_id` is None: a redelivered alert maps to the same
signal id (a content hash) and is stored once by `signal_ingest`.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from controlplane.identity.models import Principal
from controlplane.kernel.errors import ControlPlaneError
from controlplane.kernel.webhooks import WebhookAdapter
from incidents import normalise, services
from incidents.api import INGEST
from incidents.api.serializers import INGESTED, REFUSED
from incidents.api.signals import json_body

_GRAFANA_OTHER_DEFAULT = "X-Grafana-Alert-Signature"


def _signals_ingest(principal: Principal, signals: list[normalise.NormalisedSignal]) -> dict[str, Any]:
    result = services.signal_ingest(
        tenant=principal.tenant, signals=signals, actor=principal.ref, causation_id=""
    )
    return result.as_dict()


class AlertmanagerWebhook(WebhookAdapter):
    """Prometheus Alertmanager's webhook (payload version 4). Every alert of the group becomes a signal,
    attributed to a service by the tenant's label mapping (or stored unattributed, SIGNAL_UNATTRIBUTED);
    redeliveries (Alertmanager retries, HA peers) are stored once. Answers 200 so Alertmanager stops."""

    name = "alertmanager"
    path = "signals/alertmanager/"
    url_name = "signals-alertmanager"
    capability = INGEST
    openapi = {"request": OpenApiTypes.OBJECT, "responses": {200: INGESTED, 400: REFUSED, 401: REFUSED}}

    def verify(self, request: HttpRequest) -> None:
        """Alertmanager signs nothing: its bearer token is its authentication."""

    def accept(self, request: HttpRequest, principal: Principal) -> dict[str, Any]:
        mapping = services.label_mapping_current(tenant=principal.tenant_id)
        signals = normalise.from_alertmanager(
            json_body(request), source=f"alertmanager/{principal.name}", mapping=mapping
        )
        return _signals_ingest(principal, signals)


def _grafana_signature_verify(*, secret: str, headers: Any, body: bytes, now: int | None) -> None:
    # Grafana's UI and docs name the default header X-Grafana-Alerting-Signature; some releases' HTTP
    # client defaults to X-Grafana-Alert-Signature. The configured one is read first.
    signature = (
        (
            headers.get(settings.CONTROLPLANE_GRAFANA_SIGNATURE_HEADER)
            or headers.get(_GRAFANA_OTHER_DEFAULT)
            or ""
        )
        .strip()
        .lower()
    )
    if not signature:
        raise ControlPlaneError(
            "SIGNAL_SOURCE_SIGNATURE_MISSING", f"{settings.CONTROLPLANE_GRAFANA_SIGNATURE_HEADER} is required"
        )
    # The timestamp is required (as for signed ingest): without it a captured delivery replays forever.
    timestamp = (headers.get(settings.CONTROLPLANE_GRAFANA_TIMESTAMP_HEADER) or "").strip()
    if not timestamp:
        raise ControlPlaneError(
            "STALE_TIMESTAMP", f"{settings.CONTROLPLANE_GRAFANA_TIMESTAMP_HEADER} is required with the HMAC"
        )
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise ControlPlaneError("STALE_TIMESTAMP", "the signature timestamp is not unix seconds")
    skew = int(timestamp) - (now if now is not None else int(timezone.now().timestamp()))
    tolerance = settings.CONTROLPLANE_EVENT_TOLERANCE_SECONDS
    if abs(skew) > tolerance:
        raise ControlPlaneError(
            "STALE_TIMESTAMP",
            f"the signature timestamp is {abs(skew)}s off; the tolerance is {tolerance}s",
        )
    expected = hmac.new(secret.encode(), timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise ControlPlaneError(
            "SIGNAL_SOURCE_SIGNATURE_INVALID", "the Grafana HMAC signature does not verify"
        )


def grafana_signature_check(*, headers: Any, body: bytes, now: int | None = None) -> None:
    """Grafana's HMAC with the installation-wide secret: hex HMAC-SHA256 of `timestamp:body`, the
    timestamp header required and within CONTROLPLANE_EVENT_TOLERANCE_SECONDS (STALE_TIMESTAMP). Checked
    only when CONTROLPLANE_GRAFANA_HMAC_SECRET is set."""
    secret = settings.CONTROLPLANE_GRAFANA_HMAC_SECRET
    if secret:
        _grafana_signature_verify(secret=secret, headers=headers, body=body, now=now)


def grafana_tenant_sender(
    *, tenant: str, headers: Any, body: bytes, now: int | None = None
) -> Principal | None:
    """The sender named by a tenant-scoped Grafana secret (CONTROLPLANE_GRAFANA_TENANT_SECRETS maps a
    principal `tenant/name` to its secret), once the delivery's HMAC verifies with it; None when the
    tenant has no secret (the bearer token then authenticates). A wrong signature is refused."""
    for ref, secret in settings.CONTROLPLANE_GRAFANA_TENANT_SECRETS.items():
        slug, _, name = ref.partition("/")
        if slug == tenant and name and secret:
            break
    else:
        return None
    _grafana_signature_verify(secret=secret, headers=headers, body=body, now=now)
    principal = (
        Principal.objects.select_related("tenant")
        .filter(tenant__slug=slug, name=name, is_active=True)
        .first()
    )
    if principal is None:
        raise ControlPlaneError("AUTH_INVALID_TOKEN", f"the Grafana secret names no active principal {ref}")
    return principal


class GrafanaWebhook(WebhookAdapter):
    """Grafana Alerting's webhook contact point (payload version 1), with its optional HMAC signature."""

    name = "grafana"
    path = "signals/grafana/"
    url_name = "signals-grafana"
    capability = INGEST
    openapi = {
        "request": OpenApiTypes.OBJECT,
        "parameters": [
            OpenApiParameter(
                "X-Grafana-Alerting-Signature",
                str,
                OpenApiParameter.HEADER,
                description="Hex HMAC-SHA256 (required when CONTROLPLANE_GRAFANA_HMAC_SECRET is set).",
            ),
            OpenApiParameter(
                "X-Grafana-Alerting-Signature-Timestamp",
                str,
                OpenApiParameter.HEADER,
                description="Unix seconds, signed as `timestamp:body` (required with the signature).",
            ),
            OpenApiParameter(
                "tenant",
                str,
                OpenApiParameter.QUERY,
                description="With a tenant-scoped secret (CONTROLPLANE_GRAFANA_TENANT_SECRETS): the tenant "
                "whose secret signs the delivery; no bearer token is needed then.",
            ),
        ],
        "responses": {200: INGESTED, 400: REFUSED, 401: REFUSED},
    }

    def authenticate(self, request: HttpRequest) -> Principal | None:
        tenant = request.GET.get("tenant", "")
        if not tenant or request.headers.get("Authorization"):
            return None
        principal = grafana_tenant_sender(tenant=tenant, headers=request.headers, body=request.body)
        if principal is not None:
            request.grafana_tenant_verified = (
                True  # the tenant's secret verified it: verify() has no more to do
            )
        return principal

    def verify(self, request: HttpRequest) -> None:
        if getattr(request, "grafana_tenant_verified", False):
            return
        grafana_signature_check(headers=request.headers, body=request.body)

    def accept(self, request: HttpRequest, principal: Principal) -> dict[str, Any]:
        mapping = services.label_mapping_current(tenant=principal.tenant_id)
        signals = normalise.from_grafana(
            json_body(request), source=f"grafana/{principal.name}", mapping=mapping
        )
        return _signals_ingest(principal, signals)


ALERTMANAGER = AlertmanagerWebhook()
GRAFANA = GrafanaWebhook()
