"""The project's URLs plus views that crash, for the error-format tests."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from metaserver.config.urls import urlpatterns as project_urlpatterns


@api_view(["GET"])
@permission_classes([AllowAny])
def crash_in_drf(request: Request) -> Response:
    raise RuntimeError("secret internal detail")


def crash_in_django(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("secret internal detail")


urlpatterns = [
    path("api/crash/drf/", crash_in_drf),
    path("api/crash/django/", crash_in_django),
    path("crash/", crash_in_django),
    *project_urlpatterns,
]

handler400 = "metaserver.api_errors.bad_request"
handler403 = "metaserver.api_errors.permission_denied"
handler404 = "metaserver.api_errors.not_found"
handler500 = "metaserver.api_errors.server_error"
