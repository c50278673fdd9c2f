"""The gates for datasets and folders: the only place that decides who sees what.

Views, serializers and the validate-access endpoint never filter `Dataset.objects`
or `Folder.objects` themselves. Missing and forbidden look the same (404).

Who sees what (ARCHITECTURE.md, "Who may do what"):
- superusers: everything;
- admins and dataset managers: every dataset and folder of their organizations;
- team managers: datasets allowed to a team they manage, directly or through any
  ancestor folder, in any status, and they edit those;
- members: active datasets allowed to one of their teams, directly or through any
  ancestor folder;
- everyone, anonymous included: active public datasets;
- holders of a dataset's sharing token: that dataset, read-only.
Deleting datasets needs admin or dataset manager (ADMINISTRATE).

A team allowed on a folder (guardian's `view_folder` on the team's group) reaches
every folder below it through `FolderClosure`, so cumulative access is one join.
"""

from __future__ import annotations

from typing import Any

from django.db.models import (
    Exists,
    OuterRef,
    Q,
    QuerySet,
)
from rest_framework.exceptions import NotFound

from metaserver.accounts.access import (
    AnyUser,
    is_logged_in,
    managed_organization_ids,
    member_organization_ids,
    user_can_administrate_organization,
    user_can_manage_datasets,
    user_for_api_token,
)
from metaserver.accounts.models import Organization, TeamMembership
from metaserver.accounts.viewer_tokens import VIEWER_TOKEN_PREFIX, user_for_viewer_token
from metaserver.datasets.models import (
    SHARING_TOKEN_PREFIX,
    Dataset,
    Folder,
    FolderClosure,
    FolderGroupObjectPermission,
    Status,
)
from metaserver.datastores.models import DataStore
from shared.protocol import AccessMode

__all__ = [
    "check_sharing_token",
    "datasets_for_user",
    "datasets_managed_by",
    "datasets_visible_to",
    "folders_editable_by",
    "folders_visible_to",
    "get_dataset_for_user",
    "get_folder_for_user",
    "readable_folder_ids",
    "token_may_access",
    "user_can_administrate_organization",
    "user_can_manage_datasets",
    "user_may_access_organization",
]

_PUBLIC = Q(is_public=True, status=Status.ACTIVE)
VIEW_FOLDER = "view_folder"
MAX_TOKEN_CHARS = 200


def _granted_folder_ids(user: AnyUser, *, managers_only: bool) -> QuerySet[Any, Any]:
    """Folders on which a team of `user` (one they manage) is allowed (a subquery)."""
    membership: dict[str, Any] = {"group__team__memberships__user_id": user.pk}
    if managers_only:
        membership["group__team__memberships__is_manager"] = True
    return FolderGroupObjectPermission.objects.filter(
        permission__codename=VIEW_FOLDER,
        permission__content_type__app_label="datasets",
        **membership,
    ).values("content_object_id")


def readable_folder_ids(
    user: AnyUser, *, managers_only: bool = False
) -> QuerySet[Any, Any]:
    """Folders at or below a folder allowed to a team of `user` (a subquery)."""
    return FolderClosure.objects.filter(
        ancestor_id__in=_granted_folder_ids(user, managers_only=managers_only)
    ).values("descendant_id")


def _allowed_through_teams(user: AnyUser, *, managers_only: bool) -> Q:
    """Datasets of `user`'s organizations allowed to their teams, or via a folder."""
    direct = TeamMembership.objects.filter(
        user_id=user.pk,
        team__organization_id=OuterRef("organization_id"),
        team__allowed_datasets=OuterRef("pk"),
    )
    if managers_only:
        direct = direct.filter(is_manager=True)
    return Q(organization_id__in=member_organization_ids(user)) & (
        Exists(direct)
        | Q(folder_id__in=readable_folder_ids(user, managers_only=managers_only))
    )


