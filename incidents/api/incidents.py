"""Evidence bundles, and incidents with their transitions and timeline."""

from __future__ import annotations

from typing import Any

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.kernel.errors import ControlPlaneError
from incidents import selectors, services
from incidents.api import MANAGE, READ
from incidents.api.serializers import (
    AssignSerializer,
    EvidenceSerializer,
    IncidentDetailSerializer,
    IncidentSerializer,
    MitigateSerializer,
    NoteInputSerializer,
    NoteSerializer,
    RaiseSeveritySerializer,
    TimelineEntrySerializer,
    TransitionSerializer,
)
from incidents.models import EvidenceBundle, Incident, IncidentStatus, PromotionOutcome, Severity


class EvidenceFilter(django_filters.FilterSet):
    service = django_filters.CharFilter()
    incident = django_filters.CharFilter(field_name="incident_id")
    decision = django_filters.ChoiceFilter(field_name="decision__decision", choices=PromotionOutcome.choices)

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


class IncidentFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=IncidentStatus.choices)
    service = django_filters.CharFilter()
    severity = django_filters.ChoiceFilter(choices=Severity.choices)
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
        "assign": MANAGE,
        "notes": READ,
        "note_add": MANAGE,
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

    @extend_schema(request=AssignSerializer, responses=IncidentSerializer)
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk: str | None = None) -> Response:
        """Give the incident to a person of the tenant who may manage incidents (`assignee`: their name;
        your own for "assign to me"), or to nobody (`null`)."""
        payload = AssignSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        incident = self._incident()
        name = payload.validated_data["assignee"]
        assignee = (
            None if name is None else selectors.incident_assignee_get(tenant=incident.tenant, name=name)
        )
        changed = services.incident_assign(
            incident=incident, actor=request.user, assignee=assignee, reason=payload.validated_data["reason"]
        )
        return self._answer(changed)

    @extend_schema(responses=NoteSerializer(many=True))
    # One incident's notes are one answer, oldest first (like its timeline).
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def notes(self, request: Request, pk: str | None = None) -> Response:
        """The notes people wrote on the incident, oldest first."""
        return Response(NoteSerializer(selectors.incident_notes(incident=self._incident()), many=True).data)

    @extend_schema(request=NoteInputSerializer, responses={201: NoteSerializer})
    @notes.mapping.post
    def note_add(self, request: Request, pk: str | None = None) -> Response:
        """Add a note to the incident's timeline (a person holding `incidents.manage`)."""
        payload = NoteInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        note = services.incident_note_add(
            incident=self._incident(), actor=request.user, text=payload.validated_data["text"]
        )
        return Response(NoteSerializer(note).data, status=201)

    @extend_schema(responses=TimelineEntrySerializer(many=True))
    # One incident's timeline is one answer: neither paginated nor filtered (the schema says so too).
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def timeline(self, request: Request, pk: str | None = None) -> Response:
        """Every ledger event of the incident, its evidence and their signals, in chain order."""
        events = selectors.incident_timeline(incident=self._incident())
        return Response(
            TimelineEntrySerializer([selectors.timeline_entry(e) for e in events], many=True).data
        )
