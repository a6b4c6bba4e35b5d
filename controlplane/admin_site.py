"""The Django admin site: a principal holding `admin.access`, signed in with a second factor (TOTP).

Django's stock site lets in any `is_staff` user with a password. This one lets in a staff user only when
the user is linked to an active principal that holds `admin.access` and the session has verified a TOTP
device (django-otp; `manage.py admin_otp enrol USERNAME` creates one and prints its otpauth:// URL).
`CONTROLPLANE_ADMIN_OTP_REQUIRED=false` turns the second factor off, in dev only.

Sign-in itself is the console's (`/login/`, throttled and ledgered); the admin's login page asks only for
the TOTP code of a signed-in user, or shows the reason code when the user may not use the admin at all.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.admin import AdminSite
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode

ADMIN_CAPABILITY = "admin.access"


def admin_refusal(request: HttpRequest) -> tuple[str, str] | None:
    """Why this request may not use the admin (a reason code and a sentence), or None."""
    from controlplane.identity.selectors import principal_for_user

    user = request.user
    if not user.is_authenticated:
        return "AUTH_REQUIRED", "sign in first"
    if not (user.is_active and user.is_staff):
        return "CAPABILITY_MISSING", "the admin is for staff users"
    principal = principal_for_user(user=user)
    if principal is None or not principal.is_active:
        return "AUTH_NO_PRINCIPAL", "your user is not linked to an active principal"
    if not principal.has_capability(ADMIN_CAPABILITY):
        return "CAPABILITY_MISSING", f"{principal.ref} lacks {ADMIN_CAPABILITY!r}"
    if settings.CONTROLPLANE_ADMIN_OTP_REQUIRED and not user.is_verified():
        return "ADMIN_OTP_REQUIRED", "enter the code of your TOTP device"
    return None


class ControlPlaneAdminSite(AdminSite):
    site_header = "Control Plane administration"
    site_title = "Control Plane admin"

    def has_permission(self, request: HttpRequest) -> bool:
        return admin_refusal(request) is None

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """Not a password form: send the anonymous to the console's sign-in, ask the signed-in for their
        TOTP code, and refuse (with the code) whoever may not use the admin."""
        from django_otp import login as otp_login
        from django_otp.forms import OTPTokenForm

        next_url = request.GET.get("next") or request.POST.get("next") or reverse("admin:index")
        if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
            next_url = reverse("admin:index")
        refusal = admin_refusal(request)
        if refusal is None:
            return HttpResponseRedirect(next_url)
        code, detail = refusal
        if code == "AUTH_REQUIRED":
            return HttpResponseRedirect(f"{reverse('console:login')}?{urlencode({'next': next_url})}")
        context = {**self.each_context(request), "code": code, "detail": detail, "next": next_url}
        if code != "ADMIN_OTP_REQUIRED":
            return render(request, "admin/refused.html", context, status=403)
        form = OTPTokenForm(request.user, request, data=request.POST or None)
        if request.method == "POST" and form.is_valid():
            otp_login(request, request.user.otp_device)
            return HttpResponseRedirect(next_url)
        return render(request, "admin/otp_verify.html", {**context, "form": form}, status=401)


class ControlPlaneAdminConfig(AdminConfig):
    """`django.contrib.admin` with `ControlPlaneAdminSite` as `admin.site`, so every app's
    `@admin.register` lands on the guarded site."""

    default_site = "controlplane.admin_site.ControlPlaneAdminSite"
