"""Skills API: list, detail, the manifest schema, verify (dry run), install (an approval request for the
envelope), disable, enable, install requests, and the publisher trust store (publishers and their keys)."""

from __future__ import annotations

import base64
import binascii

from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.kernel.errors import ControlPlaneError
from skills import selectors, services
from skills.capabilities import MANAGE, READ
from skills.models import ActionContract, InstallRequest, Publisher, PublisherKey, Skill
from skills.verification import bundle_digests, envelope_check, installed_check, manifest_schema


class ActionSerializer(serializers.ModelSerializer):
    # A plain string: the tier enum is named by the policy app's serializers (one name per choice set).
    risk_tier = serializers.CharField(read_only=True, help_text="low | medium | high | critical")

    class Meta:
        model = ActionContract
        fields = [
            "name",
            "version",
            "risk_tier",
            "executor",
            "description",
            "input_schema",
            "output_schema",
            "capabilities",
            "blast_radius",
            "compensating_action",
        ]


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
    bundle = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        help_text="The code bundle's files: path -> base64 of its bytes (checked against artifacts[]).",
    )


def _bundle(files: dict[str, str] | None) -> dict[str, str] | None:
    if files is None:
        return None
    try:
        return bundle_digests({path: base64.b64decode(data, validate=True) for path, data in files.items()})
    except (binascii.Error, ValueError) as exc:
        raise ControlPlaneError("SKILL_DIGEST_MISMATCH", f"a bundle file is not base64: {exc}") from exc


class InstallStateSerializer(serializers.ModelSerializer):
    approval = serializers.CharField(source="id", read_only=True)
    skill = serializers.SerializerMethodField()

    class Meta:
        model = InstallRequest
        fields = [
            "approval",
            "status",
            "status_codes",
            "envelope_hash",
            "review",
            "reason",
            "requested_by",
            "created_at",
            "decided_at",
            "skill",
        ]

    def get_skill(self, request: InstallRequest) -> str | None:
        return str(request.skill) if request.skill_id else None


class DisableSerializer(serializers.Serializer):
    reason = serializers.CharField()


class SkillViewSet(viewsets.ReadOnlyModelViewSet):
    """Skills are installation-wide (platform scope): every holder of skills.read sees all of them."""

    serializer_class = SkillSerializer
    lookup_field = "name"
    lookup_value_regex = "[^/]+"
    required_capabilities = {
        "list": READ,
        "retrieve": READ,
        "manifest_schema": READ,
        "verify": READ,
        "verify_installed": READ,
        "install": MANAGE,
        "install_request": READ,
        "disable": MANAGE,
        "enable": MANAGE,
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

    @extend_schema(request=InstallSerializer, responses={202: InstallStateSerializer})
    @action(detail=False, methods=["post"])
    def install(self, request: Request) -> Response:
        """Verify, then ask to install: the answer is the pending install request (its approval id) with the
        install review (what it newly allows) the approvers see; installed once they approve."""
        payload = InstallSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        install = services.skill_install_request(
            envelope=data["envelope"],
            actor=request.user,
            reason=data["reason"],
            bundle=_bundle(data.get("bundle")),
        )
        return Response(InstallStateSerializer(install).data, status=202)

    @extend_schema(request=None, responses=InstallStateSerializer)
    @action(detail=False, methods=["get"], url_path=r"installs/(?P<approval>[0-9a-f]+)")
    def install_request(self, request: Request, approval: str) -> Response:
        """One install request: pending or decided, with its review."""
        install = selectors.install_request_get(request_id=approval)
        if install is None:
            raise Http404
        return Response(InstallStateSerializer(install).data)

    @extend_schema(request=DisableSerializer, responses=SkillSerializer)
    @action(detail=True, methods=["post"])
    def disable(self, request: Request, name: str | None = None) -> Response:
        payload = DisableSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        skill = services.skill_disable(name=name, actor=request.user, reason=payload.validated_data["reason"])
        return Response(SkillSerializer(skill).data)

    @extend_schema(request=DisableSerializer, responses=SkillSerializer)
    @action(detail=True, methods=["post"])
    def enable(self, request: Request, name: str | None = None) -> Response:
        """Enable a disabled skill again (re-verified now); its held steps resume."""
        payload = DisableSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        skill = services.skill_enable(name=name, actor=request.user, reason=payload.validated_data["reason"])
        return Response(SkillSerializer(skill).data)


class KeySerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField()

    class Meta:
        model = PublisherKey
        fields = [
            "key_id",
            "scheme",
            "public_key_pem",
            "valid_from",
            "valid_until",
            "revoked_at",
            "revoked_reason",
            "state",
        ]

    def get_state(self, key: PublisherKey) -> str:
        return key.state_at(timezone.now())


class PublisherSerializer(serializers.ModelSerializer):
    keys = KeySerializer(many=True, read_only=True)

    class Meta:
        model = Publisher
        fields = ["name", "description", "threshold", "builtin", "created_at", "keys"]


class PublisherAddSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    public_keys = serializers.ListField(child=serializers.CharField(), min_length=1, max_length=20)
    threshold = serializers.IntegerField(min_value=1, max_value=20)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    reason = serializers.CharField()


class PublisherRotateSerializer(serializers.Serializer):
    statement = serializers.DictField(
        help_text="A DSSE key statement signed by a threshold of the current keys"
    )
    reason = serializers.CharField()


class PublisherViewSet(viewsets.ReadOnlyModelViewSet):
    """The publisher trust store (installation-wide): read with skills.read, changed with the platform
    capability; every change is ledgered and re-checks the installed skills."""

    serializer_class = PublisherSerializer
    lookup_field = "name"
    lookup_value_regex = "[a-z0-9][a-z0-9.-]{0,99}"
    queryset = Publisher.objects.prefetch_related("keys")
    required_capabilities = {
        "list": READ,
        "retrieve": READ,
        "create": MANAGE,
        "rotate": MANAGE,
        "revoke_key": MANAGE,
    }

    @extend_schema(request=PublisherAddSerializer, responses={201: PublisherSerializer})
    def create(self, request: Request) -> Response:
        """Trust a new publisher with its public keys (PEM) and its k-of-n threshold."""
        payload = PublisherAddSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        publisher = services.publisher_add(actor=request.user, **payload.validated_data)
        return Response(PublisherSerializer(publisher).data, status=201)

    @extend_schema(request=PublisherRotateSerializer, responses=PublisherSerializer)
    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, name: str | None = None) -> Response:
        """Replace the key set and threshold with a statement signed by a threshold of the current keys."""
        payload = PublisherRotateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        publisher = services.publisher_rotate(
            publisher=self.get_object(), actor=request.user, **payload.validated_data
        )
        return Response(PublisherSerializer(Publisher.objects.get(pk=publisher.pk)).data)

    @extend_schema(request=DisableSerializer, responses={200: OpenApiResponse(description="quarantined")})
    @action(detail=False, methods=["post"], url_path=r"keys/(?P<key_id>[0-9a-f]+)/revoke")
    def revoke_key(self, request: Request, key_id: str) -> Response:
        """Revoke a key; installed skills below their threshold without it are quarantined."""
        payload = DisableSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        quarantined = services.publisher_key_revoke(
            key_id=key_id, actor=request.user, reason=payload.validated_data["reason"]
        )
        return Response({"key_id": key_id, "quarantined": quarantined})
