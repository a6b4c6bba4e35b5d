"""Console pages of the incident flow, included by `controlplane/console/urls.py` under `incidents/`.

They share the console's namespace (`console:incidents`, `console:incident`, ...), so the layout's
navigation and `redirect("console:...")` read the same as for the shell's own pages.
"""

from django.urls import path, re_path

from incidents import views

ID = r"(?P<incident_id>[0-9a-f]{64})"

urlpatterns = [
    path("", views.board, name="incidents"),
    path("signals/", views.signals, name="signals"),
    path("silences/", views.silences, name="silences"),
    path("silences/create/", views.silence_create, name="silence-create"),
    re_path(r"^silences/(?P<silence_id>[0-9a-f]{64})/expire/$", views.silence_expire, name="silence-expire"),
    re_path(rf"^{ID}/$", views.incident_detail, name="incident"),
    re_path(rf"^{ID}/severity/$", views.incident_raise_severity, name="incident-severity"),
    re_path(
        rf"^{ID}/(?P<verb>acknowledge|mitigate|resolve|close|reopen)/$",
        views.incident_transition,
        name="incident-transition",
    ),
]
