"""The console's URLconf: the shell's own pages (namespace `console`), and each app's console pages under
the app's namespace, mounted where the app registered them (`controlplane.kernel.navigation.
register_console_urls`), at the paths they have always had. The console names no app: an app adds its
pages, navigation entry and dashboard panel from its own `AppConfig.ready()`.
"""

from django.urls import include, path

from controlplane.console import views
from controlplane.kernel.navigation import console_urls

shell = [
    path("", views.dashboard, name="dashboard"),
    path("panels/<slug:name>/", views.panel, name="panel"),
    path("nav/", views.nav, name="nav"),
    path("verify/", views.verify, name="verify"),
    path("ledger/", views.ledger, name="ledger"),
    path("ledger/<int:seq>/", views.event, name="event"),
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
]

urlpatterns = [
    path("", include((shell, "console"))),
    *(path(prefix, include(urlconf)) for prefix, urlconf in console_urls()),
]
