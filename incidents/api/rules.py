"""Detection rules with every version; POST makes a new version (or the rule, at version 1)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from incidents import selectors, services
from incidents.api import READ
from incidents.api.serializers import RuleSerializer, RuleWriteSerializer
from incidents.models import DetectionRule


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
