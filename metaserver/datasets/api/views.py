"""Datasets for people (list, detail) and for datastores (report, validate-access)."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Coalesce, Lower, NullIf
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from metaserver.api_errors import Conflict, PayloadTooLarge
from metaserver.datasets.access import (
    check_sharing_token,
    datasets_for_user,
    datasets_managed_by,
    datasets_visible_to,
    folders_editable_by,
    get_dataset_for_user,
    get_folder_for_user,
    token_may_access,
)
from metaserver.datasets.actions import ReportConflict, do_apply_dataset_report
from metaserver.datasets.api.list_rows import FastJSONRenderer, list_rows
from metaserver.datasets.api.serializers import (
    DATASET_ORDERINGS,
    DATASET_PREFETCH,
    AccessAnswerSerializer,
    DatasetListItemSerializer,
    DatasetListQuerySerializer,
    DatasetReportSerializer,
    DatasetSerializer,
    DatasetUpdateSerializer,
    DeletedSerializer,
    MoveDatasetsSerializer,
    MovedSerializer,
    PendingDatasourceActionSerializer,
    ReportAnswerSerializer,
    SharingTokenSerializer,
    TagCountSerializer,
    ValidateAccessSerializer,
)
from metaserver.datasets.dataset_actions import (
    do_apply_pending_datasource,
    do_delete_dataset,
    do_discard_pending_datasource,
    do_get_sharing_token,
    do_move_datasets,
    do_revoke_sharing_token,
    do_update_dataset,
)
from metaserver.datasets.models import (
    SHARING_TOKEN_PREFIX,
    Dataset,
    Folder,
    FolderClosure,
    Tag,
)
from metaserver.datasets.reports import ReportError, TooManyDatasets, parse_report
from metaserver.datastores.api.base import DatastoreOnlyView
from metaserver.pagination import StrictPageNumberPagination
from shared.protocol import MAX_ACCESS_CACHE_SECONDS, USER_TOKEN_HEADER, AccessMode

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
        "sharing_token": AccessMode.WRITE,
        "revoke_sharing_token": AccessMode.WRITE,
        "pending_datasource": AccessMode.WRITE,
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
        return (
            datasets_for_user(self.request.user, self.access_mode())
            .select_related("organization", "datastore")
            .prefetch_related(*DATASET_PREFETCH)
        )

    def get_object(self) -> Dataset:
        organization, name = self.kwargs["organization"], self.kwargs["name"]
        mode = self.access_mode()
        if mode is AccessMode.READ:
            # A sharing token opens its one dataset, read-only, without login.
            shared = check_sharing_token(
                sharing_token_of(self.request), organization, name
            )
            if shared is not None:
                return shared
        return get_dataset_for_user(self.request.user, organization, name, mode)


def sharing_token_of(request: Request) -> str | None:
    """A sharing token sent as `?token=`, `?sharingToken=` (WEBKNOSSOS's name) or
    in the `X-Auth-Token` header."""
    token = (
        request.query_params.get("token")
        or request.query_params.get("sharingToken")
        or request.headers.get(USER_TOKEN_HEADER)
    )
    return token if token and token.startswith(SHARING_TOKEN_PREFIX) else None


def _apply_list_filters(
    queryset: QuerySet[Dataset], params: dict[str, Any]
) -> QuerySet[Dataset]:
    if params.get("q"):
        text = params["q"]
        queryset = queryset.filter(
            Q(name__icontains=text)
            | Q(display_name__icontains=text)
            | Q(description__icontains=text)
        )
    if params.get("organization"):
        queryset = queryset.filter(organization__name=params["organization"])
    if params.get("status"):
        queryset = queryset.filter(status=params["status"])
    if params.get("is_public") is not None:
        queryset = queryset.filter(is_public=params["is_public"])
    for tag in params.get("tag") or ():
        # One EXISTS per tag: every tag must match, and no duplicate rows.
        queryset = queryset.filter(
            Exists(
                Tag.datasets.through.objects.filter(
                    dataset=OuterRef("pk"), tag__name=tag
                )
            )
        )
    if params.get("folder"):
        folder = params["folder"]
        if params.get("recursive"):
            queryset = queryset.filter(
                folder_id__in=FolderClosure.objects.filter(ancestor_id=folder).values(
                    "descendant_id"
                )
            )
        else:
            queryset = queryset.filter(folder_id=folder)
    ordering = params.get("ordering") or "name"
    descending = ordering.startswith("-")
    key = ordering.lstrip("-")
    if key == "display_name":
        expression = Lower(Coalesce(NullIf("display_name", Value("")), "name"))
        ordered = expression.desc() if descending else expression.asc()
        return queryset.order_by(ordered, "name", "organization_id")
    if key == "name":
        return queryset.order_by(ordering, "organization_id")
    return queryset.order_by(ordering, "name", "organization_id")


class NotWithSharingToken(BasePermission):
    """A sharing token presented for a change is a 403, not a login prompt."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        logged_in = bool(request.user and request.user.is_authenticated)
        if not logged_in and sharing_token_of(request) is not None:
            # Raised here: DRF would turn a plain False into 401 for anonymous.
            raise PermissionDenied("sharing tokens are read-only")
        return True


class DatasetViewSet(
    DatasetAccessMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """`/api/datasets/` and `/api/datasets/{organization}/{name}/`.

    Anonymous callers see public datasets, so reading needs no login; changing
    needs a login and the gates decide the rest.
    """

    serializer_class = DatasetSerializer
    pagination_class = StrictPageNumberPagination
    permission_classes = (AllowAny,)
    renderer_classes = (FastJSONRenderer, BrowsableAPIRenderer)

    def get_permissions(self) -> list[Any]:
        if self.action in ("list", "retrieve"):
            return [AllowAny()]
        return [NotWithSharingToken(), IsAuthenticated()]

    def filter_queryset(self, queryset: QuerySet[Dataset]) -> QuerySet[Dataset]:
        if self.action != "list":
            return queryset
        query = DatasetListQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        params = dict(query.validated_data)
        # An empty `?tag=` (a cleared filter box) filters nothing.
        params["tag"] = [t for t in params.get("tag") or () if t.strip()]
        if params.get("recursive") and not params.get("folder"):
            raise serializers.ValidationError({"recursive": ["only with folder=<id>"]})
        return _apply_list_filters(queryset, params)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "q",
                OpenApiTypes.STR,
                description="in name, display name or description",
            ),
            OpenApiParameter("organization", OpenApiTypes.STR),
            OpenApiParameter("status", OpenApiTypes.STR),
            OpenApiParameter(
                "tag", OpenApiTypes.STR, many=True, description="repeat: all must match"
            ),
            OpenApiParameter("folder", OpenApiTypes.INT),
            OpenApiParameter(
                "recursive", OpenApiTypes.BOOL, description="include subfolders"
            ),
            OpenApiParameter("is_public", OpenApiTypes.BOOL),
            OpenApiParameter("ordering", OpenApiTypes.STR, enum=DATASET_ORDERINGS),
        ],
        responses=DatasetListItemSerializer(many=True),
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # Page through narrow rows (ids) and load the wide ones (datasources) only
        # for the page: sorting thousands of visible datasets at full width costs
        # more than the extra query.
        ordered = self.filter_queryset(self.get_queryset())
        paginator = self.paginator
        assert isinstance(paginator, StrictPageNumberPagination)  # noqa: S101
        page_ids = paginator.paginate_ids(
            ordered.values_list("pk", flat=True), request, self
        )
        return self.get_paginated_response(list_rows(page_ids))

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "token", OpenApiTypes.STR, description="a sharing token (vxs_...)"
            )
        ]
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(request=DatasetUpdateSerializer, responses=DatasetSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        dataset = self.get_object()
        body = DatasetUpdateSerializer(data=request.data, dataset=dataset)
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        if "folder" in changes:
            changes["folder"] = editable_folder(request.user, changes["folder"])
            if changes["folder"].organization_id != dataset.organization_id:
                raise serializers.ValidationError(
                    {"folder": ["not a folder of the dataset's organization"]}
                )
        do_update_dataset(dataset, changes)
        fresh = self.get_queryset().get(pk=dataset.pk)
        return Response(DatasetSerializer(fresh).data)

    @extend_schema(responses=DeletedSerializer)
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(do_delete_dataset(self.get_object()))

    @extend_schema(responses=SharingTokenSerializer)
    def sharing_token(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        dataset = self.get_object()
        token = do_get_sharing_token(dataset)
        return Response({"token": token, "dataset": str(dataset)})

    @extend_schema(request=None, responses=SharingTokenSerializer)
    def revoke_sharing_token(
        self, request: Request, *args: Any, **kwargs: Any
    ) -> Response:
        dataset = self.get_object()
        token = do_revoke_sharing_token(dataset)
        return Response({"token": token, "dataset": str(dataset)})

    @extend_schema(
        request=PendingDatasourceActionSerializer, responses=DatasetSerializer
    )
    def pending_datasource(
        self, request: Request, *args: Any, **kwargs: Any
    ) -> Response:
        """Apply the datasource found on disk, or discard it (write ours back)."""
        dataset = self.get_object()
        body = PendingDatasourceActionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if body.validated_data["action"] == "apply":
            do_apply_pending_datasource(dataset)
        else:
            do_discard_pending_datasource(dataset)
        fresh = self.get_queryset().get(pk=dataset.pk)
        return Response(DatasetSerializer(fresh).data)


def editable_folder(user: Any, folder_id: int) -> Folder:
    """A folder the caller may put things into: 404 unseen, 403 seen but not theirs."""
    folder = get_folder_for_user(user, folder_id, AccessMode.READ)
    if not folders_editable_by(user).filter(pk=folder.pk).exists():
        raise PermissionDenied(f"you may not change folder {folder.name!r}")
    return folder


class MoveDatasetsView(APIView):
    """`POST /api/datasets/move/`: move several datasets into a folder at once."""

    permission_classes = (IsAuthenticated,)

    @extend_schema(request=MoveDatasetsSerializer, responses=MovedSerializer)
    def post(self, request: Request) -> Response:
        body = MoveDatasetsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        folder = editable_folder(request.user, body.validated_data["folder"])
        wanted = {tuple(item.split("/", 1)) for item in body.validated_data["datasets"]}
        condition = Q(pk__in=[])
        for organization, name in wanted:
            condition |= Q(organization__name=organization, name=name)
        found = list(
            datasets_managed_by(request.user)
            .filter(condition)
            .select_related("organization")
        )
        missing = wanted - {(d.organization.name, d.name) for d in found}
        if missing:
            raise NotFound(
                "datasets not found: "
                + ", ".join(sorted(f"{o}/{n}" for o, n in missing)[:20])
            )
        return Response({"moved": do_move_datasets(found, folder)})


class TagListView(APIView):
    """`GET /api/tags/`: the tags of the datasets the caller sees, with counts."""

    permission_classes = (AllowAny,)

    @extend_schema(
        parameters=[OpenApiParameter("organization", OpenApiTypes.STR)],
        responses=TagCountSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        visible = datasets_visible_to(request.user)
        organization = request.query_params.get("organization")
        if organization:
            visible = visible.filter(organization__name=organization[:200])
        tags = (
            Tag.objects.filter(datasets__in=visible)
            .values("name")
            .annotate(datasets=Count("datasets"))
            .order_by("name")
        )
        merged: dict[str, int] = {}
        for row in tags:
            merged[row["name"]] = merged.get(row["name"], 0) + row["datasets"]
        return Response([{"name": n, "datasets": c} for n, c in merged.items()])


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
