"""`/api/organizations/`: the caller's organizations and their roles there."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from metaserver.accounts.access import (
    get_organization_for_user,
    organizations_visible_to,
)
from metaserver.accounts.actions import do_create_organization, do_update_organization
from metaserver.accounts.api.errors import action_errors
from metaserver.accounts.api.serializers import (
    OrganizationCreateSerializer,
    OrganizationSerializer,
    OrganizationUpdateSerializer,
)
from metaserver.accounts.models import Organization
from metaserver.pagination import StrictPageNumberPagination
from shared.protocol import AccessMode


class OrganizationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Members read their organizations; admins rename them; superusers create them."""

    serializer_class = OrganizationSerializer
    pagination_class = StrictPageNumberPagination
    lookup_field = "name"

    def get_queryset(self) -> Any:
        return organizations_visible_to(self.request.user).order_by("name")

    def get_object(self) -> Organization:
        mode = AccessMode.READ if self.action == "retrieve" else AccessMode.ADMINISTRATE
        return get_organization_for_user(self.request.user, self.kwargs["name"], mode)

    @extend_schema(
        request=OrganizationCreateSerializer, responses={201: OrganizationSerializer}
    )
    def create(self, request: Request) -> Response:
        if not request.user.is_superuser:
            raise exceptions.PermissionDenied(
                "only superusers can create organizations"
            )
        body = OrganizationCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        with action_errors("name"):
            organization = do_create_organization(
                body.validated_data["name"], body.validated_data["display_name"]
            )
        created = get_organization_for_user(request.user, organization.name)
        return Response(
            OrganizationSerializer(created).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        request=OrganizationUpdateSerializer, responses=OrganizationSerializer
    )
    def partial_update(self, request: Request, name: str) -> Response:
        organization = self.get_object()
        body = OrganizationUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        with action_errors("display_name"):
            do_update_organization(
                organization, display_name=body.validated_data["display_name"]
            )
        return Response(OrganizationSerializer(organization).data)
