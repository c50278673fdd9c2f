from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path

from metaserver.dashboard import (
    add_views,
    admin_views,
    folder_views,
    import_views,
    job_views,
    selection_views,
    settings_views,
    viewer_views,
    views,
)

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
    # Before datasets/<organization>/<name>/, which "datasets/add/sample/" matches.
    path("", include(add_views.urlpatterns)),
    path(
        "datasets/<str:organization>/<str:name>/",
        views.dataset_details,
        name="dataset",
    ),
    path(
        "datasets/<str:organization>/<str:name>/status/",
        views.dataset_status,
        name="dataset-status",
    ),
    path("admin-pages/datastores/", views.datastores, name="datastores"),
    path("admin-pages/", include(admin_views.urlpatterns)),
    path("", include(job_views.urlpatterns)),
    path("", include(settings_views.urlpatterns)),
    path("", include(import_views.urlpatterns)),
    path("", include(viewer_views.urlpatterns)),
    path("", include(folder_views.urlpatterns)),
    path("", include(selection_views.urlpatterns)),
]
