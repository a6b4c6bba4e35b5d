"""Console pages of the skills app, included by the console's URLconf under `/skills/`."""

from django.urls import path

from skills import views

app_name = "skills"

urlpatterns = [
    path("", views.registry, name="registry"),
    path("publishers/", views.publishers, name="publishers"),
    path("installs/<str:request_id>/", views.install_review, name="install-review"),
    path("<str:name>/<str:verb>/", views.toggle, name="toggle"),
]
