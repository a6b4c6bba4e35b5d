"""DRF authentication: `Authorization: Bearer <token>` for integrations, the session for the console.

Both resolve to a `Principal`; `request.auth` carries the token (or None for a session).
"""

from __future__ import annotations

from typing import Any, NoReturn

from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.request import Request

from controlplane.identity import selectors, services
from controlplane.identity.models import ApiToken, Principal
from controlplane.kernel.errors import ControlPlaneError


def token_failure_record(*, source: str) -> NoReturn:
    """A bad bearer token: count it against `source` and refuse, AUTH_THROTTLED once the source is over
    its limit (failures are still counted, no longer ledgered), AUTH_INVALID_TOKEN before.

    The throttle is consulted only on a failure: a valid token is let through even from a throttled
    source (tokens are random 256-bit secrets, not guessable; the throttle bounds the ledger's failure
    records and tells a misconfigured client to stop), so one client's bad token behind a shared address
    locks nobody else out.
    """
    try:
        services.auth_throttle_check(source=source)
    except ControlPlaneError:
        services.auth_failure_record(source=source, method="token")
        raise
    services.auth_failure_record(source=source, method="token")
    raise ControlPlaneError("AUTH_INVALID_TOKEN")


class BearerTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Principal, ApiToken] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, secret = header.partition(" ")
        if scheme != self.keyword:
            return None
        token = services.token_authenticate(secret=secret.strip()) if secret.strip() else None
        if token is None:
            token_failure_record(source=services.client_source(request.META))
        return token.principal, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ConsoleSessionAuthentication(SessionAuthentication):
    """The console's session, resolved to the user's principal (CSRF enforced by DRF)."""

    def authenticate(self, request: Request) -> tuple[Principal, None] | None:
        result: Any = super().authenticate(request)
        if result is None:
            return None
        principal = selectors.principal_for_user(user=result[0])
        if principal is None:
            raise ControlPlaneError("AUTH_NO_PRINCIPAL")
        return principal, None
