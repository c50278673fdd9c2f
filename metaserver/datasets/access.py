"""The gates for datasets: the only place that decides who sees or edits which.

Views, serializers and the validate-access endpoint never filter `Dataset.objects`
themselves. Missing and forbidden look the same (404) to the caller.

Who sees what:
- superusers: everything;
- admins and dataset managers: every dataset of their organizations, any status;
- members: active datasets of their organizations allowed to one of their teams;
- everyone, anonymous included: active public datasets.
Writing and administrating need admin or dataset manager (team managers later).
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q, QuerySet
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
from metaserver.datasets.models import Dataset, Status
from metaserver.datastores.models import DataStore
from shared.protocol import AccessMode

__all__ = [
    "datasets_for_user",
    "datasets_managed_by",
    "datasets_visible_to",
    "get_dataset_for_user",
    "token_may_access",
    "user_can_administrate_organization",
    "user_can_manage_datasets",
    "user_may_access_organization",
]

_PUBLIC = Q(is_public=True, status=Status.ACTIVE)


def datasets_visible_to(user: AnyUser | None) -> QuerySet[Dataset]:
    """Every dataset `user` may read, as one queryset with one SQL predicate."""
    datasets = Dataset.objects.all()
    if user is None or not is_logged_in(user):
        return datasets.filter(_PUBLIC)
    if user.is_superuser:
        return datasets
    allowed_through_team = Exists(
        TeamMembership.objects.filter(
            user_id=user.pk,
            team__organization_id=OuterRef("organization_id"),
            team__allowed_datasets=OuterRef("pk"),
        )
    )
    return datasets.filter(
        Q(organization_id__in=managed_organization_ids(user))
        | (
            Q(status=Status.ACTIVE, organization_id__in=member_organization_ids(user))
            & allowed_through_team
        )
        | _PUBLIC
    )


def datasets_managed_by(user: AnyUser | None) -> QuerySet[Dataset]:
    """Every dataset `user` may change (WRITE and ADMINISTRATE)."""
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
    return datasets_managed_by(user)


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
    token gets no, even for public data. With a dataset, it must be one `datastore`
    serves: a node only learns about its own datasets. Without a dataset the
    question is about the organization (`user_may_access_organization`).
    """
    user: AnyUser | None = None
    if token:
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
