"""Console pages of the channels app, included by the console's URLconf under `/channels/`."""

from django.urls import path

from controlplane.channels import views

app_name = "channels"

urlpatterns = [
    path("", views.links, name="links"),
    path("links/start/", views.link_start, name="link-start"),
    path("links/<int:identity_id>/revoke/", views.link_revoke, name="link-revoke"),
    path("connections/", views.connections, name="connections"),
    path("deliveries/", views.deliveries, name="deliveries"),
]
