"""The dashboard's pages: datasets home, dataset details, scan, datastores.

Full pages for ordinary requests, fragments for htmx ones, so every page works
without JavaScript. Datasets come only from the gates of
`metaserver.datasets.access`; organization questions go to
`metaserver.accounts.access`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
)
from django.shortcuts import render
from django.urls import Resolver404, resolve, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import (
    HttpResponseClientRedirect,
    push_url,
    replace_url,
    trigger_client_event,
)
from django_htmx.middleware import HtmxDetails
from rest_framework.exceptions import NotFound

from metaserver.accounts.access import (
    AnyUser,
    is_logged_in,
    user_can_manage_datasets,
    user_is_any_admin,
)
from metaserver.accounts.models import Organization
from metaserver.dashboard.listing import (
    apply_filters,
    editable_dataset_ids,
    filter_changes_history,
    filter_context,
    parse_filters,
    tag_counts,
    tag_editor_context,
    tree_context,
    visible_in,
)
from metaserver.dashboard.organizations import (
    choose_organization,
    current_organization,
    layout_context,
)
from metaserver.dashboard.summaries import summarize
from metaserver.dashboard.tokens import viewer_token_for
from metaserver.datasets.access import datasets_visible_to, get_dataset_for_user
from metaserver.datasets.models import Status
from metaserver.datastores.datastore_client import (
    DatastoreRejected,
    DatastoreUnavailable,
    check_inbox,
)
from metaserver.datastores.models import DataStore
from metaserver.jobs.models import running_conversions
from shared.protocol import AccessMode

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
MAX_QUERY_CHARS = 200
# The element id the dataset table is swapped into (its htmx HX-Target).
TABLE_TARGET = "dataset-table"
DATASETS_CHANGED = "datasets-changed"


class HtmxRequest(HttpRequest):
    """A request that went through django-htmx's middleware."""

    htmx: HtmxDetails


View = Callable[..., HttpResponseBase]


def _is_fragment_request(request: HtmxRequest) -> bool:
    # A history restore wants the whole page, not the fragment it once got.
    return bool(request.htmx) and not request.htmx.history_restore_request