def datasets_visible_to(user: AnyUser | None) -> QuerySet[Dataset]:
    """Every dataset `user` may read, as one queryset with one SQL predicate."""
    datasets = Dataset.objects.all()
    if user is None or not is_logged_in(user):
        return datasets.filter(_PUBLIC)
    if user.is_superuser:
        return datasets
    return datasets.filter(
        Q(organization_id__in=managed_organization_ids(user))
        | (Q(status=Status.ACTIVE) & _allowed_through_teams(user, managers_only=False))
        | _allowed_through_teams(user, managers_only=True)
        | _PUBLIC
    )


def datasets_managed_by(user: AnyUser | None) -> QuerySet[Dataset]:
    """Every dataset `user` may change (WRITE): managers, and team managers' ones."""
    datasets = Dataset.objects.all()
    if user is None or not is_logged_in(user):
        return datasets.none()
    if user.is_superuser:
        return datasets
    return datasets.filter(
        Q(organization_id__in=managed_organization_ids(user))
        | _allowed_through_teams(user, managers_only=True)
    )


def datasets_administrated_by(user: AnyUser | None) -> QuerySet[Dataset]:
    """Every dataset `user` may delete (ADMINISTRATE): admins and dataset managers."""
    datasets = Dataset.objects.all()
    if user is None or not is_logged_in(user):
        return datasets.none()
    if user.is_superuser:
        return datasets
    return datasets.filter(organization_id__in=managed_organization_ids(user))


def datasets_for_user(user: AnyUser | None, mode: AccessMode) -> QuerySet[Dataset]:
    """The datasets `user` may access in `mode`."""
    if mode is AccessMode.READ:
        return datasets_visible_to(user)
    if mode is AccessMode.WRITE:
        return datasets_managed_by(user)
    return datasets_administrated_by(user)


def get_dataset_for_user(
    user: AnyUser | None,
    organization_name: str,
    dataset_name: str,
    mode: AccessMode,
) -> Dataset:
    """The dataset `organization_name/dataset_name` if `user` may access it in `mode`.

    Raises DRF's NotFound whether it does not exist or is forbidden, so callers
    cannot tell the two apart. Organization and datastore come along (one query).
    """
    allowed = datasets_for_user(user, mode).select_related("organization", "datastore")
    dataset = allowed.filter(
        organization__name=organization_name, name=dataset_name
    ).first()
    if dataset is None:
        raise NotFound(f"dataset {organization_name}/{dataset_name} not found")
    return dataset


def user_may_access_organization(
    user: AnyUser | None, organization: Organization, mode: AccessMode
) -> bool:
    """Organization-wide questions (no dataset): read = member, else manage datasets."""
    if user is None or not is_logged_in(user):
        return False
    if mode is AccessMode.READ:
        return (
            bool(user.is_superuser)
            or Organization.objects.filter(
                pk=organization.pk, pk__in=member_organization_ids(user)
            ).exists()
        )
    return user_can_manage_datasets(user, organization)


def check_sharing_token(
    token: str | None, organization_name: str, dataset_name: str
) -> Dataset | None:
    """The active dataset `organization_name/dataset_name` if `token` is its token."""
    if not token or not token.startswith(SHARING_TOKEN_PREFIX):
        return None
    if len(token) > MAX_TOKEN_CHARS:
        return None
    return (
        Dataset.objects.select_related("organization", "datastore")
        .filter(
            sharing_token=token,
            organization__name=organization_name,
            name=dataset_name,
            status=Status.ACTIVE,
        )
        .first()
    )


