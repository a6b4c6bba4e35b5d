"""Incidents API under /api/v1/: signal ingest (generic, Alertmanager, Grafana), detection rules,
evidence, incidents with their transitions and timeline, and silences. Tenant-scoped, capability-guarded.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import django_filters
import orjson
from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.identity.authentication import BearerTokenAuthentication
from controlplane.kernel.errors import ControlPlaneError
from incidents import normalise, selectors, services
from incidents.models import (
    ConfidenceAssessment,
    DetectionRule,
    DetectionRuleVersion,
    EvidenceBundle,
    Incident,
    PromotionDecision,
    Severity,
    Signal,
    Silence,
)

INGEST = "signals.ingest"
READ = "incidents.read"
MANAGE = "incidents.manage"
MAX_BODY = 5 * 1024 * 1024

# --- ingest ---------------------------------------------------------------------------------------------


class RawJsonParser(BaseParser):
    """Declares application/json; the ingest views read the raw bytes themselves (signatures need them)."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> bytes:
        return stream.read()


def _json_body(request: Request) -> Any:
    body = request.body
    if len(body) > MAX_BODY:
        raise ControlPlaneError("SIGNAL_INVALID", "(body): larger than 5 MiB", extra={"field": "(body)"})
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ControlPlaneError(
            "SIGNAL_INVALID", f"(body): not JSON ({exc})", extra={"field": "(body)"}
        ) from None


_INGESTED = inline_serializer(
    "SignalsIngested",
    {
        "accepted": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "signals": serializers.ListField(child=serializers.DictField()),
        "evidence": serializers.ListField(child=serializers.CharField()),
        "decisions": serializers.ListField(child=serializers.DictField()),
        "incidents": serializers.ListField(child=serializers.CharField()),
    },
)
_REFUSED = inline_serializer(
    "SignalRefused",
    {
        "detail": serializers.CharField(),
        "code": serializers.CharField(),
        "field": serializers.CharField(required=False),
        "request_id": serializers.CharField(),
    },
)


class _IngestView(APIView):
    authentication_classes = [BearerTokenAuthentication]
    parser_classes = [RawJsonParser]
    required_capability = INGEST
    source_kind = ""

    def signals(self, request: Request, payload: Any) -> list[normalise.NormalisedSignal]:
        raise NotImplementedError

    def post(self, request: Request) -> Response:
        payload = _json_body(request)
        signals = self.signals(request, payload)
        result = services.signal_ingest(
            tenant=request.user.tenant, signals=signals, actor=request.user.ref, causation_id=""
        )
        return Response(result.as_dict(), status=status.HTTP_200_OK)


class AlertmanagerIngestView(_IngestView):
    """Prometheus Alertmanager's webhook (payload version 4). Every alert of the group becomes a signal;
    redeliveries (Alertmanager retries, HA peers) are stored once. Answers 200 so Alertmanager stops."""

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: _INGESTED, 400: _REFUSED, 401: _REFUSED})
    def post(self, request: Request) -> Response:
        return super().post(request)

    def signals(self, request: Request, payload: Any) -> list[normalise.NormalisedSignal]:
        return normalise.from_alertmanager(payload, source=f"alertmanager/{request.user.name}")


_GRAFANA_OTHER_DEFAULT = "X-Grafana-Alert-Signature"


def grafana_signature_check(*, headers: Any, body: bytes, now: int | None = None) -> None:
    """Grafana's optional HMAC: hex HMAC-SHA256 of the body, or of `timestamp:body` when Grafana is
    configured with a timestamp header. Checked only when CONTROLPLANE_GRAFANA_HMAC_SECRET is set."""
    secret = settings.CONTROLPLANE_GRAFANA_HMAC_SECRET
    if not secret:
        return
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
    timestamp = (headers.get(settings.CONTROLPLANE_GRAFANA_TIMESTAMP_HEADER) or "").strip()
    signed = body
    if timestamp:
        if not timestamp.isdigit() or len(timestamp) > 12:
            raise ControlPlaneError("STALE_TIMESTAMP", "the signature timestamp is not unix seconds")
        skew = int(timestamp) - (now if now is not None else int(timezone.now().timestamp()))
        tolerance = settings.CONTROLPLANE_EVENT_TOLERANCE_SECONDS
        if abs(skew) > tolerance:
            raise ControlPlaneError(
                "STALE_TIMESTAMP",
                f"the signature timestamp is {abs(skew)}s off; the tolerance is {tolerance}s",
            )
        signed = timestamp.encode() + b":" + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise ControlPlaneError(
            "SIGNAL_SOURCE_SIGNATURE_INVALID", "the Grafana HMAC signature does not verify"
        )


