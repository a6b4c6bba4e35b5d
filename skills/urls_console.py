"""Console pages of the skills app, included by the console's URLconf under `/skills/`."""

from django.urls import path

from skills import views

app_name = "skills"

urlpatterns = [path("", views.registry, name="registry")]
