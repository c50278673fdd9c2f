"""Log in for a token, and who am I."""

from __future__ import annotations

import logging

from django.contrib.auth import authenticate
from django.db.models import Prefetch
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from metaserver.accounts.actions import do_create_api_token
from metaserver.accounts.api.serializers import (
    CurrentUserSerializer,
    TokenRequestSerializer,
    TokenSerializer,
)
from metaserver.accounts.models import Membership, TeamMembership, User

logger = logging.getLogger(__name__)


@method_decorator(sensitive_post_parameters("password"), name="dispatch")
class ObtainTokenView(APIView):
    """Username and password in, a new API token out (shown this once)."""

    # No session: a login must not depend on, or be forged through, a cookie.
    authentication_classes = ()
    permission_classes = (AllowAny,)

    def get_authenticate_header(self, request: Request) -> str:
        return "Token"

    @extend_schema(request=TokenRequestSerializer, responses=TokenSerializer)
    def post(self, request: Request) -> Response:
        body = TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        user = authenticate(
            request._request, username=data["username"], password=data["password"]
        )
        if user is None or not user.is_active:
            logger.info("failed token request for %r", data["username"][:150])
            raise exceptions.AuthenticationFailed("invalid username or password")
        return Response({"token": do_create_api_token(user, data["name"])})


class CurrentUserView(APIView):
    """The caller, their organizations with roles, and their teams."""

    permission_classes = (IsAuthenticated,)

    @extend_schema(responses=CurrentUserSerializer)
    def get(self, request: Request) -> Response:
        user = (
            User.objects.filter(pk=request.user.pk)
            .prefetch_related(
                Prefetch(
                    "memberships",
                    Membership.objects.select_related("organization").order_by(
                        "organization__name"
                    ),
                ),
                Prefetch(
                    "team_memberships",
                    TeamMembership.objects.select_related(
                        "team__organization"
                    ).order_by("team__organization__name", "team__name"),
                ),
            )
            .get()
        )
        return Response(CurrentUserSerializer(user).data)