class GrafanaIngestView(_IngestView):
    """Grafana Alerting's webhook contact point (payload version 1), with its optional HMAC signature."""

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        parameters=[
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
                description="Unix seconds, signed as `timestamp:body` (optional).",
            ),
        ],
        responses={200: _INGESTED, 400: _REFUSED, 401: _REFUSED},
    )
    def post(self, request: Request) -> Response:
        grafana_signature_check(headers=request.headers, body=request.body)
        return super().post(request)

    def signals(self, request: Request, payload: Any) -> list[normalise.NormalisedSignal]:
        return normalise.from_grafana(payload, source=f"grafana/{request.user.name}")


# --- signals --------------------------------------------------------------------------------------------


class SignalSerializer(serializers.ModelSerializer):
    suppressed_by = serializers.CharField(source="suppressed_by_id", allow_null=True)

    class Meta:
        model = Signal
        fields = [
            "id",
            "seq",
            "source",
            "source_kind",
            "service",
            "name",
            "severity",
            "severity_raw",
            "fingerprint",
            "labels",
            "annotations",
            "status",
            "observed_at",
            "starts_at",
            "ends_at",
            "generator_url",
            "received_at",
            "suppressed_by",
        ]


class SignalFilter(django_filters.FilterSet):
    service = django_filters.CharFilter()
    name = django_filters.CharFilter()
    status = django_filters.CharFilter()
    severity = django_filters.CharFilter()
    source = django_filters.CharFilter()
    suppressed = django_filters.BooleanFilter(field_name="suppressed_by", lookup_expr="isnull", exclude=True)

    class Meta:
        model = Signal
        fields = ["service", "name", "status", "severity", "source", "suppressed"]


class SignalViewSet(viewsets.ReadOnlyModelViewSet):
    """Signals, newest first (`?suppressed=true` shows what silences hid), and the generic ingest."""

    parser_classes = [RawJsonParser]
    serializer_class = SignalSerializer
    filterset_class = SignalFilter
    required_capabilities = {"list": READ, "retrieve": READ, "create": INGEST}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Signal.objects.none()
        return selectors.signal_list(tenant=self.request.user.tenant)

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={200: _INGESTED, 201: _INGESTED, 400: _REFUSED},
        description="One signal object, or a list of them (at most 1000), in the generic shape.",
    )
    def create(self, request: Request) -> Response:
        payload = _json_body(request)  # not DRF's parser: a body that is not JSON is SIGNAL_INVALID too
        items = payload if isinstance(payload, list) else [payload]
        if not items or len(items) > normalise.MAX_ALERTS:
            raise ControlPlaneError(
                "SIGNAL_INVALID", f"(body): 1 to {normalise.MAX_ALERTS} signals", extra={"field": "(body)"}
            )
        signals = [
            normalise.from_generic(item, at=f"[{index}]" if isinstance(payload, list) else "")
            for index, item in enumerate(items)
        ]
        result = services.signal_ingest(tenant=request.user.tenant, signals=signals, actor=request.user.ref)
        body = result.as_dict()
        return Response(body, status=status.HTTP_201_CREATED if body["accepted"] else status.HTTP_200_OK)


# --- detection rules ------------------------------------------------------------------------------------


class RuleVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = DetectionRuleVersion
        fields = [
            "id",
            "version",
            "enabled",
            "match_service",
            "match_name",
            "match_labels",
            "min_severity",
            "threshold",
            "window_seconds",
            "severity",
            "precision_bp",
            "content_hash",
            "created_by",
            "created_at",
            "reason",
        ]


