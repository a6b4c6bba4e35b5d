"""Context every console page gets: the signed-in principal and the environment banner."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from controlplane.identity.services import principal_for_user


def console(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    return {
        "cp_env": settings.CONTROLPLANE_ENV,
        "cp_principal": principal_for_user(user) if user is not None else None,
    }
