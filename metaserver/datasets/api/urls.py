from __future__ import annotations

from metaserver.datasets.api.views import (
    DatasetReportView,
    DatasetViewSet,
    ValidateAccessView,
)
from metaserver.routing import api_route

urlpatterns = [
    api_route("datasets/", DatasetViewSet.as_view({"get": "list"}), "dataset-list"),
    api_route(
        "datasets/{organization}/{name}/",
        DatasetViewSet.as_view({"get": "retrieve"}),
        "dataset-detail",
    ),
    api_route(
        "datastores/{name}/datasets", DatasetReportView.as_view(), "datastore-report"
    ),
    api_route(
        "datastores/{name}/validate-access",
        ValidateAccessView.as_view(),
        "datastore-validate-access",
    ),
]
