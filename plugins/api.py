"""Plugins API: list, health, detail, register, heartbeats (signed), quarantine, release, review decisions."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.kernel.errors import ControlPlaneError
from plugins import selectors, services
from plugins.models import Plugin, ReviewItem
from plugins.services.quarantine import REVIEW_BULK_LIMIT

_HEALTH = inline_serializer(
    "PluginHealth",
    {
        "name": serializers.CharField(),
        "tenant": serializers.CharField(),
        "kind": serializers.CharField(),
        "version": serializers.CharField(),
        "state": serializers.CharField(),
        "healthy": serializers.BooleanField(),
        "reason_codes": serializers.ListField(child=serializers.CharField()),
        "detail": serializers.CharField(),
        "since": serializers.CharField(allow_null=True),
        "severity": serializers.CharField(),
        "last_evidence": serializers.DictField(),
        "restarts": serializers.IntegerField(),
        "restart_requests": serializers.IntegerField(),
        "backoff": serializers.DictField(),
        "depends_on": serializers.ListField(child=serializers.CharField()),
    },
    many=True,
)


class PluginSerializer(serializers.ModelSerializer):
    class Meta:
        model = Plugin
        fields = ["name", "version", "kind", "manifest", "manifest_hash", "registered_by", "registered_at"]

    def to_representation(self, instance: Plugin) -> dict:
        return {**super().to_representation(instance), **selectors.plugin_health(instance)}


class RegisterSerializer(serializers.Serializer):
    manifest = serializers.DictField(help_text="A plugin-manifest/v1 document (docs/plugins.md).")
    shared = serializers.BooleanField(
        default=False, help_text="Installation-wide (needs the platform grant)."
    )


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField()


class ReviewItemSerializer(serializers.ModelSerializer):
    plugin = serializers.CharField(source="plugin.name", read_only=True)

    class Meta:
        model = ReviewItem
        fields = [
            "id",
            "plugin",
            "code",
            "detail",
            "severity",
            "evidence",
            "evidence_hash",
            "status",
            "opened_at",
            "decided_at",
            "decided_by",
            "reason",
        ]


class ReviewDecisionSerializer(serializers.Serializer):
    decision = serializers.RegexField(r"^(quarantine|dismiss)$", help_text="quarantine | dismiss")
    reason = serializers.CharField()


class BulkReviewDecisionSerializer(ReviewDecisionSerializer):
    items = serializers.ListField(child=serializers.IntegerField(min_value=1), max_length=REVIEW_BULK_LIMIT)


class PluginViewSet(viewsets.ReadOnlyModelViewSet):
    """Plugins in reach: the tenant's own and the shared ones (a platform principal: every plugin)."""

    serializer_class = PluginSerializer
    lookup_field = "name"
    lookup_value_regex = "[^/]+"
    required_capabilities = {
        "list": "plugins.read",
        "retrieve": "plugins.read",
        "health": "plugins.read",
        "create": "plugins.manage",
        "heartbeats": "plugins.heartbeat",
        "quarantine": "plugins.manage",
        "release": "plugins.manage",
    }

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Plugin.objects.none()
        return selectors.plugins_visible(principal=self.request.user)

    def get_object(self) -> Plugin:
        plugin = selectors.plugin_visible(principal=self.request.user, name=self.kwargs["name"])
        if plugin is None:
            raise Http404
        return plugin

    @extend_schema(request=RegisterSerializer, responses={201: PluginSerializer})
    def create(self, request: Request) -> Response:
        """Register (or re-register) a plugin manifest in your tenant, or shared (`shared: true`)."""
        payload = RegisterSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        tenant = None if payload.validated_data["shared"] else request.user.tenant
        plugin = services.plugin_register(
            manifest=payload.validated_data["manifest"], actor=request.user, tenant=tenant
        )
        return Response(PluginSerializer(plugin).data, status=201)

    @extend_schema(
        responses=inline_serializer(
            "PluginsHealth",
            {"healthy": serializers.BooleanField(), "counts": serializers.DictField(), "plugins": _HEALTH},
        )
    )
    @action(detail=False, methods=["get"])
    def health(self, request: Request) -> Response:
        """Every plugin's state, reason, last evidence, restarts and back-off; never green unproven."""
        return Response(selectors.health_summary(self.get_queryset()))

    @extend_schema(
        request={"application/json": {"type": "object"}},
        parameters=[
            OpenApiParameter("webhook-id", str, OpenApiParameter.HEADER, required=True),
            OpenApiParameter("webhook-timestamp", str, OpenApiParameter.HEADER, required=True),
            OpenApiParameter(
                "webhook-signature",
                str,
                OpenApiParameter.HEADER,
                required=True,
                description="`v1a,<base64 Ed25519>`",
            ),
        ],
        responses={202: OpenApiResponse(description="accepted as evidence")},
    )
    @action(detail=True, methods=["post"])
    def heartbeats(self, request: Request, name: str | None = None) -> Response:
        """A heartbeat signed with the plugin's own key (Standard Webhooks v1a), sent with its own token."""
        meta = request.META
        headers = {
            "webhook-id": meta.get("HTTP_WEBHOOK_ID", ""),
            "webhook-timestamp": meta.get("HTTP_WEBHOOK_TIMESTAMP", ""),
            "webhook-signature": meta.get("HTTP_WEBHOOK_SIGNATURE", ""),
        }
        try:
            body = request.body  # the raw bytes the signature covers (request.data is never parsed)
        except Exception as exc:  # RequestDataTooBig, a broken stream
            raise ControlPlaneError("PLUGIN_HEARTBEAT_INVALID", "the body could not be read") from exc
        result = services.heartbeat_ingest(name=name, principal=request.user, headers=headers, body=body)
        return Response(result, status=202)

    @extend_schema(request=ReasonSerializer, responses=PluginSerializer)
    @action(detail=True, methods=["post"])
    def quarantine(self, request: Request, name: str | None = None) -> Response:
        payload = ReasonSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        plugin = services.plugin_quarantine(
            name=name, actor=request.user, reason=payload.validated_data["reason"]
        )
        return Response(PluginSerializer(plugin).data)

    @extend_schema(
        request=ReasonSerializer, responses={202: OpenApiResponse(description="the approval request")}
    )
    @action(detail=True, methods=["post"])
    def release(self, request: Request, name: str | None = None) -> Response:
        """Ask for a release: an approval request (plugins.release) bound to the quarantine's evidence."""
        payload = ReasonSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        approval = services.plugin_release_request(
            name=name, actor=request.user, reason=payload.validated_data["reason"]
        )
        return Response(
            {
                "approval": approval.pk,
                "quorum": approval.quorum,
                "content_hash": approval.content_hash,
                "status": approval.status,
            },
            status=202,
        )