class RuleSerializer(serializers.ModelSerializer):
    versions = RuleVersionSerializer(many=True, read_only=True)

    class Meta:
        model = DetectionRule
        fields = ["id", "name", "current_version", "created_at", "versions"]


class RuleWriteSerializer(serializers.Serializer):
    """A new version of rule `name` (the rule is created at version 1)."""

    name = serializers.CharField(max_length=100)
    enabled = serializers.BooleanField(default=True)
    match_service = serializers.CharField(required=False, allow_blank=True, default="")
    match_name = serializers.CharField(required=False, allow_blank=True, default="")
    match_labels = serializers.DictField(child=serializers.CharField(), required=False, default=dict)
    min_severity = serializers.ChoiceField(choices=Severity.choices, default="info")
    threshold = serializers.IntegerField()
    window_seconds = serializers.IntegerField()
    severity = serializers.ChoiceField(choices=Severity.choices)
    precision_bp = serializers.IntegerField(default=8000)
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class DetectionRuleViewSet(viewsets.ReadOnlyModelViewSet):
    """Detection rules with every version. POST makes a new version (or the rule, at version 1)."""

    serializer_class = RuleSerializer
    required_capabilities = {"list": READ, "retrieve": READ, "create": "detection.manage"}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return DetectionRule.objects.none()
        return selectors.rule_list(tenant=self.request.user.tenant)

    @extend_schema(request=RuleWriteSerializer, responses={201: RuleSerializer, 200: RuleSerializer})
    def create(self, request: Request) -> Response:
        payload = RuleWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        name, reason = data.pop("name"), data.pop("reason")
        before = DetectionRule.objects.filter(tenant=request.user.tenant, name=name).first()
        rv = services.rule_version_create(
            tenant=request.user.tenant,
            name=name,
            content=services.RuleContent(**data),
            actor=request.user,
            reason=reason,
        )
        created = before is None or before.current_version != rv.version
        rule = self.get_queryset().get(pk=rv.rule_id)
        return Response(RuleSerializer(rule).data, status=201 if created else 200)


# --- evidence -------------------------------------------------------------------------------------------


class ConfidenceAssessmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConfidenceAssessment
        fields = ["model_version", "factors", "score_bp"]


class PromotionDecisionSerializer(serializers.ModelSerializer):
    class Meta:
        model = PromotionDecision
        fields = ["decision", "score_bp", "threshold_bp", "reason_codes", "decided_at"]


class EvidenceSerializer(serializers.ModelSerializer):
    rule = serializers.CharField(source="rule_version.rule.name")
    rule_version_number = serializers.IntegerField(source="rule_version.version")
    assessment = ConfidenceAssessmentSerializer(read_only=True)
    decision = PromotionDecisionSerializer(read_only=True)
    incident = serializers.CharField(source="incident_id", allow_null=True)
    trigger_signal = serializers.CharField(source="trigger_signal_id")

    class Meta:
        model = EvidenceBundle
        fields = [
            "id",
            "rule",
            "rule_version",
            "rule_version_number",
            "service",
            "window_start",
            "window_end",
            "signal_ids",
            "trigger_signal",
            "severity",
            "incident",
            "seq",
            "assessment",
            "decision",
        ]


class EvidenceFilter(django_filters.FilterSet):
    service = django_filters.CharFilter()
    incident = django_filters.CharFilter(field_name="incident_id")
    decision = django_filters.CharFilter(field_name="decision__decision")

    class Meta:
        model = EvidenceBundle
        fields = ["service", "incident", "decision"]


class EvidenceViewSet(viewsets.ReadOnlyModelViewSet):
    """Evidence bundles with their confidence (factors and weights) and promotion decision."""

    serializer_class = EvidenceSerializer
    filterset_class = EvidenceFilter
    required_capability = READ

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return EvidenceBundle.objects.none()
        return (
            EvidenceBundle.objects.filter(tenant=self.request.user.tenant)
            .select_related("assessment", "decision", "rule_version__rule")
            .order_by("-seq")
        )


# --- incidents ------------------------------------------------------------------------------------------


