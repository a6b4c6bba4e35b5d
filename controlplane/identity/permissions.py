"""Capability checks. Deny by default: a view must declare what it needs, or nobody gets in.

A view declares `required_capability = "ledger.read"`, or `required_capabilities = {"list": ...,
"create": ...}` keyed by DRF action (or HTTP method for plain APIViews).
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import MethodNotAllowed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from controlplane.identity.models import Principal
from controlplane.kernel.errors import ControlPlaneError


def required_capability_of(view: Any, request: Request) -> str | None:
    per_action = getattr(view, "required_capabilities", None)
    if per_action:
        action = getattr(view, "action", None) or request.method.lower()
        if action in per_action:
            return per_action[action]
    return getattr(view, "required_capability", None)


class HasCapability(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        principal = request.user
        if not isinstance(principal, Principal):
            return False  # DRF answers 401 (with WWW-Authenticate) for an unauthenticated request
        # DRF checks permissions before it dispatches on the method: without this, a method the view does
        # not serve would be refused as a missing capability (403) rather than as what it is (405).
        method = request.method.lower()
        if method not in view.http_method_names or getattr(view, method, None) is None:
            raise MethodNotAllowed(request.method)
        capability = required_capability_of(view, request)
        if capability is None or not principal.has_capability(capability):
            raise ControlPlaneError(
                "CAPABILITY_MISSING",
                f"{principal.ref} lacks {capability!r}"
                if capability
                else "this endpoint declares no capability",
            )
        return True