class ReviewItemViewSet(viewsets.ReadOnlyModelViewSet):
    """The quarantine review queue (open items first); decisions by a person with a reason."""

    serializer_class = ReviewItemSerializer
    required_capabilities = {
        "list": "plugins.read",
        "retrieve": "plugins.read",
        "decide": "plugins.review",
        "bulk_decide": "plugins.review",
    }

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ReviewItem.objects.none()
        plugins = selectors.plugins_visible(principal=self.request.user)
        return (
            ReviewItem.objects.filter(plugin__in=plugins.values("pk"))
            .select_related("plugin")
            .order_by("status", "opened_at", "id")
        )

    @extend_schema(request=ReviewDecisionSerializer, responses=ReviewItemSerializer)
    @action(detail=True, methods=["post"])
    def decide(self, request: Request, pk: str | None = None) -> Response:
        payload = ReviewDecisionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        if not str(pk).isdigit():
            raise Http404
        item = services.review_decide(item_id=int(pk), actor=request.user, **payload.validated_data)
        return Response(ReviewItemSerializer(item).data)

    @extend_schema(
        request=BulkReviewDecisionSerializer, responses={200: OpenApiResponse(description="outcomes")}
    )
    @action(detail=False, methods=["post"], url_path="bulk-decide")
    def bulk_decide(self, request: Request) -> Response:
        """One decision and reason for several items; each item's outcome (decided or its refusal code)."""
        payload = BulkReviewDecisionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        outcomes = services.review_decide_bulk(
            item_ids=data["items"], actor=request.user, decision=data["decision"], reason=data["reason"]
        )
        return Response({"outcomes": outcomes})
