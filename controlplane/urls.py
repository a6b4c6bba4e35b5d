"""Every URL of the project. All need a signed-in principal with a grant, except /healthz and login."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from controlplane import health


class SchemaView(SpectacularAPIView):
    """The OpenAPI schema, for principals allowed to see system details (deny by default)."""

    required_capability = "system.read"


api_v1 = [
    path("ledger/", include("controlplane.ledger.urls")),
    path("policy/", include("controlplane.policy.urls")),
    path("", include("controlplane.channels.urls")),
    path("", include("controlplane.runtime.urls")),
    path("", include("approvals.urls")),
    path("", include("incidents.urls")),
    path("", include("skills.urls")),
    path("", include("learning.urls")),
    path("", include("governance.urls")),
    path("", include("plugins.urls")),
]

# JSON answers with a reason code under /api/ for paths the router does not match and for crashes.
handler404 = "controlplane.exceptions.not_found"
handler500 = "controlplane.exceptions.server_error"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.ReadyView.as_view(), name="readyz"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SchemaView.as_view(), name="api-schema"),
    # The admin (controlplane/admin_site.py): its login page sends the anonymous to the console's sign-in
    # (throttled, ledgered) and asks the signed-in for their TOTP code.
    path("admin/", admin.site.urls),
    path("", include("controlplane.console.urls")),
]