class IncidentSerializer(serializers.ModelSerializer):
    rule = serializers.CharField(source="rule.name")
    remediation_intent = serializers.CharField(source="remediation_intent_id", allow_null=True)
    evidence_count = serializers.IntegerField(read_only=True)
    allowed_transitions = serializers.SerializerMethodField()

    class Meta:
        model = Incident
        fields = [
            "id",
            "title",
            "service",
            "rule",
            "status",
            "severity",
            "severity_raised_to",
            "opened_at",
            "acknowledged_at",
            "mitigating_at",
            "resolved_at",
            "closed_at",
            "remediation_intent",
            "evidence_count",
            "allowed_transitions",
        ]

    def get_allowed_transitions(self, incident: Incident) -> list[str]:
        return services.allowed_transitions(incident)


class IncidentDetailSerializer(IncidentSerializer):
    evidence = EvidenceSerializer(many=True, read_only=True)

    class Meta(IncidentSerializer.Meta):
        fields = [*IncidentSerializer.Meta.fields, "evidence"]


class TransitionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class MitigateSerializer(TransitionSerializer):
    remediation = serializers.DictField(required=False, help_text="A plan draft, submitted as an intent.")
    intent = serializers.CharField(required=False, help_text="Or the id of an intent submitted before.")


class RaiseSeveritySerializer(serializers.Serializer):
    severity = serializers.ChoiceField(choices=Severity.choices)
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class TimelineEntrySerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    id = serializers.CharField()
    type = serializers.CharField()
    subject = serializers.CharField()
    time = serializers.DateTimeField()
    actor = serializers.CharField()
    reason_codes = serializers.ListField(child=serializers.CharField())
    data = serializers.DictField()


class IncidentFilter(django_filters.FilterSet):
    status = django_filters.CharFilter()
    service = django_filters.CharFilter()
    severity = django_filters.CharFilter()
    rule = django_filters.CharFilter(field_name="rule__name")

    class Meta:
        model = Incident
        fields = ["status", "service", "severity", "rule"]


class IncidentViewSet(viewsets.ReadOnlyModelViewSet):
    """Incidents (filters status, service, severity, rule), their transitions and their timeline."""

    filterset_class = IncidentFilter
    required_capabilities = {
        "list": READ,
        "retrieve": READ,
        "timeline": READ,
        "acknowledge": MANAGE,
        "mitigate": MANAGE,
        "resolve": MANAGE,
        "close": MANAGE,
        "reopen": MANAGE,
        "raise_severity": MANAGE,
    }

    def get_serializer_class(self):
        return IncidentDetailSerializer if self.action == "retrieve" else IncidentSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Incident.objects.none()
        incidents = selectors.incident_queryset(tenant=self.request.user.tenant)
        if self.action == "retrieve":
            incidents = incidents.prefetch_related(
                "evidence__assessment", "evidence__decision", "evidence__rule_version__rule"
            )
        return incidents

    def _incident(self) -> Incident:
        incident = (
            selectors.incident_queryset(tenant=self.request.user.tenant).filter(pk=self.kwargs["pk"]).first()
        )
        if incident is None:
            raise ControlPlaneError("INCIDENT_NOT_FOUND", f"no incident {self.kwargs['pk']!r}")
        return incident

    def _answer(self, incident: Incident) -> Response:
        return Response(
            IncidentSerializer(selectors.incident_queryset(tenant=incident.tenant).get(pk=incident.pk)).data
        )

    def _simple(self, request: Request, service: Any) -> Response:
        payload = TransitionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        incident = service(
            incident=self._incident(), actor=request.user, reason=payload.validated_data["reason"]
        )
        return self._answer(incident)

    @extend_schema(request=TransitionSerializer, responses=IncidentSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str | None = None) -> Response:
        return self._simple(request, services.incident_acknowledge)

    @extend_schema(request=MitigateSerializer, responses=IncidentSerializer)
    @action(detail=True, methods=["post"])
    def mitigate(self, request: Request, pk: str | None = None) -> Response:
        payload = MitigateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        incident = services.incident_mitigate(
            incident=self._incident(),
            actor=request.user,
            reason=data["reason"],
            remediation=data.get("remediation"),
            intent_id=data.get("intent"),
        )
        return self._answer(incident)

    @extend_schema(request=TransitionSerializer, responses=IncidentSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str | None = None) -> Response:
        return self._simple(request, services.incident_resolve)

    @extend_schema(request=TransitionSerializer, responses=IncidentSerializer)
    @action(detail=True, methods=["post"])
    def close(self, request: Request, pk: str | None = None) -> Response:
        return self._simple(request, services.incident_close)

    @extend_schema(request=TransitionSerializer, responses=IncidentSerializer)
    @action(detail=True, methods=["post"])
    def reopen(self, request: Request, pk: str | None = None) -> Response:
        return self._simple(request, services.incident_reopen)

    @extend_schema(request=RaiseSeveritySerializer, responses=IncidentSerializer)
    @action(detail=True, methods=["post"], url_path="raise-severity")
    def raise_severity(self, request: Request, pk: str | None = None) -> Response:
        payload = RaiseSeveritySerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        incident = services.incident_raise_severity(
            incident=self._incident(), actor=request.user, **payload.validated_data
        )
        return self._answer(incident)

    @extend_schema(responses=TimelineEntrySerializer(many=True))
    @action(detail=True, methods=["get"])
    def timeline(self, request: Request, pk: str | None = None) -> Response:
        """Every ledger event of the incident, its evidence and their signals, in chain order."""
        events = selectors.incident_timeline(incident=self._incident())
        return Response(
            TimelineEntrySerializer([selectors.timeline_entry(e) for e in events], many=True).data
        )