def token_may_access(
    token: str | None,
    organization_name: str,
    dataset_name: str | None,
    mode: AccessMode,
    *,
    datastore: DataStore,
) -> bool:
    """The answer of validate-access: may the holder of `token` do `mode`?

    No token is an anonymous caller (public datasets only); an unknown or revoked
    token gets no, even for public data. Sharing tokens read their one dataset and
    nothing else; viewer tokens (the dashboard's, short-lived) read what their user
    reads; API tokens act as their user. With a dataset, it must be one `datastore`
    serves: a node only learns about its own datasets. Without a dataset the
    question is about the organization (`user_may_access_organization`).
    """
    user: AnyUser | None = None
    if token and token.startswith(SHARING_TOKEN_PREFIX):
        if dataset_name is None or mode is not AccessMode.READ:
            return False
        shared = check_sharing_token(token, organization_name, dataset_name)
        return shared is not None and shared.datastore_id == datastore.pk
    if token and token.startswith(VIEWER_TOKEN_PREFIX):
        if mode is not AccessMode.READ:
            return False
        user = user_for_viewer_token(token)
        if user is None:
            return False
    elif token:
        user = user_for_api_token(token)
        if user is None:
            return False
    if dataset_name is None:
        organization = Organization.objects.filter(name=organization_name).first()
        return organization is not None and user_may_access_organization(
            user, organization, mode
        )
    return (
        datasets_for_user(user, mode)
        .filter(
            organization__name=organization_name,
            name=dataset_name,
            datastore=datastore,
        )
        .exists()
    )


def folders_visible_to(user: AnyUser | None) -> QuerySet[Folder]:
    """Folders `user` sees in the tree: with full access, or as a breadcrumb.

    Managers see all their organizations' folders. Others see the folders at or
    below one allowed to their teams, the ancestors of those (names only), the
    folders holding a dataset allowed to them directly, and their organizations'
    roots. `annotate_folder_access` tells which ones they may open.
    """
    folders = Folder.objects.all()
    if user is None or not is_logged_in(user):
        return folders.none()
    if user.is_superuser:
        return folders
    members = member_organization_ids(user)
    reachable = Q(descendant_id__in=readable_folder_ids(user)) | Q(
        descendant_id__in=datasets_visible_to(user)
        .filter(organization_id__in=members)
        .values("folder_id")
    )
    return folders.filter(
        Q(organization_id__in=managed_organization_ids(user))
        | Q(
            organization_id__in=members,
            pk__in=FolderClosure.objects.filter(reachable).values("ancestor_id"),
        )
        | Q(organization_id__in=members, parent__isnull=True)
    )


def folders_editable_by(user: AnyUser | None) -> QuerySet[Folder]:
    """Folders `user` may change: create in, rename, move, delete, set teams."""
    folders = Folder.objects.all()
    if user is None or not is_logged_in(user):
        return folders.none()
    if user.is_superuser:
        return folders
    return folders.filter(
        Q(organization_id__in=managed_organization_ids(user))
        | Q(
            organization_id__in=member_organization_ids(user),
            pk__in=readable_folder_ids(user, managers_only=True),
        )
    )


def annotate_folder_access(
    folders: QuerySet[Folder], user: AnyUser | None
) -> QuerySet[Folder]:
    """Adds `is_accessible` (contents visible) and `is_editable` to each folder."""
    if user is None or not is_logged_in(user):
        return folders.annotate(is_accessible=Q(pk=None), is_editable=Q(pk=None))
    if user.is_superuser:
        return folders.annotate(is_accessible=~Q(pk=None), is_editable=~Q(pk=None))
    managed = Q(organization_id__in=managed_organization_ids(user))
    return folders.annotate(
        is_accessible=managed | Q(pk__in=readable_folder_ids(user)),
        is_editable=managed | Q(pk__in=readable_folder_ids(user, managers_only=True)),
    )


def get_folder_for_user(
    user: AnyUser | None, folder_id: int, mode: AccessMode
) -> Folder:
    """The folder `folder_id` if `user` sees it (READ) or may edit it (else).

    Raises NotFound for missing and forbidden alike.
    """
    folders = (
        folders_visible_to(user)
        if mode is AccessMode.READ
        else (folders_editable_by(user))
    )
    folder = folders.select_related("organization").filter(pk=folder_id).first()
    if folder is None:
        raise NotFound(f"folder {folder_id} not found")
    return folder
