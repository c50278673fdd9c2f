"""The folder tree of the datasets home and its edits: new, rename, move, teams, delete.

Edits are small POSTs made by `folders.js` with `Accept: application/json`: the
answer is the redrawn tree and a message, or the action's own error message
(`{"error": ..., "field": ...}` with its status: 400 bad name or move, 403 seen but
not editable, 404 unseen, 409 not empty). Without JavaScript the same POSTs
redirect back to the list with the message. Folders come from the gates of
`metaserver.datasets.access`; changes go through `folder_actions`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any

from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.views.decorators.http import require_POST, require_safe
from rest_framework.exceptions import APIException, NotFound, ValidationError

from metaserver.accounts.access import AnyUser, teams_visible_to
from metaserver.accounts.models import Team
from metaserver.dashboard.listing import tree_context
from metaserver.dashboard.organizations import current_organization
from metaserver.dashboard.views import HtmxRequest, login_required
from metaserver.datasets.access import get_folder_for_user
from metaserver.datasets.api.views import editable_folder
from metaserver.datasets.folder_actions import (
    VIEW_FOLDER,
    do_create_folder,
    do_delete_folder,
    do_move_folder,
    do_rename_folder,
    do_set_folder_teams,
)
from metaserver.datasets.models import Folder, FolderGroupObjectPermission
from shared.protocol import AccessMode

logger = logging.getLogger(__name__)

MAX_TEAMS = 1000
_FIELD_LABELS = {
    "name": "Name",
    "allowed_teams": "Teams",
    "parent": "Parent folder",
    "datasets": "Datasets",
    "folder": "Folder",
}
# DRF's generic messages do not say which field they are about.
_GENERIC = ("This ", "A valid", "Ensure ", "Expected ", "Not a valid", "Invalid ")

ActionView = Callable[..., HttpResponse]


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def error_message(error: APIException) -> tuple[str, str]:
    """(field, readable message) of a DRF exception from a gate or an action."""
    detail: Any = error.detail
    field = ""
    if isinstance(detail, Mapping) and detail:
        field, detail = next(iter(detail.items()))
        field = str(field)
    while isinstance(detail, list | tuple) and detail:
        detail = detail[0]
    text = str(detail).strip() or "The request was refused."
    if text.startswith(("must", "not ")) and field in _FIELD_LABELS:
        text = f"{_FIELD_LABELS[field]} {text}"
    elif field in _FIELD_LABELS and text.startswith(_GENERIC):
        text = f"{_FIELD_LABELS[field]}: {text[0].lower()}{text[1:]}"
    text = text[0].upper() + text[1:]
    if not text.endswith((".", "!", "?")):
        text += "."
    return field, text


def answer_error(request: HttpRequest, error: APIException) -> HttpResponse:
    field, text = error_message(error)
    if wants_json(request):
        return JsonResponse({"error": text, "field": field}, status=error.status_code)
    if getattr(request, "htmx", False) or request.method in ("GET", "HEAD"):
        # htmx does not swap errors (dashboard.js toasts the status instead), and
        # a refused GET has no form to go back to.
        return HttpResponse(text, status=error.status_code, content_type="text/plain")
    messages.error(request, text)
    return HttpResponseRedirect(reverse("dashboard:home"))


def refusing_errors(view: ActionView) -> ActionView:
    """Turns the gates' and actions' exceptions into answers the page can show."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except APIException as e:
            return answer_error(request, e)

    return wrapped


def _tree_html(request: HttpRequest) -> str:
    organization = current_organization(request).current
    context = {
        **tree_context(request.user, organization),
        "organization": organization,
    }
    return str(render_to_string("dashboard/_folder_tree.html", context, request))


def _done(
    request: HttpRequest, text: str, *, folder: int | None = None
) -> HttpResponse:
    """Success: the redrawn tree and `text` for a toast, or back to the list."""
    if wants_json(request):
        return JsonResponse(
            {"message": text, "folder": folder, "tree": _tree_html(request)}
        )
    messages.success(request, text)
    home = reverse("dashboard:home")
    return HttpResponseRedirect(f"{home}?folder={folder}" if folder else home)


def _folder_id(value: str | None, field: str) -> int:
    if value is None or not value.strip().isdigit() or len(value.strip()) > 18:
        raise ValidationError({field: ["must be a folder id"]})
    return int(value)


@require_safe
def tree(request: HtmxRequest) -> HttpResponse:
    """The tree alone, to redraw it (anonymous visitors get the public entry)."""
    organization = current_organization(request).current
    return render(
        request,
        "dashboard/_folder_tree.html",
        {**tree_context(request.user, organization), "organization": organization},
    )


