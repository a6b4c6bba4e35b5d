"""Console pages of the governance app, included by the console's URLconf under `/governance/`."""

from django.urls import path

from governance import views

app_name = "governance"

urlpatterns = [path("", views.page, name="page")]
