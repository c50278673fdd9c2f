from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from metaserver.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="dashboard/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("organization/", views.switch_organization, name="switch-organization"),
    path("datasets/scan/", views.scan_disk, name="scan"),
    path(
        "datasets/<str:organization>/<str:name>/",
        views.dataset_details,
        name="dataset",
    ),
    path("admin-pages/datastores/", views.datastores, name="datastores"),
]
