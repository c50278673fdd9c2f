from __future__ import annotations

from metaserver.routing import api_route
from metaserver.uploads.api.views import UploadFinishedView, UploadViewSet

urlpatterns = [
    api_route(
        "uploads/",
        UploadViewSet.as_view({"get": "list", "post": "create"}),
        "upload-list",
    ),
    api_route(
        "uploads/{id}/", UploadViewSet.as_view({"get": "retrieve"}), "upload-detail"
    ),
    api_route(
        "uploads/{id}/cancel/",
        UploadViewSet.as_view({"post": "cancel"}),
        "upload-cancel",
    ),
    api_route(
        "datastores/{name}/uploads/{id}/finished",
        UploadFinishedView.as_view(),
        "datastore-upload-finished",
    ),
]
