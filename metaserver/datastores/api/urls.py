from __future__ import annotations

from metaserver.datastores.api.views import (
    DataStoreViewSet,
    HeartbeatView,
    RegisterView,
)
from metaserver.routing import api_route

urlpatterns = [
    api_route(
        "datastores/",
        DataStoreViewSet.as_view({"get": "list", "post": "create"}),
        "datastore-list",
    ),
    api_route(
        "datastores/{name}/",
        DataStoreViewSet.as_view(
            {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
        ),
        "datastore-detail",
    ),
    api_route(
        "datastores/{name}/register", RegisterView.as_view(), "datastore-register"
    ),
    api_route(
        "datastores/{name}/heartbeat", HeartbeatView.as_view(), "datastore-heartbeat"
    ),
]
