"""Changes to a user's own view of a dataset: save the last view, forget it."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from metaserver.accounts.models import User
from metaserver.datasets.models import Dataset, UserViewConfiguration
from metaserver.datasets.view_configuration import view_configuration_problems
from metaserver.datasets.view_hierarchy import layer_names_of

logger = logging.getLogger(__name__)


def user_view_configuration(user: Any, dataset: Dataset) -> dict[str, Any] | None:
    """The configuration `user` last viewed `dataset` with, or None."""
    if not getattr(user, "is_authenticated", False):
        return None
    return (
        UserViewConfiguration.objects.filter(user_id=user.pk, dataset_id=dataset.pk)
        .values_list("configuration", flat=True)
        .first()
    )


def do_save_user_view_configuration(
    user: User, dataset: Dataset, configuration: Any
) -> UserViewConfiguration:
    """Store `configuration` as `user`'s view of `dataset`, replacing the last one.

    Raises ValidationError with the problems (JSON paths) of a bad configuration.
    The caller has checked that `user` may read `dataset`.
    """
    problems = view_configuration_problems(
        configuration, layer_names_of(dataset.datasource)
    )
    if configuration is None:
        problems = [{"path": "(root)", "message": "must be an object"}]
    if problems:
        raise ValidationError(problems)
    # One INSERT ... ON CONFLICT: the viewer saves often, and two tabs may race.
    (saved,) = UserViewConfiguration.objects.bulk_create(
        [
            UserViewConfiguration(
                user=user,
                dataset=dataset,
                configuration=configuration,
                updated=timezone.now(),
            )
        ],
        update_conflicts=True,
        unique_fields=["user", "dataset"],
        update_fields=["configuration", "updated"],
    )
    return saved


def do_clear_user_view_configuration(user: User, dataset: Dataset) -> bool:
    """Forget `user`'s own view of `dataset`; True if there was one."""
    with transaction.atomic():
        deleted, _ = UserViewConfiguration.objects.filter(
            user_id=user.pk, dataset_id=dataset.pk
        ).delete()
    if deleted:
        logger.info("user %s reset their view of %s", user.pk, dataset)
    return bool(deleted)
