"""Django's auth signals, passed straight to the services that ledger sign-ins (no logic here)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from controlplane.identity import services, sessions


def _source(request: Any) -> str:
    return services.client_source(request.META) if request is not None else "unknown"


@receiver(user_logged_in)
def _signed_in(sender: Any, request: Any, user: Any, **_: Any) -> None:
    services.auth_failures_reset(source=_source(request))
    services.signin_record(user=user, source=_source(request))
    if request is not None and hasattr(request, "session"):
        sessions.session_signed_in(request.session)


@receiver(user_logged_out)
def _signed_out(sender: Any, request: Any, user: Any, **_: Any) -> None:
    if user is not None:
        services.signin_record(user=user, source=_source(request), signed_out=True)


@receiver(user_login_failed)
def _sign_in_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **_: Any) -> None:
    services.auth_failure_record(
        source=_source(request), method="password", username=str(credentials.get("username", ""))
    )
