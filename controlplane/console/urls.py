from django.urls import path

from controlplane.console import views

app_name = "console"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("verify/", views.verify, name="verify"),
    path("ledger/", views.ledger, name="ledger"),
    path("ledger/<int:seq>/", views.event, name="event"),
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
]
