from __future__ import annotations

from metaserver.jobs.api.views import JobProgressView, JobViewSet
from metaserver.routing import api_route

urlpatterns = [
    api_route("jobs/", JobViewSet.as_view({"get": "list"}), "job-list"),
    api_route("jobs/{id:int}/", JobViewSet.as_view({"get": "retrieve"}), "job-detail"),
    api_route(
        "jobs/{id:int}/cancel/", JobViewSet.as_view({"post": "cancel"}), "job-cancel"
    ),
    api_route("jobs/{id:int}/progress", JobProgressView.as_view(), "job-progress"),
]
