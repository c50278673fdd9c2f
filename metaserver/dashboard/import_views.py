"""The import screen of a dataset found on disk without datasource-properties.json.

The datastore inferred what it could from the folders (layers, formats, bounding
boxes) and reported the dataset as `needs_review`. A person supplies what cannot
be inferred (voxel size, largest segment ids) and, optionally, a display name;
"Import" writes the datasource to the datastore's disk through
`do_update_dataset` and the dataset becomes active. Editors only (WRITE).
"""

from __future__ import annotations

import logging
from typing import Any, Final

from django.contrib import messages
from django.http import HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from metaserver.dashboard.datasource_forms import (
    DataForm,
    build_datasource,
    fill_from_post,
    form_from_datasource,
)
from metaserver.dashboard.organizations import layout_context
from metaserver.dashboard.settings_tabs import save_changes
from metaserver.dashboard.settings_views import dataset_for, settings_url
from metaserver.dashboard.summaries import summarize
from metaserver.dashboard.tokens import viewer_token_for
from metaserver.dashboard.views import HtmxRequest, login_required
from metaserver.datasets.models import Dataset, Status
from shared.protocol import AccessMode

logger = logging.getLogger(__name__)

# What `infer_datasource` assumes when the data declares no voxel size.
INFERRED_DEFAULT_FACTOR: Final = ("1", "1", "1")


def _import_form(dataset: Dataset) -> DataForm:
    form = form_from_datasource(dataset.datasource, show_boxes=False)
    if tuple(f.value for f in form.scale) == INFERRED_DEFAULT_FACTOR:
        # A guess, not a measurement: the person has to type the real one.
        for f in form.scale:
            f.value = ""
    return form


def _render(
    request: HtmxRequest,
    dataset: Dataset,
    form: DataForm | None,
    *,
    display_name: str = "",
    display_name_errors: list[str] | None = None,
    form_error: str = "",
    status: int = 200,
) -> HttpResponse:
    importable = dataset.datasource is not None and dataset.status in (
        Status.NEEDS_REVIEW,
        Status.UNUSABLE,
    )
    context: dict[str, Any] = {
        **layout_context(request),
        "section": "datasets",
        "dataset": dataset,
        "summary": summarize(dataset, viewer_token_for(request)),
        "importable": importable,
        "form": form if importable else None,
        "display_name": display_name,
        "display_name_errors": display_name_errors or [],
        "form_error": form_error,
        "error_count": (form.error_count if form else 0)
        + len(display_name_errors or []),
        "action_url": request.path,
        "settings_url": settings_url(dataset),
    }
    return render(request, "dashboard/import.html", context, status=status)


def _go(request: HtmxRequest, url: str) -> HttpResponse:
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return HttpResponseRedirect(url)


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def dataset_import(
    request: HtmxRequest, organization: str, name: str
) -> HttpResponseBase:
    """Show what the datastore inferred; POST imports with the person's values."""
    dataset = dataset_for(request, organization, name, AccessMode.WRITE)
    title = dataset.display_name or dataset.name
    if dataset.status == Status.ACTIVE:
        messages.info(request, f"{title} is already imported; these are its settings.")
        return _go(request, settings_url(dataset))
    if request.method != "POST":
        return _render(request, dataset, _import_form(dataset))
    if dataset.datasource is None or dataset.status == Status.CONVERTING:
        return _render(request, dataset, None, status=409)
    form = fill_from_post(_import_form(dataset), request.POST)
    display_name = request.POST.get("display_name", "")
    changes: dict[str, Any] = {"datasource": build_datasource(dataset.datasource, form)}
    if display_name.strip():
        changes["display_name"] = display_name
    problems, server = save_changes(dataset, changes)
    if not problems and not server:
        imported = display_name.strip() or title
        messages.success(
            request,
            f"Imported {imported}: it is active now. Choose who may see it here.",
        )
        return _go(request, settings_url(dataset, tab="sharing"))
    name_errors = [p["message"] for p in problems.pop("display_name", [])]
    form.attach([p for items in problems.values() for p in items])
    return _render(
        request,
        dataset,
        form,
        display_name=display_name,
        display_name_errors=name_errors,
        form_error=server,
    )


urlpatterns = [
    path(
        "datasets/<str:organization>/<str:name>/import/",
        dataset_import,
        name="dataset-import",
    ),
]
