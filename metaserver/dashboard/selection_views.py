"""Changes to the datasets picked in the table: move them to a folder, edit tags.

Moving is one POST for the whole selection (`datasets` repeated as "org/name",
`folder`); tags are added or removed one at a time in the details sidebar and
validated like the API's PATCH (`DatasetUpdateSerializer`). Datasets come from the
gates: unseen ones are 404, seen but not editable 403.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import messages
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.http import require_POST
from django_htmx.http import trigger_client_event
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError

from metaserver.accounts.access import AnyUser
from metaserver.dashboard.folder_views import (
    answer_error,
    error_message,
    refusing_errors,
    wants_json,
)
from metaserver.dashboard.listing import may_edit_dataset, tag_editor_context
from metaserver.dashboard.views import HtmxRequest, login_required
from metaserver.datasets.access import (
    datasets_managed_by,
    datasets_visible_to,
    get_dataset_for_user,
)
from metaserver.datasets.api.serializers import (
    DatasetUpdateSerializer,
    MoveDatasetsSerializer,
)
from metaserver.datasets.api.views import editable_folder
from metaserver.datasets.dataset_actions import do_move_datasets, do_update_dataset
from metaserver.datasets.models import Dataset
from shared.protocol import AccessMode

logger = logging.getLogger(__name__)

# The table refreshes itself when it hears this (tags and folders changed).
TABLE_STALE = "datasets-moved"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@require_POST
@login_required
@refusing_errors
def move_datasets(request: HtmxRequest) -> HttpResponse:
    """Move every dataset named in `datasets` into the editable folder `folder`."""
    body = MoveDatasetsSerializer(
        data={
            "datasets": request.POST.getlist("datasets"),
            "folder": request.POST.get("folder", ""),
        }
    )
    body.is_valid(raise_exception=True)
    folder = editable_folder(request.user, body.validated_data["folder"])
    wanted = {tuple(item.split("/", 1)) for item in body.validated_data["datasets"]}
    condition = Q(pk__in=[])
    for organization, name in wanted:
        condition |= Q(organization__name=organization, name=name)
    seen = {
        (org, name)
        for org, name in datasets_visible_to(request.user)
        .filter(condition)
        .values_list("organization__name", "name")
    }
    missing = sorted(f"{o}/{n}" for o, n in wanted - seen)
    if missing:
        raise NotFound(f"datasets not found: {', '.join(missing[:20])}")
    movable = list(
        datasets_managed_by(request.user)
        .filter(condition)
        .select_related("organization")
    )
    refused = sorted(seen - {(d.organization.name, d.name) for d in movable})
    if refused:
        names = ", ".join(f"{o}/{n}" for o, n in refused[:20])
        raise PermissionDenied(f"you may not move {names}")
    moved = do_move_datasets(movable, folder)
    text = f"Moved {_plural(moved, 'dataset')} to “{folder.name}”."
    if wants_json(request):
        return JsonResponse({"moved": moved, "message": text, "folder": folder.pk})
    messages.success(request, text)
    return HttpResponseRedirect(f"{reverse('dashboard:home')}?folder={folder.pk}")


def _editable_dataset(user: AnyUser, organization: str, name: str) -> Dataset:
    """404 for what the user does not see, 403 for what they see but may not edit."""
    dataset = get_dataset_for_user(user, organization, name, AccessMode.READ)
    if not may_edit_dataset(user, dataset):
        raise PermissionDenied("you may not change this dataset's tags")
    return dataset


def _new_tags(dataset: Dataset, request: HttpRequest) -> list[Any]:
    names = [tag.name for tag in dataset.tags.all()]
    removed = request.POST.get("remove")
    if removed is not None:
        return [name for name in names if name != removed]
    return [*names, request.POST.get("add", "")]


@require_POST
@login_required
def dataset_tags(request: HtmxRequest, organization: str, name: str) -> HttpResponse:
    """Add (`add`) or remove (`remove`) one tag; answers the redrawn tag editor."""
    try:
        dataset = _editable_dataset(request.user, organization, name)
    except (NotFound, PermissionDenied) as e:
        return answer_error(request, e)
    typed = request.POST.get("add", "")
    body = DatasetUpdateSerializer(
        data={"tags": _new_tags(dataset, request)}, dataset=dataset
    )
    if not body.is_valid():
        _, text = error_message(ValidationError(body.errors))
        if not request.htmx:
            messages.error(request, text)
            return HttpResponseRedirect(_details_url(dataset))
        context = tag_editor_context(request.user, dataset, error=text, typed=typed)
        return render(request, "dashboard/_tags.html", context, status=400)
    do_update_dataset(dataset, {"tags": body.validated_data["tags"]})
    if not request.htmx:
        messages.success(request, "Tags saved.")
        return HttpResponseRedirect(_details_url(dataset))
    response = render(
        request, "dashboard/_tags.html", tag_editor_context(request.user, dataset)
    )
    return trigger_client_event(response, TABLE_STALE)


def _details_url(dataset: Dataset) -> str:
    return str(
        reverse(
            "dashboard:dataset",
            kwargs={"organization": dataset.organization.name, "name": dataset.name},
        )
    )


urlpatterns = [
    path("datasets/move/", move_datasets, name="datasets-move"),
    path(
        "datasets/<str:organization>/<str:name>/tags/",
        dataset_tags,
        name="dataset-tags",
    ),
]
