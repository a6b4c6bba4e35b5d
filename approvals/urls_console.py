"""Console pages of the approvals app, included by the console's URLconf under `/approvals/`."""

from django.urls import path

from approvals import views

app_name = "approvals"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("bulk/", views.bulk_decide, name="bulk-decide"),
    path("<str:approval_id>/decide/", views.decide, name="decide"),
]
