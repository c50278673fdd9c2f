"""URLs: the REST API under /api/, the admin under /admin/, the dashboard elsewhere."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

import metaserver.schema  # noqa: F401 (registers the OpenAPI auth extensions)
from metaserver.routing import api_route

api_urlpatterns = [
    path("", include("metaserver.accounts.api.urls")),
    path("", include("metaserver.datastores.api.urls")),
    path("", include("metaserver.datasets.api.urls")),
    path("", include("metaserver.jobs.api.urls")),
    path("", include("metaserver.uploads.api.urls")),
    api_route("schema/", SpectacularAPIView.as_view(), "schema"),
    # Login and logout pages of the browsable API (session authentication).
    path("session/", include("rest_framework.urls")),
]

urlpatterns = [
    path("api/", include(api_urlpatterns)),
    path("admin/", admin.site.urls),
    path("", include("metaserver.dashboard.urls")),
]

handler400 = "metaserver.api_errors.bad_request"
handler403 = "metaserver.api_errors.permission_denied"
handler404 = "metaserver.api_errors.not_found"
handler500 = "metaserver.api_errors.server_error"
