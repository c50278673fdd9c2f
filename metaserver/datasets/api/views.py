"""Datasets for people (list, detail) and for datastores (report, validate-access)."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from metaserver.api_errors import Conflict, PayloadTooLarge
from metaserver.datasets.access import (
    datasets_for_user,
    get_dataset_for_user,
    token_may_access,
)
from metaserver.datasets.actions import ReportConflict, do_apply_dataset_report
from metaserver.datasets.api.serializers import (
    AccessAnswerSerializer,
    DatasetListQuerySerializer,
    DatasetReportSerializer,
    DatasetSerializer,
    ReportAnswerSerializer,
    ValidateAccessSerializer,
)
from metaserver.datasets.models import Dataset
from metaserver.datasets.reports import ReportError, TooManyDatasets, parse_report
from metaserver.datastores.api.base import DatastoreOnlyView
from metaserver.pagination import StrictPageNumberPagination
from shared.protocol import MAX_ACCESS_CACHE_SECONDS, AccessMode

logger = logging.getLogger(__name__)


class DatasetAccessMixin:
    """Decides, per viewset action, which datasets the caller may touch (netbox-style).

    Every queryset and every single object come from the gates in
    `metaserver.datasets.access`; an action without an entry in `access_modes`
    fails closed instead of showing everything.
    """

    access_modes: ClassVar[dict[str, AccessMode]] = {
        "list": AccessMode.READ,
        "retrieve": AccessMode.READ,
        "partial_update": AccessMode.WRITE,
        "destroy": AccessMode.ADMINISTRATE,
    }
    request: Request
    action: str | None
    kwargs: dict[str, Any]

    def access_mode(self) -> AccessMode:
        mode = self.access_modes.get(self.action or "")
        if mode is None:
            raise ImproperlyConfigured(f"no access mode for action {self.action!r}")
        return mode

    def get_queryset(self) -> QuerySet[Dataset]:
        return datasets_for_user(self.request.user, self.access_mode()).select_related(
            "organization", "datastore"
        )

    def get_object(self) -> Dataset:
        return get_dataset_for_user(
            self.request.user,
            self.kwargs["organization"],
            self.kwargs["name"],
            self.access_mode(),
        )


class DatasetViewSet(
    DatasetAccessMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """`/api/datasets/` and `/api/datasets/{organization}/{name}/`.

    Anonymous callers see public datasets, so reading needs no login.
    """

    serializer_class = DatasetSerializer
    pagination_class = StrictPageNumberPagination
    permission_classes = (AllowAny,)

    def filter_queryset(self, queryset: QuerySet[Dataset]) -> QuerySet[Dataset]:
        if self.action != "list":
            return queryset
        query = DatasetListQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        if params.get("q"):
            text = params["q"]
            queryset = queryset.filter(
                Q(name__icontains=text) | Q(display_name__icontains=text)
            )
        if params.get("organization"):
            queryset = queryset.filter(organization__name=params["organization"])
        if params.get("status"):
            queryset = queryset.filter(status=params["status"])
        return queryset.order_by("organization__name", "name")

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "q", OpenApiTypes.STR, description="in name or display name"
            ),
            OpenApiParameter("organization", OpenApiTypes.STR),
            OpenApiParameter("status", OpenApiTypes.STR),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)


class DatasetReportView(DatastoreOnlyView):
    """A datastore's complete list of datasets found in one scan."""

    @property
    def max_body_bytes(self) -> int:
        return int(settings.VOXELHUB_MAX_REPORT_BYTES)

    @extend_schema(request=DatasetReportSerializer, responses=ReportAnswerSerializer)
    def post(self, request: Request, name: str) -> Response:
        datastore = self.datastore(request)
        try:
            reports = parse_report(
                request.data, max_datasets=settings.VOXELHUB_MAX_REPORT_DATASETS
            )
        except TooManyDatasets as e:
            raise PayloadTooLarge(str(e)) from None
        except ReportError as e:
            raise serializers.ValidationError(e.as_json()) from None
        try:
            result = do_apply_dataset_report(datastore, reports)
        except ReportConflict:
            raise Conflict(
                "a concurrent report created the same dataset; send the report again"
            ) from None
        logger.info(
            "report of %s: %d created, %d updated, %d unusable, %d ignored",
            datastore.name,
            result["created"],
            result["updated"],
            result["unusable"],
            len(result["ignored"]),
        )
        return Response(result)


class ValidateAccessView(DatastoreOnlyView):
    """May the holder of a token read, write or administrate? Datastores cache a yes."""

    @extend_schema(request=ValidateAccessSerializer, responses=AccessAnswerSerializer)
    def post(self, request: Request, name: str) -> Response:
        body = ValidateAccessSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        allowed = token_may_access(
            data.get("token") or None,
            data["organization"],
            data.get("dataset") or None,
            AccessMode(data["mode"]),
            datastore=self.datastore(request),
        )
        return Response(
            {
                "allowed": allowed,
                "cache_seconds": MAX_ACCESS_CACHE_SECONDS if allowed else 0,
            }
        )
