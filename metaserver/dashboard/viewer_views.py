"""The dataset viewer: three orthogonal slices drawn by `viewer.js`, and the JSON
endpoints it saves view configurations through.

The page itself is readable by whoever reads the dataset: its users through the
gates, anyone for public datasets, and visitors with the dataset's sharing token
(`?token=vxs_...`), which the page hands on to the datastore. Logged-in readers
get a short-lived viewer token for the datastore instead.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from rest_framework.exceptions import NotFound, ValidationError

from metaserver.accounts.access import is_logged_in
from metaserver.accounts.models import User
from metaserver.accounts.viewer_tokens import make_viewer_token
from metaserver.dashboard.organizations import layout_context
from metaserver.dashboard.tokens import viewer_token_for
from metaserver.datasets.access import (
    check_sharing_token,
    datasets_managed_by,
    get_dataset_for_user,
)
from metaserver.datasets.dataset_actions import do_update_dataset
from metaserver.datasets.models import Dataset, Status
from metaserver.datasets.user_view_actions import (
    do_clear_user_view_configuration,
    do_save_user_view_configuration,
    user_view_configuration,
)
from metaserver.datasets.view_configuration import view_configuration_problems
from metaserver.datasets.view_hierarchy import (
    full_intensity_range,
    layer_names_of,
    view_levels,
)
from shared.datasource import (
    Category,
    DatasourceError,
    ElementClass,
    LayerProperties,
    parse_datasource,
)
from shared.protocol import AccessMode

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
COLOR_CLASSES = frozenset(
    {
        ElementClass.UINT8,
        ElementClass.INT8,
        ElementClass.UINT16,
        ElementClass.INT16,
        ElementClass.UINT32,
        ElementClass.INT32,
        ElementClass.FLOAT,
    }
)
SEGMENTATION_CLASSES = frozenset(
    {
        ElementClass.UINT8,
        ElementClass.UINT16,
        ElementClass.UINT32,
        ElementClass.UINT64,
        ElementClass.INT8,
        ElementClass.INT16,
        ElementClass.INT32,
        ElementClass.INT64,
    }
)


@dataclass(frozen=True)
class ViewerAccess:
    """How the visitor reads the dataset: as themselves, or with its sharing token."""

    dataset: Dataset
    sharing_token: str = ""
    # A logged-in user who reads the dataset on their own (may keep a view).
    user_reads: bool = False


def _viewer_access(
    request: HttpRequest, organization: str, name: str
) -> ViewerAccess | None:
    try:
        dataset = get_dataset_for_user(
            request.user, organization, name, AccessMode.READ
        )
    except NotFound:
        token = request.GET.get("token", "")
        shared = check_sharing_token(token, organization, name)
        return None if shared is None else ViewerAccess(shared, sharing_token=token)
    return ViewerAccess(dataset, user_reads=is_logged_in(request.user))


def _datastore_token(request: HttpRequest, access: ViewerAccess) -> str:
    if access.sharing_token:
        return access.sharing_token
    if not is_logged_in(request.user):
        return ""  # a public dataset, read anonymously
    return viewer_token_for(request) or make_viewer_token(_user(request))


def _can_edit(request: HttpRequest, access: ViewerAccess) -> bool:
    return (
        access.user_reads
        and datasets_managed_by(request.user).filter(pk=access.dataset.pk).exists()
    )


def _layer_problem(layer: LayerProperties) -> str:
    """Why the viewer cannot draw `layer`, or "" when it can."""
    element_class = layer.element_class
    if element_class is ElementClass.UINT24:
        return f"RGB ({element_class.value}) {layer.category.value} layers"
    if layer.channels != 1:
        return f"{element_class.value} layers with {layer.channels} channels"
    if layer.category is Category.COLOR and element_class not in COLOR_CLASSES:
        return f"{element_class.value} color layers"
    if (
        layer.category is Category.SEGMENTATION
        and element_class not in SEGMENTATION_CLASSES
    ):
        return f"{element_class.value} segmentation layers"
    return ""


def _layer_data(layer: LayerProperties) -> dict[str, Any]:
    box = layer.bounding_box
    problem = _layer_problem(layer)
    full = full_intensity_range(layer.element_class.value)
    return {
        "name": layer.name,
        "category": layer.category.value,
        "elementClass": layer.element_class.value,
        "boundingBox": {
            "topLeft": list(box.topleft),
            "width": box.size[0],
            "height": box.size[1],
            "depth": box.size[2],
        },
        "mags": [list(mag.mag) for mag in sorted(layer.mags, key=lambda m: m.mag)],
        "supported": not problem,
        "problem": f"{problem} cannot be shown in this viewer yet." if problem else "",
        # The intensity sliders' bounds: the element class's range, or none (float).
        "range": full,
    }


def _user(request: HttpRequest) -> User:
    """The logged-in user (callers checked `is_logged_in`)."""
    assert isinstance(request.user, User)  # noqa: S101 (checked by the caller)
    return request.user


def _json_error(status: int, error: str, detail: Any = None) -> JsonResponse:
    return JsonResponse({"error": error, "detail": detail}, status=status)


def _drawable(dataset: Dataset) -> tuple[list[dict[str, Any]], list[float], str]:
    """(layers, voxel size in nm, problem): what the viewer draws, or why not."""
    if dataset.status != Status.ACTIVE:
        problem = (
            "This dataset cannot be viewed while it is "
            + dataset.get_status_display().lower()
        )
        if dataset.status_reason:
            problem += f": {dataset.status_reason}"
        return [], [], problem
    try:
        properties = parse_datasource(dataset.datasource)
    except DatasourceError as e:
        return [], [], f"The dataset's properties cannot be read: {e}"
    layers = [_layer_data(layer) for layer in properties.layers]
    problem = "" if layers else "This dataset has no layers."
    return layers, list(properties.voxel_size.to_nanometers()), problem


@require_http_methods(["GET", "HEAD"])
@never_cache
def dataset_view(request: HttpRequest, organization: str, name: str) -> HttpResponse:
    """The slice viewer of one dataset (login not needed for public or shared ones)."""
    access = _viewer_access(request, organization, name)
    if access is None:
        if not is_logged_in(request.user):
            return redirect_to_login(request.get_full_path())
        raise Http404(f"dataset {organization}/{name} not found")
    dataset = access.dataset
    layers, voxel_size, problem = _drawable(dataset)
    own = user_view_configuration(request.user, dataset) if access.user_reads else None
    levels = view_levels(dataset.datasource, dataset.default_view_configuration, own)
    org, ds = dataset.organization.name, dataset.name
    can_edit = _can_edit(request, access)

    def url(view: str) -> str:
        return reverse(f"dashboard:{view}", args=(org, ds))

    # Everything viewer.js needs, as JSON in the page.
    viewer = {
        "title": dataset.display_name or ds,
        "dataUrl": (
            f"{dataset.datastore.effective_public_url.rstrip('/')}/data/datasets/"
            f"{quote(org, safe='')}/{quote(ds, safe='')}/layers/"
        ),
        "token": _datastore_token(request, access),
        "tokenUrl": url("dataset-view-token") if access.user_reads else None,
        "voxelSize": voxel_size,
        "layers": layers,
        "configuration": levels.effective,
        "datasetDefault": levels.dataset_default,
        "hasOwnConfiguration": own is not None,
        "ownUrl": url("dataset-view-own") if access.user_reads else None,
        "defaultUrl": url("dataset-view-default") if can_edit else None,
    }
    context: dict[str, Any] = {
        "dataset": dataset,
        "title": viewer["title"],
        "viewer": viewer,
        "layers": layers,
        "problem": problem,
        "can_save_default": can_edit,
        "can_save_own": access.user_reads,
        "shared": bool(access.sharing_token),
        "details_url": url("dataset") if access.user_reads else "",
        "section": "datasets",
    }
    if is_logged_in(request.user):
        context = {**layout_context(request), **context}
    return render(request, "dashboard/dataset_view.html", context)


class _BadBody(Exception):
    def __init__(self, response: JsonResponse) -> None:
        self.response = response


def _configuration_from(request: HttpRequest, dataset: Dataset) -> dict[str, Any]:
    """The JSON body as a valid view configuration, or _BadBody with a 4xx."""
    if len(request.body) > MAX_BODY_BYTES:
        raise _BadBody(
            _json_error(413, "request body too large", {"max_bytes": MAX_BODY_BYTES})
        )
    try:
        value = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError) as e:
        raise _BadBody(_json_error(400, "malformed request body", str(e))) from None
    if not isinstance(value, dict):
        raise _BadBody(
            _json_error(
                400,
                "invalid view configuration",
                [{"path": "(root)", "message": "must be an object"}],
            )
        )
    problems = view_configuration_problems(value, layer_names_of(dataset.datasource))
    if problems:
        raise _BadBody(_json_error(400, "invalid view configuration", problems))
    return value


def _reader_or_error(
    request: HttpRequest, organization: str, name: str
) -> Dataset | JsonResponse:
    """The dataset if the logged-in user reads it, else the JSON error to answer."""
    if not is_logged_in(request.user):
        return _json_error(403, "permission denied", "Sign in to save views.")
    try:
        return get_dataset_for_user(request.user, organization, name, AccessMode.READ)
    except NotFound:
        return _json_error(404, "not found", f"dataset {organization}/{name}")


@require_http_methods(["POST", "DELETE"])
def own_view(request: HttpRequest, organization: str, name: str) -> JsonResponse:
    """POST: keep the user's current view of the dataset; DELETE: forget it."""
    dataset = _reader_or_error(request, organization, name)
    if isinstance(dataset, JsonResponse):
        return dataset
    if request.method == "DELETE":
        had = do_clear_user_view_configuration(_user(request), dataset)
        levels = view_levels(
            dataset.datasource, dataset.default_view_configuration, None
        )
        return JsonResponse({"cleared": had, "configuration": levels.effective})
    try:
        configuration = _configuration_from(request, dataset)
        do_save_user_view_configuration(_user(request), dataset, configuration)
    except _BadBody as bad:
        return bad.response
    except ValidationError as e:
        return _json_error(400, "invalid view configuration", e.detail)
    return JsonResponse({"saved": True})


