"""Console pages of the learning app, included by the console's URLconf under `/learning/`."""

from django.urls import path

from learning import views

app_name = "learning"

urlpatterns = [
    path("", views.learning_page, name="learning"),
    path("findings/<str:fingerprint>/decide/", views.finding_decide, name="finding-decide"),
]
