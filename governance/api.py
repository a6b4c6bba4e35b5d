"""Governance endpoints: the overview, the rollback toggle, preflight, and agents' model-call telemetry."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.identity.scope import is_platform_principal
from controlplane.kernel.errors import ControlPlaneError
from controlplane.policy.models import Environment
from governance import selectors, services


def _viewer_tenant(principal: Any) -> str | None:
    """None for a platform principal (sees every tenant), else the principal's own tenant."""
    return None if is_platform_principal(principal) else principal.tenant.slug


def _own_tenant_only(report: dict[str, Any] | None, tenant: str | None) -> dict[str, Any] | None:
    if report is None or tenant is None:
        return report
    return {**report, "by_tenant": {k: v for k, v in report.get("by_tenant", {}).items() if k == tenant}}


class GovernanceView(APIView):
    """The mode matrix, the toggle, the last validation and preflight, enforcement counters, fidelity mix."""

    required_capability = "governance.read"

    @extend_schema(responses=inline_serializer("GovernanceOverview", {"matrix": serializers.DictField()}))
    def get(self, request: Request) -> Response:
        tenant = _viewer_tenant(request.user)
        overview = selectors.governance_overview(tenant=tenant)
        overview["last_preflight"] = _own_tenant_only(overview["last_preflight"], tenant)
        return Response(overview)


class StrictCharField(serializers.CharField):
    """A string, refused (VALIDATION_FAILED) when the JSON value is a number or a boolean: DRF's CharField
    would read `0.2` as "0.2", a schema-violating request the API should not accept."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class EnforcementSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=["warn", "enforce", "clear"])
    reason = StrictCharField()


class EnforcementView(APIView):
    """The rollback toggle: `warn` turns every enforce-mode check to warn in one step (platform act)."""

    required_capability = "governance.read"

    @extend_schema(
        request=EnforcementSerializer,
        responses=inline_serializer("Enforcement", {"mode": serializers.CharField()}),
    )
    def post(self, request: Request) -> Response:
        data = EnforcementSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.enforcement_set(
            mode=data.validated_data["mode"], actor=request.user, reason=data.validated_data["reason"]
        )
        return Response(selectors.enforcement_status())


class PreflightSerializer(serializers.Serializer):
    profile = StrictCharField(max_length=100)
    version = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
    environment = serializers.ChoiceField(choices=Environment.choices, default=Environment.PROD)
    since = serializers.RegexField(r"^[0-9]{1,6}[dhm]$", default="7d")


class PreflightView(APIView):
    """Replay recorded traffic under a candidate profile: rejection ratio by code and tenant, the
    validation result, the rollback toggle; `ready` when all three hold. The result is ledgered."""

    required_capability = "governance.preflight"

    @extend_schema(
        request=PreflightSerializer,
        responses={201: inline_serializer("Preflight", {"ready": serializers.BooleanField()})},
    )
    def post(self, request: Request) -> Response:
        from governance.preflight import preflight_run

        data = PreflightSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        report = preflight_run(
            name=data.validated_data["profile"],
            version=data.validated_data.get("version"),
            environment=data.validated_data["environment"],
            since=data.validated_data["since"],
            actor=request.user,
        )
        return Response(
            _own_tenant_only(report, _viewer_tenant(request.user)), status=status.HTTP_201_CREATED
        )


class ModelCallView(APIView):
    """An agent reports a model call it made for a trace (hashes, model, tokens, cost, latency, tools)."""

    required_capability = "telemetry.report"

    @extend_schema(
        request=inline_serializer(
            "ModelCallRequest",
            {
                "trace_id": serializers.CharField(),
                "intent": serializers.CharField(required=False),
                "genai": serializers.DictField(required=False),
                "prompt_sha256": serializers.CharField(required=False),
                "response_sha256": serializers.CharField(required=False),
                "tool_calls": serializers.ListField(child=serializers.CharField(), required=False),
            },
        ),
        responses={
            201: inline_serializer(
                "ModelCall",
                {"seq": serializers.IntegerField(), "translator": serializers.CharField()},
            )
        },
    )
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise ControlPlaneError("VALIDATION_FAILED", "the body is a JSON object")
        report = services.model_call_report(principal=request.user, payload=request.data)
        return Response(
            {"seq": report.seq, "translator": report.translator, "warnings": list(report.warnings)},
            status=status.HTTP_201_CREATED,
        )
