"""The console's URLconf: the shell's own pages (namespace `console`), and each app's console pages under
the app's namespace (`approvals:`, `runtime:`, `incidents:`), at the paths they have always had.

Adding an app's pages is one include here; its navigation entry and dashboard panel it registers itself
(`controlplane.kernel.navigation`).
"""

from django.urls import include, path

from controlplane.console import views

shell = [
    path("", views.dashboard, name="dashboard"),
    path("panels/<slug:name>/", views.panel, name="panel"),
    path("verify/", views.verify, name="verify"),
    path("ledger/", views.ledger, name="ledger"),
    path("ledger/<int:seq>/", views.event, name="event"),
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
]

urlpatterns = [
    path("", include((shell, "console"))),
    path("approvals/", include("approvals.urls_console")),
    path("", include("controlplane.runtime.urls_console")),
    path("incidents/", include("incidents.urls_console")),
    path("skills/", include("skills.urls_console")),
]
