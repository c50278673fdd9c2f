from __future__ import annotations

from metaserver.accounts.api.viewer_token_view import ViewerTokenView
from metaserver.datasets.api.folder_views import FolderDetailView, FolderListView
from metaserver.datasets.api.views import (
    DatasetReportView,
    DatasetViewSet,
    MoveDatasetsView,
    TagListView,
    ValidateAccessView,
)
from metaserver.routing import api_route

urlpatterns = [
    api_route("datasets/", DatasetViewSet.as_view({"get": "list"}), "dataset-list"),
    api_route(
        "datasets/{organization}/{name}/pending-datasource/",
        DatasetViewSet.as_view({"post": "pending_datasource"}),
        "dataset-pending-datasource",
    ),
    api_route("datasets/move/", MoveDatasetsView.as_view(), "dataset-move"),
    api_route(
        "datasets/{organization}/{name}/",
        DatasetViewSet.as_view(
            {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
        ),
        "dataset-detail",
    ),
    api_route(
        "datasets/{organization}/{name}/sharing-token/",
        DatasetViewSet.as_view(
            {"get": "sharing_token", "post": "revoke_sharing_token"}
        ),
        "dataset-sharing-token",
    ),
    # Lives here, not in accounts' urls, only to keep that module's history simple.
    api_route("auth/viewer-token/", ViewerTokenView.as_view(), "auth-viewer-token"),
    api_route("tags/", TagListView.as_view(), "tag-list"),
    api_route("folders/", FolderListView.as_view(), "folder-list"),
    api_route("folders/{folder_id:int}/", FolderDetailView.as_view(), "folder-detail"),
    api_route(
        "datastores/{name}/datasets", DatasetReportView.as_view(), "datastore-report"
    ),
    api_route(
        "datastores/{name}/validate-access",
        ValidateAccessView.as_view(),
        "datastore-validate-access",
    ),
]
