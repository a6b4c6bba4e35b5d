"""Console pages of the plugins app, mounted under `/plugins/` by its `register_console_urls`."""

from django.urls import path

from plugins import views

app_name = "plugins"

urlpatterns = [
    path("", views.health, name="health"),
    path("reviews/", views.reviews, name="reviews"),
    path("reviews/decide/", views.reviews_decide, name="reviews-decide"),
    path("<slug:name>/", views.detail, name="detail"),
    path("<slug:name>/release/", views.release, name="release"),
]
