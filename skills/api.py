"""Skills API: list, detail, the manifest schema, verify (dry run), install (POST the envelope), disable."""

from __future__ import annotations

from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from skills import selectors, services
from skills.models import ActionContract, Skill
from skills.verification import envelope_check, installed_check, manifest_schema


class ActionSerializer(serializers.ModelSerializer):
    # A plain string: the tier enum is named by the policy app's serializers (one name per choice set).
    risk_tier = serializers.CharField(read_only=True, help_text="low | medium | high | critical")

    class Meta:
        model = ActionContract
        fields = ["name", "version", "risk_tier", "executor", "description", "input_schema", "output_schema"]


class SkillSerializer(serializers.ModelSerializer):
    actions = ActionSerializer(many=True, read_only=True)

    class Meta:
        model = Skill
        fields = [
            "name",
            "version",
            "publisher",
            "trusted",
            "status",
            "status_codes",
            "status_reason",
            "manifest_hash",
            "envelope_hash",
            "signed_by",
            "installed_at",
            "installed_by",
            "actions",
        ]


class EnvelopeSerializer(serializers.Serializer):
    envelope = serializers.JSONField(help_text="A DSSE v1 envelope over a skill-manifest/v1 document.")


class InstallSerializer(EnvelopeSerializer):
    reason = serializers.CharField()


class DisableSerializer(serializers.Serializer):
    reason = serializers.CharField()


class SkillViewSet(viewsets.ReadOnlyModelViewSet):
    """Skills are installation-wide (platform scope): every holder of skills.read sees all of them."""

    serializer_class = SkillSerializer
    lookup_field = "name"
    lookup_value_regex = "[^/]+"
    required_capabilities = {
        "list": "skills.read",
        "retrieve": "skills.read",
        "manifest_schema": "skills.read",
        "verify": "skills.read",
        "verify_installed": "skills.read",
        "install": "skills.manage",
        "disable": "skills.manage",
    }

    def get_queryset(self):
        return selectors.skill_list()

    def get_object(self) -> Skill:
        skill = selectors.skill_current(name=self.kwargs["name"])
        if skill is None:
            raise Http404
        return skill

    @extend_schema(responses={200: OpenApiResponse(description="The skill-manifest/v1 JSON Schema")})
    @action(detail=False, methods=["get"], url_path="schema")
    def manifest_schema(self, request: Request) -> Response:
        """The skill-manifest/v1 JSON Schema shipped in the repo."""
        return Response(manifest_schema())

    @extend_schema(request=EnvelopeSerializer, responses={200: OpenApiResponse(description="every check")})
    @action(detail=False, methods=["post"])
    def verify(self, request: Request) -> Response:
        """Every check as of now, and its outcome; writes nothing."""
        payload = EnvelopeSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        return Response(
            envelope_check(envelope=payload.validated_data["envelope"], at=timezone.now()).as_dict()
        )

    @extend_schema(request=None, responses={200: OpenApiResponse(description="every check")})
    @action(detail=True, methods=["get"], url_path="verify")
    def verify_installed(self, request: Request, name: str | None = None) -> Response:
        """Re-verify the installed skill against the trust store now; writes nothing."""
        return Response(installed_check(skill=self.get_object(), now=timezone.now()).as_dict())

    @extend_schema(request=InstallSerializer, responses={201: SkillSerializer})
    @action(detail=False, methods=["post"])
    def install(self, request: Request) -> Response:
        """Verify and install; the answer is the skill and the install review (what it newly allows)."""
        payload = InstallSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        skill, review = services.skill_install(actor=request.user, **payload.validated_data)
        return Response({"skill": SkillSerializer(skill).data, "review": review}, status=201)

    @extend_schema(request=DisableSerializer, responses=SkillSerializer)
    @action(detail=True, methods=["post"])
    def disable(self, request: Request, name: str | None = None) -> Response:
        payload = DisableSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        skill = services.skill_disable(name=name, actor=request.user, reason=payload.validated_data["reason"])
        return Response(SkillSerializer(skill).data)
