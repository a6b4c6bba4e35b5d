"""The counters of signed ingest's refusals (`GET /api/v1/events/rejections/`), and the channel
connections and chat identities (`/api/v1/channels/connections/`, `/api/v1/channels/identities/`).

The ingest endpoint itself, `POST /api/v1/events/`, is served by controlplane.channels.ingest (its view
is `controlplane.channels.ingest.view.EventIngestView`).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.channels import selectors
from controlplane.channels.models import ChannelConnection, ChannelIdentity, ChannelLink, ChannelProvider
from controlplane.channels.services.connections import (
    channel_connect,
    channel_disconnect,
    channel_identity_map,
    channel_identity_unmap,
    channel_secrets_rotate,
    connection_webhook_urls,
)
from controlplane.channels.services.links import channel_link_revoke, channel_link_start
from controlplane.identity.selectors import principal_get
from controlplane.kernel.errors import ControlPlaneError

MANAGE = "channels.manage"
LINK = "channels.link"


class RejectionCountsView(APIView):
    """Refusals of the ingest endpoint, counted per producer (of the caller's tenant, plus "unknown")."""

    required_capability = "ledger.read"

    @extend_schema(
        responses=inline_serializer(
            "IngestRejections",
            {
                "total": serializers.IntegerField(),
                "counters": inline_serializer(
                    "IngestRejectionCounter",
                    {
                        "producer": serializers.CharField(),
                        "code": serializers.CharField(),
                        "count": serializers.IntegerField(),
                    },
                    many=True,
                ),
            },
        )
    )
    def get(self, request: Request) -> Response:
        counts = selectors.rejection_counts(tenant=request.user.tenant)
        return Response(
            {
                "total": sum(c.count for c in counts),
                "counters": [{"producer": c.producer, "code": c.code, "count": c.count} for c in counts],
            }
        )


# --- Channel connections and chat identities (`channels.manage`) ---------------------------------------


class ChannelConnectionSerializer(serializers.ModelSerializer):
    """A connection as the API shows it: never its secrets, only which are set, and its webhook URLs."""

    webhook_urls = serializers.SerializerMethodField()

    class Meta:
        model = ChannelConnection
        fields = [
            "key",
            "provider",
            "name",
            "channel",
            "secret_names",
            "created_at",
            "rotated_at",
            "disconnected_at",
            "webhook_urls",
        ]
        read_only_fields = fields

    def get_webhook_urls(self, connection: ChannelConnection) -> dict[str, str]:
        return {w.adapter: w.url for w in connection_webhook_urls(connection=connection)}


class ConnectSerializer(serializers.Serializer):
    provider = serializers.ChoiceField(choices=ChannelProvider.choices)
    name = serializers.SlugField(max_length=80)
    channel = serializers.CharField(max_length=120, required=False, default="", allow_blank=True)
    secrets = serializers.DictField(
        child=serializers.CharField(allow_blank=True), required=False, default=dict
    )


class RotateSerializer(serializers.Serializer):
    secrets = serializers.DictField(
        child=serializers.CharField(allow_blank=True), required=False, default=dict
    )


class ChannelConnectionViewSet(viewsets.ReadOnlyModelViewSet):
    """The caller's tenant's channel connections. Secrets go in (create, rotate-secret) and never out."""

    serializer_class = ChannelConnectionSerializer
    required_capability = MANAGE
    lookup_field = "key"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ChannelConnection.objects.none()
        return ChannelConnection.objects.select_related("tenant").filter(tenant=self.request.user.tenant)

    @extend_schema(request=ConnectSerializer, responses={201: ChannelConnectionSerializer})
    def create(self, request: Request) -> Response:
        payload = ConnectSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        connection = channel_connect(
            tenant=request.user.tenant,
            provider=payload.validated_data["provider"],
            name=payload.validated_data["name"],
            secret_values=payload.validated_data["secrets"],
            channel=payload.validated_data["channel"],
            actor=request.user.ref,
        )
        return Response(ChannelConnectionSerializer(connection).data, status=201)

    @extend_schema(request=RotateSerializer, responses={200: ChannelConnectionSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, key: str | None = None) -> Response:
        payload = RotateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        connection = channel_secrets_rotate(
            connection=self.get_object(),
            secret_values=payload.validated_data["secrets"],
            actor=request.user.ref,
        )
        return Response(ChannelConnectionSerializer(connection).data)

    @extend_schema(request=None, responses={200: ChannelConnectionSerializer})
    @action(detail=True, methods=["post"])
    def disconnect(self, request: Request, key: str | None = None) -> Response:
        connection = channel_disconnect(connection=self.get_object(), actor=request.user.ref)
        return Response(ChannelConnectionSerializer(connection).data)


class ChannelIdentitySerializer(serializers.ModelSerializer):
    principal = serializers.CharField(source="principal.name")

    class Meta:
        model = ChannelIdentity
        fields = ["id", "provider", "external_id", "principal", "created_at"]
        read_only_fields = ["id", "created_at"]


class ChannelIdentityViewSet(
    mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet
):
    """Provider user ids mapped to human principals of the caller's tenant (who acts from chat)."""

    serializer_class = ChannelIdentitySerializer
    required_capability = MANAGE

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ChannelIdentity.objects.none()
        return ChannelIdentity.objects.select_related("principal").filter(tenant=self.request.user.tenant)

    def create(self, request: Request) -> Response:
        payload = ChannelIdentitySerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        tenant = request.user.tenant
        identity = channel_identity_map(
            tenant=tenant,
            provider=payload.validated_data["provider"],
            external_id=payload.validated_data["external_id"],
            principal=principal_get(tenant=tenant, name=payload.validated_data["principal"]["name"]),
            actor=request.user.ref,
        )
        return Response(ChannelIdentitySerializer(identity).data, status=201)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        identity = self.get_object()
        channel_identity_unmap(
            tenant=identity.tenant,
            provider=identity.provider,
            external_id=identity.external_id,
            actor=request.user.ref,
        )
        return Response(status=204)


# --- Identity links by one-time code (`channels.link`: a person, for themselves) -----------------------


class ChannelLinkSerializer(serializers.ModelSerializer):
    connection = serializers.CharField(source="connection.key")
    provider = serializers.CharField(source="connection.provider", read_only=True)

    class Meta:
        model = ChannelLink
        fields = ["id", "connection", "provider", "external_id", "status", "created_at", "expires_at"]
        read_only_fields = ["id", "provider", "status", "created_at", "expires_at"]


class ChannelLinkViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """The caller's own identity links. Creating one sends a one-time code to the chat identity named;
    typing `link <code>` back from it links it to the caller. The code is never in an answer."""

    serializer_class = ChannelLinkSerializer
    required_capability = LINK

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ChannelLink.objects.none()
        return ChannelLink.objects.select_related("connection").filter(
            tenant=self.request.user.tenant, principal=self.request.user
        )

    def create(self, request: Request) -> Response:
        payload = ChannelLinkSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        connection = ChannelConnection.objects.filter(
            tenant=request.user.tenant, key=payload.validated_data["connection"]["key"]
        ).first()
        if connection is None:
            raise ControlPlaneError("CHANNEL_NOT_FOUND", "no such channel connection in your tenant")
        started = channel_link_start(
            connection=connection, principal=request.user, external_id=payload.validated_data["external_id"]
        )
        return Response(ChannelLinkSerializer(started.link).data, status=201)


class MyIdentityViewSet(mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """The chat identities linked to the caller; deleting one revokes the link (ledgered)."""

    serializer_class = ChannelIdentitySerializer
    required_capability = LINK

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ChannelIdentity.objects.none()
        return ChannelIdentity.objects.select_related("principal", "tenant").filter(
            tenant=self.request.user.tenant, principal=self.request.user
        )

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        channel_link_revoke(identity=self.get_object(), actor=request.user)
        return Response(status=204)
