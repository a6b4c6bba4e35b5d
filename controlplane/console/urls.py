from django.urls import include, path

from controlplane.console import views, views_runtime

app_name = "console"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("verify/", views.verify, name="verify"),
    path("ledger/", views.ledger, name="ledger"),
    path("ledger/<int:seq>/", views.event, name="event"),
    path("approvals/", views_runtime.approvals_queue, name="approvals"),
    path("approvals/bulk/", views_runtime.approvals_bulk_decide, name="approvals-bulk"),
    path("approvals/<str:request_id>/decide/", views_runtime.approval_decide, name="approval-decide"),
    path("executions/", views_runtime.executions, name="executions"),
    path("traces/", views_runtime.trace_find, name="trace-find"),
    path("traces/<str:trace_id>/", views_runtime.trace, name="trace"),
    path("traces/<str:trace_id>/events/<int:seq>/", views_runtime.trace_event, name="trace-event"),
    path("killswitch/", views_runtime.killswitch, name="killswitch"),
    path("killswitch/change/", views_runtime.killswitch_change, name="killswitch-change"),
    path("incidents/", include("incidents.console_urls")),
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
]
