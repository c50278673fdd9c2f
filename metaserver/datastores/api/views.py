"""Datastores: administration for people, registration and heartbeat for nodes."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from metaserver.accounts.access import is_logged_in, user_is_any_admin
from metaserver.api_errors import Conflict
from metaserver.datastores.actions import (
    do_create_datastore,
    do_delete_datastore,
    do_record_heartbeat,
    do_register_datastore,
    do_update_datastore,
)
from metaserver.datastores.api.base import DatastoreOnlyView
from metaserver.datastores.api.serializers import (
    DataStoreCreatedSerializer,
    DataStoreCreateSerializer,
    DataStoreSerializer,
    OkSerializer,
    RegisteredSerializer,
    RegisterSerializer,
)
from metaserver.datastores.authentication import DatastoreKeyAuthentication
from metaserver.datastores.models import DataStore

logger = logging.getLogger(__name__)


class DatastoreAdministration(BasePermission):
    """Organization admins may look; only superusers change datastores.

    Datastores are shared by every organization of the installation, so changing
    one is an installation-wide decision.
    """

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not is_logged_in(user):
            return False
        if request.method in SAFE_METHODS:
            return user_is_any_admin(user)
        return bool(user.is_superuser)


class DataStoreViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """`/api/datastores/` and `/api/datastores/{name}/`."""

    serializer_class = DataStoreSerializer
    permission_classes = (DatastoreAdministration,)
    lookup_field = "name"
    lookup_value_regex = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"

    def get_queryset(self) -> QuerySet[DataStore]:
        return DataStore.objects.order_by("name")

    @extend_schema(
        request=DataStoreCreateSerializer, responses={201: DataStoreCreatedSerializer}
    )
    def create(self, request: Request) -> Response:
        body = DataStoreCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            datastore, key = do_create_datastore(
                data["name"],
                data["url"],
                public_url=data["public_url"],
                allows_upload=data["allows_upload"],
                key=data.get("key"),
            )
        except DjangoValidationError as e:
            raise serializers.ValidationError(_messages(e)) from None
        answer = DataStoreCreatedSerializer(datastore).data
        answer["key"] = key
        return Response(answer, status=status.HTTP_201_CREATED)

    @extend_schema(request=DataStoreSerializer, responses=DataStoreSerializer)
    def partial_update(self, request: Request, name: str) -> Response:
        datastore = self.get_object()
        body = DataStoreSerializer(datastore, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            do_update_datastore(
                datastore,
                url=data.get("url"),
                public_url=data.get("public_url"),
                allows_upload=data.get("allows_upload"),
            )
        except DjangoValidationError as e:
            raise serializers.ValidationError(_messages(e)) from None
        return Response(DataStoreSerializer(datastore).data)

    def destroy(self, request: Request, name: str) -> Response:
        datastore = self.get_object()
        try:
            do_delete_datastore(datastore)
        except DjangoValidationError as e:
            raise Conflict("; ".join(e.messages)) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


def _messages(error: DjangoValidationError) -> Any:
    return error.message_dict if hasattr(error, "error_dict") else error.messages


class RegisterView(DatastoreOnlyView):
    """A datastore announces itself at start; answers a fresh metaserver token.

    The key alone authenticates here: the node has no shared secret to sign with
    before this answer gives it one.
    """

    authentication_classes = (DatastoreKeyAuthentication,)

    @extend_schema(request=RegisterSerializer, responses=RegisteredSerializer)
    def post(self, request: Request, name: str) -> Response:
        datastore = self.datastore(request)
        body = RegisterSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            token = do_register_datastore(
                datastore,
                data["url"],
                data.get("public_url") or "",
                data["allows_upload"],
                version=data["version"],
            )
        except DjangoValidationError as e:
            raise serializers.ValidationError(_messages(e)) from None
        return Response({"name": datastore.name, "metaserver_token": token})


class HeartbeatView(DatastoreOnlyView):
    """The datastore is alive."""

    @extend_schema(request=None, responses=OkSerializer)
    def post(self, request: Request, name: str) -> Response:
        do_record_heartbeat(self.datastore(request))
        return Response({"ok": True})
