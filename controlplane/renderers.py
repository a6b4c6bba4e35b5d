"""The API's JSON renderer: every answer carries the telemetry envelope as `meta` (docs/telemetry.md).

Set as DRF's only renderer, so every endpoint -- including the ones an app adds later -- gets it without
doing anything: bodies, refusals (the exception handler's `{detail, code, request_id}`), pages. A bare
list becomes `{"results": [...], "meta": ...}`. What is served from demo data, a fallback or a simulation
says so: the route's declared fidelity (`controlplane.kernel.telemetry.declare_fidelity`) and what the view
marked (`telemetry_mark`). Answers that do not pass through DRF get the same `meta` from
`controlplane.middleware.TelemetryEnvelopeMiddleware`.
"""

from __future__ import annotations

from typing import Any

from rest_framework.renderers import JSONRenderer

from controlplane.kernel.telemetry import response_meta, with_meta


class EnvelopeJSONRenderer(JSONRenderer):
    """DRF's JSONRenderer, adding `meta` to every answer (the API under /api/, and /readyz)."""

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: dict | None = None
    ) -> bytes:
        context = renderer_context or {}
        request, response = context.get("request"), context.get("response")
        if request is not None and response is not None:
            match = getattr(request, "resolver_match", None)
            data = with_meta(data, response_meta(route=match.view_name if match else None, body=data))
            response._telemetry_meta = True
        return super().render(data, accepted_media_type, renderer_context)