# --- silences -------------------------------------------------------------------------------------------


class SilenceSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.ref", read_only=True)
    approval = serializers.CharField(source="approval_id", allow_null=True, read_only=True)
    state = serializers.SerializerMethodField()
    suppressed_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Silence
        fields = [
            "id",
            "match_service",
            "match_name",
            "match_labels",
            "starts_at",
            "ends_at",
            "reason",
            "created_by",
            "created_at",
            "status",
            "state",
            "criticality",
            "approval",
            "content_hash",
            "suppressed_count",
        ]

    def get_state(self, silence: Silence) -> str:
        return services.silence_state(silence)


class SilenceWriteSerializer(serializers.Serializer):
    match_service = serializers.CharField(required=False, allow_blank=True, default="")
    match_name = serializers.CharField(required=False, allow_blank=True, default="")
    match_labels = serializers.DictField(child=serializers.CharField(), required=False, default=dict)
    starts_at = serializers.DateTimeField(required=False)
    ends_at = serializers.DateTimeField()
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class ExpireSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class SilenceFilter(django_filters.FilterSet):
    status = django_filters.CharFilter()

    class Meta:
        model = Silence
        fields = ["status"]


class SilenceViewSet(viewsets.ReadOnlyModelViewSet):
    """Silences. POST creates one (201 active, or 202 pending approval when it could hide high or
    critical signals); POST /{id}/expire/ ends it now."""

    serializer_class = SilenceSerializer
    filterset_class = SilenceFilter
    required_capabilities = {
        "list": READ,
        "retrieve": READ,
        "create": "silences.manage",
        "expire": "silences.manage",
    }

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Silence.objects.none()
        return selectors.silence_list(tenant=self.request.user.tenant)

    @extend_schema(request=SilenceWriteSerializer, responses={201: SilenceSerializer, 202: SilenceSerializer})
    def create(self, request: Request) -> Response:
        payload = SilenceWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        silence = services.silence_create(actor=request.user, **payload.validated_data)
        code = 202 if silence.status == "pending_approval" else 201
        return Response(SilenceSerializer(self.get_queryset().get(pk=silence.pk)).data, status=code)

    @extend_schema(request=ExpireSerializer, responses=SilenceSerializer)
    @action(detail=True, methods=["post"])
    def expire(self, request: Request, pk: str | None = None) -> Response:
        payload = ExpireSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        silence = services.silence_expire(
            silence=self.get_object(), actor=request.user, reason=payload.validated_data["reason"]
        )
        return Response(SilenceSerializer(self.get_queryset().get(pk=silence.pk)).data)
