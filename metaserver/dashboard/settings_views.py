"""The settings page of one dataset (WEBKNOSSOS's "Dataset settings").

Tabs Data, Sharing & Permissions, Metadata, View Configuration and Delete, chosen
by `?tab=`; each is a page of its own without JavaScript and an htmx fragment with
it. Only editors get here: `get_dataset_for_user(..., WRITE)` on every request,
ADMINISTRATE for the Delete tab; anyone else gets the 404 of a missing dataset.
A POST answers with its tab again: the saved values and a toast, or what the
person typed with the problems next to the inputs (nothing half-saved).
"""

from __future__ import annotations

import logging
from typing import Any, Final
from urllib.parse import urlencode

from django.contrib import messages
from django.http import (
    Http404,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseBase,
    HttpResponseRedirect,
)
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event
from rest_framework.exceptions import NotFound

from metaserver.accounts.access import AnyUser
from metaserver.dashboard.organizations import layout_context
from metaserver.dashboard.settings_tabs import (
    HANDLERS,
    TAB_CONTEXTS,
    Outcome,
    needs_import,
)
from metaserver.dashboard.summaries import summarize
from metaserver.dashboard.tokens import viewer_token_for
from metaserver.dashboard.views import HtmxRequest, login_required
from metaserver.datasets.access import datasets_for_user, get_dataset_for_user
from metaserver.datasets.markdown import MAX_DESCRIPTION_CHARS
from metaserver.datasets.models import Dataset
from shared.protocol import AccessMode

logger = logging.getLogger(__name__)

TABS: Final = (
    ("data", "Data"),
    ("sharing", "Sharing & Permissions"),
    ("metadata", "Metadata"),
    ("view", "View Configuration"),
    ("delete", "Delete"),
)
DEFAULT_TAB: Final = "data"
# The client event dashboard/settings.js turns into a toast.
TOAST_EVENT: Final = "vh-toast"


def is_fragment_request(request: HtmxRequest) -> bool:
    # A history restore wants the whole page, not the fragment it once got.
    return bool(request.htmx) and not request.htmx.history_restore_request


def dataset_for(
    request: HtmxRequest, organization: str, name: str, mode: AccessMode
) -> Dataset:
    """The gate, as an HTML 404 for missing and forbidden alike."""
    try:
        return get_dataset_for_user(request.user, organization, name, mode)
    except NotFound:
        raise Http404(f"dataset {organization}/{name} not found") from None


def user_may_edit(user: AnyUser, dataset: Dataset) -> bool:
    """Whether `user` may open the dataset's settings (WRITE)."""
    return bool(
        datasets_for_user(user, AccessMode.WRITE).filter(pk=dataset.pk).exists()
    )


def _may_delete(user: AnyUser, dataset: Dataset) -> bool:
    return bool(
        datasets_for_user(user, AccessMode.ADMINISTRATE).filter(pk=dataset.pk).exists()
    )


def settings_url(dataset: Dataset, **params: str) -> str:
    path = reverse(
        "dashboard:dataset-settings",
        kwargs={"organization": dataset.organization.name, "name": dataset.name},
    )
    return f"{path}?{urlencode(params)}" if params else path


def _tabs(dataset: Dataset, can_delete: bool) -> list[dict[str, str]]:
    return [
        {"key": key, "label": label, "url": settings_url(dataset, tab=key)}
        for key, label in TABS
        if key != "delete" or can_delete
    ]


