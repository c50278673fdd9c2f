"""Gates for uploads: who may upload where, who sees and cancels which upload.

Uploading creates a dataset, so it needs dataset-managing rights (ARCHITECTURE's
role table): admins and dataset managers of the organization upload into any
folder, with any of its teams; team managers (members who manage a team) upload
into folders they may edit (`folders_editable_by`: at or below a folder allowed
to a team they manage, so they keep seeing the dataset), naming only teams they
manage. Members, outsiders and anonymous callers may not.

An upload is visible to the user who reserved it and to the organization's
admins and dataset managers (and superusers); the same people may cancel it.
Missing and invisible look the same (404).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from django.db.models import Q, QuerySet
from rest_framework.exceptions import NotFound, PermissionDenied

from metaserver.accounts.access import (
    AnyUser,
    is_logged_in,
    managed_organization_ids,
    member_organization_ids,
    user_can_manage_datasets,
)
from metaserver.accounts.models import Organization, Team, TeamMembership
from metaserver.datasets.access import folders_editable_by
from metaserver.datasets.models import Folder
from metaserver.uploads.models import Upload


def uploads_visible_to(user: AnyUser) -> QuerySet[Upload]:
    """The uploads `user` may see (one SQL predicate)."""
    if not is_logged_in(user):
        return Upload.objects.none()
    if user.is_superuser:
        return Upload.objects.all()
    return Upload.objects.filter(
        Q(organization_id__in=managed_organization_ids(user))
        | Q(user_id=user.pk, organization_id__in=member_organization_ids(user))
    )


def get_upload_for_user(user: AnyUser, upload_id: str) -> Upload:
    """Upload `upload_id` if `user` sees it; NotFound otherwise (also for junk ids)."""
    try:
        key = uuid.UUID(str(upload_id))
    except ValueError:
        raise NotFound("upload not found") from None
    upload = (
        uploads_visible_to(user)
        .select_related("organization", "datastore", "user")
        .filter(pk=key)
        .first()
    )
    if upload is None:
        raise NotFound("upload not found")
    return upload


def check_may_upload(
    user: AnyUser, organization: Organization, folder: Folder | None
) -> None:
    """PermissionDenied unless `user` may create a dataset in `folder` (None: the
    organization's root folder)."""
    if user_can_manage_datasets(user, organization):
        return
    manages_a_team = TeamMembership.objects.filter(
        user_id=user.pk, team__organization=organization, is_manager=True
    ).exists()
    if not manages_a_team:
        raise PermissionDenied(
            f"uploading to {organization.name} needs the admin or dataset manager "
            "role, or managing a team"
        )
    target = folder or Folder.objects.root_of(organization.pk)
    if not folders_editable_by(user).filter(pk=target.pk).exists():
        raise PermissionDenied(
            "team managers upload into a folder one of their teams may access; "
            "name it in `folder`"
        )


def check_teams_for_upload(
    user: AnyUser, organization: Organization, teams: Sequence[Team]
) -> None:
    """Team managers may only give the new dataset to teams they manage."""
    if user_can_manage_datasets(user, organization) or not teams:
        return
    managed = set(
        TeamMembership.objects.filter(
            user_id=user.pk, team__in=teams, is_manager=True
        ).values_list("team_id", flat=True)
    )
    foreign = sorted(team.name for team in teams if team.pk not in managed)
    if foreign:
        raise PermissionDenied(
            "team managers may only allow teams they manage: " + ", ".join(foreign)
        )
