"""Console pages of the runtime, included by the console's URLconf at the site's root (paths as before:
`/executions/`, `/traces/...`, `/killswitch/...`)."""

from django.urls import path

from controlplane.runtime import rollback_views, views

app_name = "runtime"

urlpatterns = [
    path("executions/", views.executions, name="executions"),
    path("traces/", views.trace_find, name="trace-find"),
    path("traces/<str:trace_id>/", views.trace, name="trace"),
    path("traces/<str:trace_id>/events/<int:seq>/", views.trace_event, name="trace-event"),
    path("traces/<str:trace_id>/events/<int:seq>/receipt/", views.trace_receipt, name="trace-receipt"),
    path("traces/<str:trace_id>/rollback/", rollback_views.trace_rollback, name="trace-rollback"),
    path("killswitch/", views.killswitch, name="killswitch"),
    path("killswitch/change/", views.killswitch_change, name="killswitch-change"),
    path("killswitch/held/", views.killswitch_held_decide, name="killswitch-held"),
]