def _render(
    request: HtmxRequest,
    dataset: Dataset,
    tab: str,
    tab_context: dict[str, Any],
    *,
    can_delete: bool,
    refresh_details: bool = False,
) -> HttpResponse:
    context = {
        "dataset": dataset,
        "summary": summarize(dataset, viewer_token_for(request)),
        "tab": tab,
        "tabs": _tabs(dataset, can_delete),
        "tab_label": dict(TABS)[tab],
        "action_url": settings_url(dataset, tab=tab),
        "base_url": settings_url(dataset),
        "import_url": reverse(
            "dashboard:dataset-import",
            kwargs={"organization": dataset.organization.name, "name": dataset.name},
        )
        if needs_import(dataset)
        else "",
        "refresh_details": refresh_details,
        "fragment": is_fragment_request(request),
        "on_settings_page": True,
        "section": "datasets",
        **tab_context,
    }
    if is_fragment_request(request):
        return render(request, "dashboard/settings/_settings.html", context)
    return render(
        request, "dashboard/settings/page.html", {**layout_context(request), **context}
    )


def _go(request: HtmxRequest, url: str) -> HttpResponse:
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return HttpResponseRedirect(url)


def _toast(response: HttpResponse, level: str, text: str) -> HttpResponse:
    trigger_client_event(response, TOAST_EVENT, {"level": level, "text": text})
    return response


def _answer(
    request: HtmxRequest, dataset: Dataset, tab: str, outcome: Outcome, can_delete: bool
) -> HttpResponse:
    if outcome.redirect:
        messages.success(request, outcome.message)
        return _go(request, outcome.redirect)
    if not outcome.ok:
        # 200, as Django's forms do: htmx swaps only 2xx answers, and browsers
        # log other codes of a page as console errors.
        response = _render(
            request, dataset, tab, outcome.context, can_delete=can_delete
        )
        if outcome.server_error and request.htmx:
            _toast(response, "error", outcome.message)
        return response
    try:
        fresh = get_dataset_for_user(
            request.user, dataset.organization.name, dataset.name, AccessMode.WRITE
        )
    except NotFound:
        # The change took the person's own team off the dataset.
        messages.info(
            request, f"{outcome.message} You can no longer edit this dataset."
        )
        return _go(request, reverse("dashboard:home"))
    if not is_fragment_request(request):
        messages.success(request, outcome.message)
        return HttpResponseRedirect(settings_url(fresh, tab=tab, **outcome.params))
    context = TAB_CONTEXTS[tab](request, fresh, outcome.params)
    response = _render(
        request, fresh, tab, context, can_delete=can_delete, refresh_details=True
    )
    return _toast(response, "success", outcome.message)


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def dataset_settings(
    request: HtmxRequest, organization: str, name: str
) -> HttpResponseBase:
    """A dataset's settings, one tab at a time; POST saves that tab's form."""
    tab = request.GET.get("tab") or DEFAULT_TAB
    mode = AccessMode.ADMINISTRATE if tab == "delete" else AccessMode.WRITE
    dataset = dataset_for(request, organization, name, mode)
    if tab not in dict(TABS):
        raise Http404(f"no settings tab {tab[:40]!r}")
    can_delete = tab == "delete" or _may_delete(request.user, dataset)
    if request.method == "POST":
        handler = HANDLERS.get((tab, request.POST.get("action", "")))
        if handler is None:
            return HttpResponseBadRequest("unknown action")
        return _answer(request, dataset, tab, handler(request, dataset), can_delete)
    context = TAB_CONTEXTS[tab](request, dataset, request.GET)
    return _render(request, dataset, tab, context, can_delete=can_delete)


@require_POST
@login_required
def description_preview(
    request: HtmxRequest, organization: str, name: str
) -> HttpResponse:
    """The Metadata tab's live preview: the description as the sidebar shows it."""
    dataset_for(request, organization, name, AccessMode.WRITE)
    text = request.POST.get("description", "")
    return render(
        request,
        "dashboard/settings/_preview.html",
        {
            "description": text,
            "too_long": len(text) > MAX_DESCRIPTION_CHARS,
            "max_description_chars": MAX_DESCRIPTION_CHARS,
        },
    )


urlpatterns = [
    path(
        "datasets/<str:organization>/<str:name>/settings/",
        dataset_settings,
        name="dataset-settings",
    ),
    path(
        "datasets/<str:organization>/<str:name>/settings/preview/",
        description_preview,
        name="dataset-settings-preview",
    ),
]
