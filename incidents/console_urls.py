"""Console pages of the incident flow, included by `controlplane/console/urls.py` under `incidents/`.

They share the console's namespace (`console:incidents`, `console:incident`, ...), so the layout's
navigation and `redirect("console:...")` read the same as for the shell's own pages. The fixed paths come
before `<incident_id>/`; an unknown incident or transition is refused by the view (INCIDENT_NOT_FOUND,
NOT_FOUND), like the API.
"""

from django.urls import path

from incidents import views

urlpatterns = [
    path("", views.board, name="incidents"),
    path("signals/", views.signals, name="signals"),
    path("silences/", views.silences, name="silences"),
    path("silences/create/", views.silence_create, name="silence-create"),
    path("silences/<str:silence_id>/expire/", views.silence_expire, name="silence-expire"),
    path("<str:incident_id>/", views.incident_detail, name="incident"),
    path("<str:incident_id>/severity/", views.incident_raise_severity, name="incident-severity"),
    path("<str:incident_id>/<str:verb>/", views.incident_transition, name="incident-transition"),
]