@require_POST
@login_required
@refusing_errors
def create_folder(request: HtmxRequest) -> HttpResponse:
    """A new folder in `parent` (an editable folder) named `name`."""
    parent = editable_folder(
        request.user, _folder_id(request.POST.get("parent"), "parent")
    )
    folder = do_create_folder(parent, request.POST.get("name", ""))
    return _done(request, f"Folder “{folder.name}” created.", folder=folder.pk)


@require_POST
@login_required
@refusing_errors
def rename_folder(request: HtmxRequest, folder_id: int) -> HttpResponse:
    folder = editable_folder(request.user, folder_id)
    old = folder.name
    do_rename_folder(folder, request.POST.get("name", ""))
    return _done(request, f"Folder “{old}” renamed to “{folder.name}”.")


@require_POST
@login_required
@refusing_errors
def move_folder(request: HtmxRequest, folder_id: int) -> HttpResponse:
    """Move a folder (with everything below) into `parent`; 400 into itself."""
    folder = editable_folder(request.user, folder_id)
    parent = editable_folder(
        request.user, _folder_id(request.POST.get("parent"), "parent")
    )
    do_move_folder(folder, parent)
    return _done(request, f"Folder “{folder.name}” moved into “{parent.name}”.")


@require_POST
@login_required
@refusing_errors
def delete_folder(request: HtmxRequest, folder_id: int) -> HttpResponse:
    """Delete an empty folder; the action's 409 says what is still inside."""
    folder = editable_folder(request.user, folder_id)
    do_delete_folder(folder)
    return _done(request, f"Folder “{folder.name}” deleted.")


def _organization_teams(user: AnyUser, folder: Folder) -> QuerySet[Team]:
    return teams_visible_to(user).filter(organization_id=folder.organization_id)


def _allowed_team_ids(folder: Folder) -> set[int]:
    """The teams with `view_folder` on `folder` itself (not inherited)."""
    return set(
        FolderGroupObjectPermission.objects.filter(
            content_object_id=folder.pk,
            permission__codename=VIEW_FOLDER,
            group__team__isnull=False,
        ).values_list("group__team__id", flat=True)
    )


def _chosen_teams(user: AnyUser, folder: Folder, values: list[str]) -> list[Team]:
    if len(values) > MAX_TEAMS or not all(v.isdigit() and len(v) < 19 for v in values):
        raise ValidationError({"allowed_teams": ["must be team ids"]})
    ids = {int(v) for v in values}
    teams = list(_organization_teams(user, folder).filter(pk__in=ids))
    missing = sorted(ids - {team.pk for team in teams})
    if missing:
        raise ValidationError(
            {"allowed_teams": [f"no such teams: {', '.join(map(str, missing))}"]}
        )
    return teams


@login_required
@refusing_errors
def folder_teams(request: HtmxRequest, folder_id: int) -> HttpResponse:
    """GET: a form with the organization's teams; POST: allow exactly those."""
    if request.method not in ("GET", "HEAD", "POST"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD, POST"})
    folder = editable_folder(request.user, folder_id)
    if request.method == "POST":
        teams = _chosen_teams(request.user, folder, request.POST.getlist("team"))
        do_set_folder_teams(folder, teams)
        names = ", ".join(sorted(team.name for team in teams)) or "no team"
        return _done(request, f"Folder “{folder.name}” is now allowed to: {names}.")
    allowed = _allowed_team_ids(folder)
    inherited = _inherited_from(request.user, folder)
    return render(
        request,
        "dashboard/_folder_teams.html",
        {
            "folder": folder,
            "teams": [
                (team, team.pk in allowed)
                for team in _organization_teams(request.user, folder).order_by("name")
            ],
            "inherited": inherited,
        },
    )


def _inherited_from(user: AnyUser, folder: Folder) -> str:
    """The parent's name, to say that its teams see this folder as well."""
    if folder.parent_id is None:
        return ""
    try:
        return str(get_folder_for_user(user, folder.parent_id, AccessMode.READ).name)
    except NotFound:
        return ""


urlpatterns = [
    path("folders/", tree, name="folder-tree"),
    path("folders/new/", create_folder, name="folder-create"),
    path("folders/<int:folder_id>/rename/", rename_folder, name="folder-rename"),
    path("folders/<int:folder_id>/move/", move_folder, name="folder-move"),
    path("folders/<int:folder_id>/teams/", folder_teams, name="folder-teams"),
    path("folders/<int:folder_id>/delete/", delete_folder, name="folder-delete"),
]