@require_POST
def default_view(request: HttpRequest, organization: str, name: str) -> JsonResponse:
    """Make the posted view the dataset's default (its managers only)."""
    dataset = _reader_or_error(request, organization, name)
    if isinstance(dataset, JsonResponse):
        return dataset
    try:
        dataset = get_dataset_for_user(
            request.user, organization, name, AccessMode.WRITE
        )
    except NotFound:
        return _json_error(
            403,
            "permission denied",
            "Only the dataset's managers may change its default view.",
        )
    try:
        configuration = _configuration_from(request, dataset)
    except _BadBody as bad:
        return bad.response
    dataset = do_update_dataset(dataset, {"default_view_configuration": configuration})
    levels = view_levels(dataset.datasource, dataset.default_view_configuration, None)
    return JsonResponse({"saved": True, "datasetDefault": levels.dataset_default})


@require_http_methods(["GET"])
@never_cache
def viewer_token(request: HttpRequest, organization: str, name: str) -> JsonResponse:
    """A fresh viewer token for the datastore (they expire after minutes)."""
    dataset = _reader_or_error(request, organization, name)
    if isinstance(dataset, JsonResponse):
        return dataset
    # Fresh rather than the session's (which may be minutes old): the page asks
    # for one only when its own is about to expire.
    return JsonResponse({"token": make_viewer_token(_user(request))})


urlpatterns = [
    path(
        "datasets/<str:organization>/<str:name>/view/",
        dataset_view,
        name="dataset-view",
    ),
    path(
        "datasets/<str:organization>/<str:name>/view/own/",
        own_view,
        name="dataset-view-own",
    ),
    path(
        "datasets/<str:organization>/<str:name>/view/default/",
        default_view,
        name="dataset-view-default",
    ),
    path(
        "datasets/<str:organization>/<str:name>/view/token/",
        viewer_token,
        name="dataset-view-token",
    ),
]
