"""Policy API: profiles (list, read, create a version, activate) and explain.

Reads need `policy.read`; writes need `platform.policy.manage`: profiles are installation-wide (not per
tenant), so tenant principals get read-only views (the service checks the scope too).
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.identity.models import PrincipalKind
from controlplane.policy import selectors, services
from controlplane.policy.evaluation import Context, StepFacts
from controlplane.policy.models import Environment, PolicyProfile, PolicyVerdict, RiskTier
from controlplane.policy.services import PLATFORM_POLICY


class PolicyProfileSerializer(serializers.ModelSerializer):
    class Meta:
        model = PolicyProfile
        fields = [
            "id",
            "name",
            "version",
            "environment",
            "status",
            "content",
            "content_hash",
            "created_by",
            "created_at",
            "activated_at",
            "retired_at",
        ]
        read_only_fields = fields


class ProfileCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    environment = serializers.ChoiceField(Environment.choices)
    content = serializers.DictField(help_text="The profile content, an object (see docs/policy.md).")
    reason = serializers.CharField(
        max_length=500, required=False, help_text="Why this version is made; recorded on the ledger."
    )


class ProfileActivateSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)
    expected_hash = serializers.CharField(
        max_length=64, required=False, help_text="Refuse unless the profile's content hash is this one."
    )


class TrailEntrySerializer(serializers.Serializer):
    rule = serializers.CharField()
    kind = serializers.ChoiceField(["profile", "raise", "deny", "tier", "environment"])
    matched = serializers.BooleanField()
    effect = serializers.CharField()


class EscalationSerializer(serializers.Serializer):
    after_seconds = serializers.IntegerField()
    level = serializers.IntegerField()


class ProfileRefSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()
    environment = serializers.ChoiceField(Environment.choices)
    content_hash = serializers.CharField()


class DecisionSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(PolicyVerdict.choices)
    enforced = serializers.BooleanField()
    effective_verdict = serializers.ChoiceField(PolicyVerdict.choices)
    base_tier = serializers.CharField()
    tier = serializers.CharField()
    quorum = serializers.IntegerField()
    approval_timeout_seconds = serializers.IntegerField()
    escalation = EscalationSerializer(many=True)
    reason_codes = serializers.ListField(child=serializers.CharField())
    trail = TrailEntrySerializer(many=True)
    profile = ProfileRefSerializer(allow_null=True)
    decision_hash = serializers.CharField()


class ExplainRequestSerializer(serializers.Serializer):
    action = serializers.CharField(max_length=200)
    action_version = serializers.CharField(max_length=32, required=False, default="")
    tier = serializers.ChoiceField(RiskTier.choices)
    inputs = serializers.DictField(required=False, default=dict)
    principal_kind = serializers.ChoiceField(
        PrincipalKind.choices, required=False, help_text="Default: the caller's kind."
    )
    environment = serializers.ChoiceField(
        Environment.choices, required=False, help_text="Default: the environment this control plane runs in."
    )
    labels = serializers.DictField(child=serializers.CharField(), required=False, default=dict)
    profile = serializers.PrimaryKeyRelatedField(
        queryset=PolicyProfile.objects.all(),
        required=False,
        help_text="Explain under this profile (e.g. a draft) instead of the environment's active one.",
    )


class PolicyProfileFilter(django_filters.FilterSet):
    class Meta:
        model = PolicyProfile
        fields = ["name", "environment", "status"]


def _decision_body(decision: Any) -> dict[str, Any]:
    return {**decision.as_dict(), "decision_hash": decision.decision_hash}


class PolicyProfileViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Policy profile versions. Creating one with an existing name adds the next version (as a draft)."""

    serializer_class = PolicyProfileSerializer
    filterset_class = PolicyProfileFilter
    queryset = PolicyProfile.objects.order_by("name", "-version")
    required_capabilities = {
        "list": "policy.read",
        "retrieve": "policy.read",
        "create": PLATFORM_POLICY,
        "activate": PLATFORM_POLICY,
    }

    @extend_schema(
        request=ProfileCreateSerializer,
        responses={201: PolicyProfileSerializer, 200: PolicyProfileSerializer},
        description="201 with the new version; 200 with the latest one when its content is identical.",
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = ProfileCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.profile_create(
            name=body.validated_data["name"],
            environment=body.validated_data["environment"],
            content=body.validated_data["content"],
            actor=request.user,
            reason=body.validated_data.get("reason", ""),
        )
        return Response(
            PolicyProfileSerializer(result.profile).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )

    @extend_schema(request=ProfileActivateSerializer, responses=PolicyProfileSerializer)
    @action(detail=True, methods=["post"])
    def activate(self, request: Request, pk: str | None = None) -> Response:
        """Make this version the active profile of its environment (retires the previous one)."""
        body = ProfileActivateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        profile = services.profile_activate(
            profile=self.get_object(),
            actor=request.user,
            reason=body.validated_data["reason"],
            expected_hash=body.validated_data.get("expected_hash"),
        )
        return Response(PolicyProfileSerializer(profile).data)


class ExplainView(APIView):
    """The verdict a step would get, with the rule trail that produced it (nothing is recorded)."""

    required_capability = "policy.read"

    @extend_schema(request=ExplainRequestSerializer, responses=DecisionSerializer)
    def post(self, request: Request) -> Response:
        body = ExplainRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        principal = request.user
        context = Context(
            environment=data.get("environment") or settings.CONTROLPLANE_ENV,
            principal_kind=data.get("principal_kind") or principal.kind,
            principal=principal.ref,
            tenant=principal.tenant.slug,
            labels=data["labels"],
        )
        step = StepFacts(
            action=data["action"],
            tier=data["tier"],
            inputs=data["inputs"],
            action_version=data["action_version"],
        )
        decision = selectors.explain(step=step, context=context, profile=data.get("profile"))
        return Response(_decision_body(decision))