def login_required(view: View) -> View:
    """Django's login_required, but htmx requests get a full-page redirect.

    Otherwise an expired session would swap the login page into the table.
    """

    @wraps(view)
    def wrapped(request: HtmxRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if is_logged_in(request.user):
            return view(request, *args, **kwargs)
        if request.htmx:
            path = request.htmx.current_url_abs_path or reverse("dashboard:home")
            return HttpResponseClientRedirect(redirect_to_login(path)["Location"])
        return redirect_to_login(request.get_full_path())

    return wrapped


@require_safe
def home(request: HtmxRequest) -> HttpResponse:
    """The datasets of the current organization: search, folder, tags, pages,
    details on click. Anonymous visitors see the public datasets of all
    organizations, read-only (`listing`)."""
    choice = current_organization(request)
    filters = parse_filters(request, choice.current)
    visible = visible_in(request.user, choice.current)
    # Descriptions can be long and the table does not show them.
    datasets = (
        apply_filters(visible, filters)
        .select_related("organization", "datastore")
        .prefetch_related("tags")
        .defer("description", "default_view_configuration")
        .order_by("organization__name", "name", "pk")
    )
    page = Paginator(datasets, PAGE_SIZE).get_page(request.GET.get("page"))
    token = viewer_token_for(request)
    conversions = running_conversions(page.object_list)
    context: dict[str, Any] = {
        "page": page,
        "rows": [
            summarize(d, token, conversions.get((d.organization.name, d.name)))
            for d in page.object_list
        ],
        "editable_ids": editable_dataset_ids(request.user, page.object_list),
        "previous_url": filters.url(page.number - 1) if page.has_previous() else "",
        "next_url": filters.url(page.number + 1) if page.has_next() else "",
        **filter_context(filters, tag_counts(visible)),
        "organization": choice.current,
        "anonymous": not is_logged_in(request.user),
        "section": "datasets",
    }
    if _is_fragment_request(request) and request.htmx.target == TABLE_TARGET:
        response = render(request, "dashboard/_dataset_table.html", context)
        # A new folder or tag is a step back can undo; typing a search is not.
        if filter_changes_history(request, filters):
            return push_url(response, filters.url(page.number))
        return replace_url(response, filters.url(page.number))
    return render(
        request,
        "dashboard/home.html",
        {
            **layout_context(request, choice),
            **context,
            **tree_context(request.user, choice.current, filters),
        },
    )


@require_safe
def dataset_details(request: HtmxRequest, organization: str, name: str) -> HttpResponse:
    """One dataset: the right sidebar's fragment, or a page of its own without JS.

    Anonymous visitors see public datasets; any other sends them to the login.
    """
    try:
        dataset = get_dataset_for_user(
            request.user, organization, name, AccessMode.READ
        )
    except NotFound:
        if not is_logged_in(request.user):
            return login_required(dataset_details)(request, organization, name)
        raise Http404(f"dataset {organization}/{name} not found") from None
    context = {
        "summary": summarize(dataset, viewer_token_for(request)),
        "section": "datasets",
        **tag_editor_context(request.user, dataset),
    }
    if _is_fragment_request(request):
        return render(request, "dashboard/_dataset_details.html", context)
    return render(
        request, "dashboard/dataset.html", {**layout_context(request), **context}
    )


@require_safe
def dataset_status(request: HtmxRequest, organization: str, name: str) -> HttpResponse:
    """The status cell of one row of the dataset table; rows of converting
    datasets poll it for their progress, and it stops polling when they end."""
    try:
        dataset = get_dataset_for_user(
            request.user, organization, name, AccessMode.READ
        )
    except NotFound:
        raise Http404(f"dataset {organization}/{name} not found") from None
    conversion = running_conversions([dataset]).get((organization, name))
    context = {
        "row": summarize(dataset, viewer_token_for(request), conversion),
        "editable_ids": editable_dataset_ids(request.user, [dataset]),
    }
    response = render(request, "dashboard/_status_cell.html", context)
    if dataset.status != Status.CONVERTING:
        # htmx stops polling on 286; the cell shows the final status.
        response.status_code = 286
    return response


def _datastores_serving(user: AnyUser, organization: Organization) -> list[DataStore]:
    """The datastores holding the organization's datasets, or all of them.

    A new organization has no datasets yet, so any node may hold its first folder.
    """
    used = datasets_visible_to(user).filter(organization=organization)
    datastores = DataStore.objects.order_by("name")
    serving = list(datastores.filter(pk__in=used.values("datastore_id")))
    return serving or list(datastores)


def _scan(datastore: DataStore, organization: Organization) -> tuple[str, str]:
    """(level, message) of one datastore's scan for a toast: success or error."""
    try:
        counts = check_inbox(datastore, organization.name)
    except (DatastoreUnavailable, DatastoreRejected) as e:
        return "error", f"Scan failed: {e}."
    found = ", ".join(
        f"{counts.get(key, 0)} {label}"
        for key, label in (
            ("active", "active"),
            ("needs_review", "to review"),
            ("unusable", "unusable"),
        )
    )
    return "success", f"Scan started on {datastore.name} ({found})."


@require_POST
@login_required
def scan_disk(request: HtmxRequest) -> HttpResponse:
    """Ask the organization's datastores to scan their disks now (managers only)."""
    organization = current_organization(request).current
    if organization is None or not user_can_manage_datasets(request.user, organization):
        raise PermissionDenied
    datastores = _datastores_serving(request.user, organization)
    toasts = [_scan(datastore, organization) for datastore in datastores] or [
        ("error", "No datastore is registered yet.")
    ]
    if not _is_fragment_request(request):
        for level, text in toasts:
            messages.add_message(
                request,
                messages.ERROR if level == "error" else messages.SUCCESS,
                text,
            )
        return HttpResponseRedirect(reverse("dashboard:home"))
    response = render(request, "dashboard/_toasts.html", {"toasts": toasts})
    if any(level != "error" for level, _ in toasts):
        # The table refreshes itself a moment later, once the report is in.
        trigger_client_event(response, DATASETS_CHANGED)
    return response


def _is_dataset_page(url: str) -> bool:
    try:
        match = resolve(urlsplit(url).path)
    except Resolver404:
        return False
    return match.view_name == "dashboard:dataset"


@require_POST
@login_required
def switch_organization(request: HtmxRequest) -> HttpResponse:
    """Remember the chosen organization in the session and go back."""
    if choose_organization(request, request.POST.get("organization", "")) is None:
        messages.error(request, "You are not a member of that organization.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("dashboard:home")
    # The dataset page of the previous organization would be out of place.
    if _is_dataset_page(target):
        target = reverse("dashboard:home")
    return HttpResponseRedirect(target)


@require_safe
@login_required
def datastores(request: HtmxRequest) -> HttpResponse:
    """The datastore nodes and whether they are online (admins only)."""
    if not user_is_any_admin(request.user):
        raise PermissionDenied
    nodes = DataStore.objects.defer("key_hash", "metaserver_token").order_by("name")
    return render(
        request,
        "dashboard/datastores.html",
        {
            **layout_context(request),
            "section": "datastores",
            "datastores": list(nodes),
            "stale_seconds": settings.VOXELHUB_DATASTORE_STALE_SECONDS,
        },
    )


class LogoutView(auth_views.LogoutView):
    """Django's logout (POST only), saying so on the login page."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You have been signed out.")
        return response
