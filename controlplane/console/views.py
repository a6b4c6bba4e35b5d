"""Console pages (placeholder until the console shell lands)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<html><body>Control Plane</body></html>")


login = auth_views.LoginView.as_view(template_name="console/login.html")
logout = auth_views.LogoutView.as_view()
