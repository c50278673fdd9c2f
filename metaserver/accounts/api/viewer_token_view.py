"""`POST /api/auth/viewer-token/`: a short-lived token for the dashboard's viewer."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from metaserver.accounts.viewer_tokens import (
    VIEWER_TOKEN_MAX_AGE_SECONDS,
    make_viewer_token,
)


class ViewerTokenSerializer(serializers.Serializer):
    token = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="seconds")


class ViewerTokenView(APIView):
    """Datastores accept it like an API token, for reading only, until it expires."""

    permission_classes = (IsAuthenticated,)

    @extend_schema(request=None, responses=ViewerTokenSerializer)
    def post(self, request: Request) -> Response:
        return Response(
            {
                "token": make_viewer_token(request.user),
                "expires_in": VIEWER_TOKEN_MAX_AGE_SECONDS,
            }
        )
