"""`/api/uploads/`: reserve, look at and cancel uploads; datastores report outcomes."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from metaserver.accounts.access import get_organization_for_user, teams_of_organization
from metaserver.datasets.access import get_folder_for_user
from metaserver.datasets.models import Folder
from metaserver.datastores.api.base import DatastoreOnlyView
from metaserver.pagination import StrictPageNumberPagination
from metaserver.uploads.access import (
    check_may_upload,
    check_teams_for_upload,
    get_upload_for_user,
    uploads_visible_to,
)
from metaserver.uploads.actions import Reservation, do_cancel_upload, do_reserve_upload
from metaserver.uploads.api.serializers import (
    UploadOutcomeAnswerSerializer,
    UploadOutcomeSerializer,
    UploadReservedSerializer,
    UploadReserveSerializer,
    UploadSerializer,
)
from metaserver.uploads.models import Upload
from metaserver.uploads.outcomes import do_record_upload_outcome
from shared.protocol import AccessMode

logger = logging.getLogger(__name__)

UPLOAD_ID_PARAMETER = OpenApiParameter(
    "id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="the upload's id"
)
# A reservation lists up to VOXELHUB_UPLOAD_MAX_FILES paths with their digests.
RESERVATION_MAX_BYTES = 16 * 2**20


class UploadViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Reserve an upload, list and look at uploads, cancel one."""

    serializer_class = UploadSerializer
    pagination_class = StrictPageNumberPagination
    max_body_bytes = RESERVATION_MAX_BYTES

    def get_queryset(self) -> QuerySet[Upload]:
        return (
            uploads_visible_to(self.request.user)
            .select_related("organization", "user", "datastore")
            .prefetch_related("allowed_teams")
            .order_by("-created")
        )

    @extend_schema(
        request=UploadReserveSerializer, responses={201: UploadReservedSerializer}
    )
    def create(self, request: Request) -> Response:
        """Reserve `name` in `organization` for `files` ({path, size, sha256});
        answers the datastore to send the chunks to and a short-lived upload
        token (shown once)."""
        body = UploadReserveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        organization = get_organization_for_user(request.user, data["organization"])
        folder: Folder | None = None
        if data.get("folder") is not None:
            folder = get_folder_for_user(request.user, data["folder"], AccessMode.WRITE)
            if folder.organization_id != organization.pk:
                raise exceptions.ValidationError(
                    {"folder": [f"folder {folder.pk} is not in {organization.name}"]}
                )
        check_may_upload(request.user, organization, folder)
        teams, unknown = teams_of_organization(organization, data["allowed_teams"])
        if unknown:
            raise exceptions.ValidationError(
                {"allowed_teams": [f"no such teams in {organization.name}: {unknown}"]}
            )
        check_teams_for_upload(request.user, organization, teams)
        upload, token = do_reserve_upload(
            Reservation(
                organization=organization,
                user=request.user,
                name=data["name"],
                files=[dict(f) for f in data["files"]],
                folder=folder,
                teams=teams,
                voxel_size=data.get("voxel_size"),
                unit=data["unit"],
                layer_hints=[dict(h) for h in data["layers"]],
                data_format=data["data_format"],
                raw=data.get("raw"),
                datastore_name=data.get("datastore"),
            )
        )
        answer = UploadSerializer(upload).data
        answer["upload_token"] = token
        return Response(answer, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[UPLOAD_ID_PARAMETER], responses=UploadSerializer)
    def retrieve(self, request: Request, id: str) -> Response:
        return Response(UploadSerializer(get_upload_for_user(request.user, id)).data)

    @extend_schema(
        parameters=[UPLOAD_ID_PARAMETER], request=None, responses=UploadSerializer
    )
    def cancel(self, request: Request, id: str) -> Response:
        """Cancel a reserved upload; its data on the datastore are removed."""
        upload = get_upload_for_user(request.user, id)
        do_cancel_upload(upload, by=request.user)
        return Response(UploadSerializer(upload).data)


class UploadFinishedView(DatastoreOnlyView):
    """The datastore holding an upload reports what became of it."""

    max_body_bytes = 17 * 2**20  # a datasource may be up to 16 MiB

    @extend_schema(
        parameters=[UPLOAD_ID_PARAMETER],
        request=UploadOutcomeSerializer,
        responses=UploadOutcomeAnswerSerializer,
    )
    def post(self, request: Request, name: str, id: str, **kwargs: Any) -> Response:
        datastore = self.datastore(request)
        try:
            key = uuid.UUID(id)
        except ValueError:
            raise exceptions.NotFound("upload not found") from None
        upload = Upload.objects.filter(pk=key, datastore=datastore).first()
        if upload is None:
            raise exceptions.NotFound("upload not found")
        body = UploadOutcomeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        answer = do_record_upload_outcome(
            upload, data["status"], data["reason"], data["datasource"]
        )
        return Response(answer)
