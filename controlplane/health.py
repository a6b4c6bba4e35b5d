"""Liveness (public, no details) and readiness (authenticated: database, broker, signing key)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.ledger import crypto
from controlplane.ledger.models import SigningKey


def healthz(request: HttpRequest) -> JsonResponse:
    """The one public endpoint: the process is up. It says nothing else."""
    return JsonResponse({"status": "ok"})


def _check_database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True, "vendor": connection.vendor}
    except Exception as exc:  # readiness reports every failure instead of raising
        return {"ok": False, "error": type(exc).__name__}


def _check_broker() -> dict[str, Any]:
    if not settings.REDIS_URL:
        return {"ok": True, "mode": "in-process (quickstart)"}
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
        return {"ok": True, "mode": "redis"}
    except redis.RedisError as exc:
        return {"ok": False, "mode": "redis", "error": type(exc).__name__}


def _check_signing_key() -> dict[str, Any]:
    key = SigningKey.objects.filter(
        valid_from_seq__isnull=False, valid_until_seq__isnull=True, revoked_at__isnull=True
    ).first()
    if key is None:
        ok = settings.CONTROLPLANE_LEDGER_AUTOGENERATE_KEY
        return {"ok": ok, "key_id": None, "note": "generated on first append" if ok else "no active key"}
    return {"ok": crypto.load_private_key(key.key_id) is not None, "key_id": key.key_id}


class ReadyView(APIView):
    required_capability = "system.read"

    @extend_schema(
        responses=inline_serializer(
            "Readiness",
            {
                "ready": serializers.BooleanField(),
                "checks": serializers.DictField(),
                "governance": serializers.DictField(),
                "plugins": serializers.DictField(),
            },
        )
    )
    def get(self, request: Request) -> Response:
        checks = {
            "database": _check_database(),
            "broker": _check_broker(),
            "signing_key": _check_signing_key(),
        }
        ready = all(check["ok"] for check in checks.values())
        # Plugins are shown, never green without evidence, but a plugin down does not make this process
        # unready: the steps that need it wait (PLUGIN_UNHEALTHY) while everything else goes on.
        from plugins.selectors import readiness as plugins_readiness

        body = {"ready": ready, "checks": checks, "governance": _governance(), "plugins": plugins_readiness()}
        return Response(body, status=200 if ready else 503)


def _governance() -> dict[str, Any]:
    """The active mode, the rollback toggle and the profile hash (docs/governance.md); never fails."""
    from governance.services import attestation_data

    try:
        return attestation_data()
    except Exception as exc:  # readiness reports, it does not raise
        return {"error": type(exc).__name__}
