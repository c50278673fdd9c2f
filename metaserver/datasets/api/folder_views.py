"""`/api/folders/`: the folder tree of the caller's organizations, and its edits.

Reading shows what `folders_visible_to` allows (ancestors of allowed folders as
breadcrumbs, `is_accessible` false); changing needs `folders_editable_by`. A folder
the caller cannot see is 404; one they see but may not change is 403.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Prefetch, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from metaserver.accounts.access import member_organization_ids
from metaserver.accounts.models import Organization, Team
from metaserver.datasets.access import (
    annotate_folder_access,
    folders_editable_by,
    folders_visible_to,
    get_folder_for_user,
)
from metaserver.datasets.api.serializers import (
    FolderCreateSerializer,
    FolderQuerySerializer,
    FolderSerializer,
    FolderUpdateSerializer,
)
from metaserver.datasets.api.views import editable_folder
from metaserver.datasets.folder_actions import (
    VIEW_FOLDER,
    do_create_folder,
    do_delete_folder,
    do_move_folder,
    do_rename_folder,
    do_set_folder_teams,
)
from metaserver.datasets.models import (
    Folder,
    FolderClosure,
    FolderGroupObjectPermission,
)
from shared.protocol import AccessMode

# A tree of this many folders is one answer; the dashboard draws it whole.
MAX_FOLDERS_LISTED = 10_000


def _with_details(folders: QuerySet[Folder], user: Any) -> QuerySet[Folder]:
    teams = FolderGroupObjectPermission.objects.filter(
        permission__codename=VIEW_FOLDER, group__team__isnull=False
    ).select_related("group__team")
    return annotate_folder_access(
        folders.select_related("organization").prefetch_related(
            Prefetch("group_permissions", queryset=teams)
        ),
        user,
    )


def _ensure_roots(user: Any) -> None:
    """Organizations made outside our actions (Django admin) get their root now."""
    has_root = Exists(Folder.objects.filter(organization=OuterRef("pk"), parent=None))
    without_root = (
        Organization.objects.filter(pk__in=member_organization_ids(user))
        .exclude(has_root)
        .values_list("pk", flat=True)
    )
    for organization_id in without_root:
        Folder.objects.root_of(organization_id)


def _teams(folder: Folder, ids: list[int]) -> list[Team]:
    teams = list(
        Team.objects.filter(pk__in=ids, organization_id=folder.organization_id)
    )
    missing = sorted(set(ids) - {team.pk for team in teams})
    if missing:
        raise ValidationError(
            {"allowed_teams": [f"no such teams: {', '.join(map(str, missing))}"]}
        )
    return teams


def _answer(folder_id: int, user: Any) -> Response:
    """One folder with `path`: its ancestors from the root (the breadcrumbs)."""
    folder = _with_details(Folder.objects.filter(pk=folder_id), user).get()
    data = dict(FolderSerializer(folder).data)
    data["path"] = [
        {"id": pk, "name": name}
        for pk, name in FolderClosure.objects.filter(descendant_id=folder_id)
        .order_by("-depth")
        .values_list("ancestor_id", "ancestor__name")
    ]
    return Response(data)


class FolderListView(APIView):
    permission_classes = (IsAuthenticated,)

    @extend_schema(
        parameters=[
            OpenApiParameter("organization", OpenApiTypes.STR),
            OpenApiParameter("parent", OpenApiTypes.INT, description="children only"),
        ],
        responses=FolderSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        """Every folder the caller sees (flat; `parent` links build the tree)."""
        query = FolderQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        _ensure_roots(request.user)
        folders = folders_visible_to(request.user)
        if query.validated_data.get("organization"):
            folders = folders.filter(
                organization__name=query.validated_data["organization"]
            )
        if query.validated_data.get("parent"):
            folders = folders.filter(parent_id=query.validated_data["parent"])
        folders = _with_details(folders, request.user).order_by(
            "organization__name", "parent_id", "name"
        )
        return Response(FolderSerializer(folders[:MAX_FOLDERS_LISTED], many=True).data)

    @extend_schema(request=FolderCreateSerializer, responses=FolderSerializer)
    def post(self, request: Request) -> Response:
        body = FolderCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        parent = editable_folder(request.user, data["parent"])
        teams = _teams(parent, data.get("allowed_teams", []))
        folder = do_create_folder(parent, data["name"], allowed_teams=teams)
        response = _answer(folder.pk, request.user)
        response.status_code = 201
        return response


class FolderDetailView(APIView):
    permission_classes = (IsAuthenticated,)

    def _editable(self, request: Request, folder_id: int) -> Folder:
        folder = get_folder_for_user(request.user, folder_id, AccessMode.READ)
        if not folders_editable_by(request.user).filter(pk=folder.pk).exists():
            raise PermissionDenied(f"you may not change folder {folder.name!r}")
        return folder

    @extend_schema(responses=FolderSerializer)
    def get(self, request: Request, folder_id: str) -> Response:
        folder = get_folder_for_user(request.user, int(folder_id), AccessMode.READ)
        return _answer(folder.pk, request.user)

    @extend_schema(request=FolderUpdateSerializer, responses=FolderSerializer)
    def patch(self, request: Request, folder_id: str) -> Response:
        """Rename (`name`), move (`parent`) and set `allowed_teams`, all or none."""
        folder = self._editable(request, int(folder_id))
        body = FolderUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        new_parent = None
        if "parent" in data and data["parent"] != folder.parent_id:
            new_parent = editable_folder(request.user, data["parent"])
        teams = (
            _teams(folder, data["allowed_teams"]) if "allowed_teams" in data else None
        )
        with transaction.atomic():
            if "name" in data:
                do_rename_folder(folder, data["name"])
            if new_parent is not None:
                do_move_folder(folder, new_parent)
            if teams is not None:
                do_set_folder_teams(folder, teams)
        return _answer(folder.pk, request.user)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, folder_id: str) -> Response:
        do_delete_folder(self._editable(request, int(folder_id)))
        return Response(status=204)
