"""Changes to folders. Each owns its transaction and keeps `FolderClosure` exact.

Edits of one organization's tree are serialized by locking its root folder row,
so two concurrent moves cannot build a cycle between them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from rest_framework.exceptions import ValidationError

from metaserver.accounts.models import Team
from metaserver.api_errors import Conflict
from metaserver.datasets.models import (
    FOLDER_NAME_MAX_CHARS,
    Dataset,
    Folder,
    FolderClosure,
    FolderGroupObjectPermission,
)

logger = logging.getLogger(__name__)

VIEW_FOLDER = "view_folder"


def clean_folder_name(name: object) -> str:
    """`name` stripped, or ValidationError saying what is wrong with it."""
    if not isinstance(name, str):
        raise ValidationError({"name": ["must be a string"]})
    name = name.strip()
    if not name or len(name) > FOLDER_NAME_MAX_CHARS:
        raise ValidationError(
            {"name": [f"must have 1 to {FOLDER_NAME_MAX_CHARS} characters"]}
        )
    if "/" in name or "\\" in name:
        raise ValidationError({"name": ["must not contain '/' or '\\'"]})
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValidationError({"name": ["must not contain control characters"]})
    if name in (".", ".."):
        raise ValidationError({"name": ["'.' and '..' are not folder names"]})
    return name


def _lock_tree(organization_id: int) -> Folder:
    root = Folder.objects.root_of(organization_id)
    return Folder.objects.select_for_update().get(pk=root.pk)


def _check_sibling_name_free(
    parent: Folder, name: str, *, exclude: Folder | None = None
) -> None:
    siblings = Folder.objects.filter(parent=parent, name=name)
    if exclude is not None:
        siblings = siblings.exclude(pk=exclude.pk)
    if siblings.exists():
        raise ValidationError(
            {"name": [f"a folder named {name!r} already exists in {parent.name!r}"]}
        )


def _check_teams(folder: Folder, teams: Iterable[Team]) -> list[Team]:
    teams = list(teams)
    foreign = [t.name for t in teams if t.organization_id != folder.organization_id]
    if foreign:
        raise ValidationError(
            {"allowed_teams": [f"not teams of this organization: {', '.join(foreign)}"]}
        )
    return teams


def _view_permission() -> Permission:
    return Permission.objects.get(
        codename=VIEW_FOLDER, content_type=ContentType.objects.get_for_model(Folder)
    )


def _replace_teams(folder: Folder, teams: list[Team]) -> None:
    permission = _view_permission()
    FolderGroupObjectPermission.objects.filter(
        content_object=folder, permission=permission
    ).delete()
    FolderGroupObjectPermission.objects.bulk_create(
        FolderGroupObjectPermission(
            content_object=folder, permission=permission, group_id=team.group_id
        )
        for team in {team.pk: team for team in teams}.values()
    )


def do_create_folder(
    parent: Folder, name: object, *, allowed_teams: Iterable[Team] = ()
) -> Folder:
    """A new folder in `parent`; its teams get `view_folder` on it."""
    clean = clean_folder_name(name)
    with transaction.atomic():
        _lock_tree(parent.organization_id)
        _check_sibling_name_free(parent, clean)
        folder = Folder.objects.create(
            organization_id=parent.organization_id, parent=parent, name=clean
        )
        teams = _check_teams(folder, allowed_teams)
        ancestors = FolderClosure.objects.filter(descendant=parent).values_list(
            "ancestor_id", "depth"
        )
        FolderClosure.objects.bulk_create(
            [
                FolderClosure(ancestor=folder, descendant=folder, depth=0),
                *(
                    FolderClosure(ancestor_id=ancestor, descendant=folder, depth=d + 1)
                    for ancestor, d in ancestors
                ),
            ]
        )
        if teams:
            _replace_teams(folder, teams)
    logger.info("created folder %d %r in %d", folder.pk, clean, parent.pk)
    return folder


def do_rename_folder(folder: Folder, name: object) -> Folder:
    clean = clean_folder_name(name)
    parent = folder.parent
    if parent is None:
        raise ValidationError({"name": ["the root folder cannot be renamed"]})
    with transaction.atomic():
        _lock_tree(folder.organization_id)
        _check_sibling_name_free(parent, clean, exclude=folder)
        Folder.objects.filter(pk=folder.pk).update(name=clean)
    folder.name = clean
    return folder


def do_move_folder(folder: Folder, new_parent: Folder) -> Folder:
    """Move `folder` (and everything below) into `new_parent`.

    Moving into itself or one of its own subfolders would make a cycle: 400.
    """
    if folder.is_root:
        raise ValidationError({"parent": ["the root folder cannot be moved"]})
    if new_parent.organization_id != folder.organization_id:
        raise ValidationError({"parent": ["not a folder of this organization"]})
    with transaction.atomic():
        _lock_tree(folder.organization_id)
        subtree = dict(
            FolderClosure.objects.filter(ancestor=folder).values_list(
                "descendant_id", "depth"
            )
        )
        if new_parent.pk in subtree:
            raise ValidationError(
                {"parent": ["a folder cannot be moved into itself or its subfolders"]}
            )
        if folder.parent_id == new_parent.pk:
            return folder
        _check_sibling_name_free(new_parent, folder.name, exclude=folder)
        FolderClosure.objects.filter(descendant_id__in=subtree).exclude(
            ancestor_id__in=subtree
        ).delete()
        ancestors = FolderClosure.objects.filter(descendant=new_parent).values_list(
            "ancestor_id", "depth"
        )
        FolderClosure.objects.bulk_create(
            FolderClosure(
                ancestor_id=ancestor,
                descendant_id=descendant,
                depth=up + down + 1,
            )
            for ancestor, up in ancestors
            for descendant, down in subtree.items()
        )
        Folder.objects.filter(pk=folder.pk).update(parent=new_parent)
    folder.parent = new_parent
    logger.info("moved folder %d into %d", folder.pk, new_parent.pk)
    return folder


def do_set_folder_teams(folder: Folder, teams: Iterable[Team]) -> None:
    """The teams allowed on `folder` (and so on everything below) become `teams`."""
    checked = _check_teams(folder, teams)
    with transaction.atomic():
        _replace_teams(folder, checked)


def do_delete_folder(folder: Folder) -> None:
    """Delete an empty folder; one with subfolders or datasets gives 409."""
    if folder.is_root:
        raise ValidationError({"folder": ["the root folder cannot be deleted"]})
    with transaction.atomic():
        _lock_tree(folder.organization_id)
        children = Folder.objects.filter(parent=folder).count()
        # Counts datasets the caller may not see as well: they would be orphaned.
        datasets = Dataset.objects.filter(folder=folder).count()
        if children or datasets:
            raise Conflict(
                f"folder {folder.name!r} is not empty: {children} subfolder(s), "
                f"{datasets} dataset(s); move or delete them first"
            )
        folder_id = folder.pk
        folder.delete()
    logger.info("deleted folder %d", folder_id)
