"""Console pages of the incident flow, included by the console's URLconf under `/incidents/`.

The fixed paths come before `<incident_id>/`; an unknown incident or transition is refused by the view
(INCIDENT_NOT_FOUND, NOT_FOUND), like the API.
"""

from django.urls import path

from incidents import views

app_name = "incidents"

urlpatterns = [
    path("", views.board, name="board"),
    path("signals/", views.signals, name="signals"),
    path("silences/", views.silences, name="silences"),
    path("silences/create/", views.silence_create, name="silence-create"),
    path("silences/<str:silence_id>/expire/", views.silence_expire, name="silence-expire"),
    path("<str:incident_id>/", views.incident_detail, name="detail"),
    path("<str:incident_id>/severity/", views.incident_raise_severity, name="severity"),
    path("<str:incident_id>/assign/", views.incident_assign, name="assign"),
    path("<str:incident_id>/note/", views.incident_note, name="note"),
    path("<str:incident_id>/<str:verb>/", views.incident_transition, name="transition"),
]
