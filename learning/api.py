"""Learning API: outcomes (with labels posted by people), agents' claims, anti-gaming findings (decided by
people), calibration reports and proposals. Everything is the caller's tenant's; nothing here mutates
authoritative state."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from learning import services
from learning.models import CalibrationReport, Finding, Outcome, Proposal

HEX64 = r"^[0-9a-f]{64}$"


class OutcomeSerializer(serializers.ModelSerializer):
    class Meta:
        model = Outcome
        fields = [
            "id",
            "kind",
            "subject",
            "actor",
            "result",
            "finished_at",
            "facts",
            "quality_bp",
            "provenance_bp",
            "reward_bp",
            "excluded",
            "penalised",
            "reward_model",
            "profile_hash",
            "last_seq",
        ]


class OutcomeLabelSerializer(serializers.Serializer):
    label = serializers.ChoiceField(["success", "partial", "failure", "true_incident", "false_positive"])
    reason = serializers.CharField(max_length=500)


class OutcomeClaimSerializer(serializers.Serializer):
    execution = serializers.RegexField(HEX64, help_text="The execution the agent reports on.")
    result = serializers.ChoiceField(["success", "partial", "failure"])


class FindingSerializer(serializers.ModelSerializer):
    class Meta:
        model = Finding
        fields = [
            "fingerprint",
            "code",
            "severity",
            "status",
            "principal",
            "outcome",
            "evidence",
            "created_at",
            "decided_by",
            "decided_reason",
            "decided_at",
        ]


class FindingDecisionSerializer(serializers.Serializer):
    status = serializers.ChoiceField(["confirmed", "dismissed"])
    reason = serializers.CharField(max_length=500)


class ClaimAnswerSerializer(serializers.Serializer):
    findings = FindingSerializer(
        many=True, help_text="The findings the claim raised (none for an honest one)."
    )


class ReportSerializer(serializers.ModelSerializer):
    class Meta:
        model = CalibrationReport
        fields = ["content_hash", "until_seq", "profile_hash", "content", "created_at", "created_by"]


class ProposalSerializer(serializers.ModelSerializer):
    class Meta:
        model = Proposal
        fields = ["id", "kind", "key", "status", "content", "report_hash", "created_at"]


class _TenantScoped:
    model: type

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):  # the schema generator: no principal, no tenant
            return self.model.objects.none()
        return self.model.objects.filter(tenant=self.request.user.tenant)


class OutcomeViewSet(_TenantScoped, viewsets.ReadOnlyModelViewSet):
    model = Outcome
    serializer_class = OutcomeSerializer
    required_capabilities = {
        "list": "learning.read",
        "retrieve": "learning.read",
        "labels": "learning.review",
    }

    @extend_schema(request=OutcomeLabelSerializer, responses={201: OutcomeSerializer})
    @action(detail=True, methods=["post"])
    def labels(self, request: Request, pk: str | None = None) -> Response:
        """Label the outcome (people only; never an outcome of your own action), with a reason."""
        body = OutcomeLabelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        outcome = self.get_object()
        services.label_record(reviewer=request.user, outcome=outcome.id, **body.validated_data)
        return Response(OutcomeSerializer(outcome).data, status=status.HTTP_201_CREATED)


class ClaimViewSet(mixins.CreateModelMixin, viewsets.GenericViewSet):
    serializer_class = OutcomeClaimSerializer
    required_capabilities = {"create": "learning.claim"}

    @extend_schema(request=OutcomeClaimSerializer, responses={201: ClaimAnswerSerializer})
    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        """An agent reports how one of its executions went; the answer lists the findings it raised."""
        body = OutcomeClaimSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        found = services.claim_record(principal=request.user, **body.validated_data)
        return Response(
            {"findings": FindingSerializer(found, many=True).data}, status=status.HTTP_201_CREATED
        )


class FindingViewSet(_TenantScoped, viewsets.ReadOnlyModelViewSet):
    model = Finding
    serializer_class = FindingSerializer
    lookup_field = "fingerprint"
    filterset_fields = ["status", "severity", "code"]
    required_capabilities = {
        "list": "learning.read",
        "retrieve": "learning.read",
        "decide": "learning.review",
    }

    @extend_schema(request=FindingDecisionSerializer, responses=FindingSerializer)
    @action(detail=True, methods=["post"])
    def decide(self, request: Request, fingerprint: str | None = None) -> Response:
        """Confirm (the outcomes leave the rewards) or dismiss (the penalty lifts) a finding."""
        body = FindingDecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        finding = services.finding_decide(
            actor=request.user, fingerprint=self.get_object().pk, **body.validated_data
        )
        return Response(FindingSerializer(finding).data)


class ReportViewSet(_TenantScoped, viewsets.ReadOnlyModelViewSet):
    model = CalibrationReport
    serializer_class = ReportSerializer
    lookup_field = "content_hash"
    required_capabilities = {"list": "learning.read", "retrieve": "learning.read"}


class ProposalViewSet(_TenantScoped, viewsets.ReadOnlyModelViewSet):
    model = Proposal
    serializer_class = ProposalSerializer
    required_capabilities = {"list": "learning.read", "retrieve": "learning.read"}
