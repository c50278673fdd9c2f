"""What each settings tab shows, and what its forms do.

A tab's context function builds what its template needs from the stored dataset,
or from what a person typed when a save failed. A handler validates a POST with
the API's `DatasetUpdateSerializer` (the same rules and messages as a PATCH),
applies it with a `do_*` action and returns an `Outcome`. The views
(`settings_views`) do the gates, the rendering and the answers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from rest_framework.exceptions import APIException, ValidationError

from metaserver.accounts.access import teams_visible_to
from metaserver.dashboard.datasource_forms import (
    DataForm,
    JsonSyntaxError,
    Problem,
    as_problems,
    build_datasource,
    form_from_datasource,
    form_from_post,
    parse_json_text,
)
from metaserver.dashboard.json_text import line_diff, ordered_datasource, pretty_json
from metaserver.dashboard.view_config_form import (
    ViewConfigForm,
    build_view_config,
    view_form_from_config,
    view_form_from_post,
)
from metaserver.datasets.api.serializers import DatasetUpdateSerializer
from metaserver.datasets.dataset_actions import (
    DatastoreDown,
    do_apply_pending_datasource,
    do_delete_dataset,
    do_discard_pending_datasource,
    do_get_sharing_token,
    do_revoke_sharing_token,
    do_update_dataset,
)
from metaserver.datasets.markdown import MAX_DESCRIPTION_CHARS
from metaserver.datasets.models import Dataset, Status
from shared.protocol import MAX_ACCESS_CACHE_SECONDS

Params = Mapping[str, str]
Problems = dict[str, list[Problem]]


@dataclass
class Outcome:
    """What a POST did. `ok`: saved (toast `message`); else `context` shows why."""

    ok: bool
    message: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    # Where the tab goes next: {"mode": "advanced"} keeps the JSON editor open.
    params: dict[str, str] = field(default_factory=dict)
    # Set when the dataset is gone (deleted): the page to go to.
    redirect: str = ""
    # A problem of the server, not of the input: also said in a toast.
    server_error: bool = False


def server_message(error: APIException) -> str:
    """A failed datastore call as a person reads it: what happened, what it means."""
    detail = str(error.detail)
    if isinstance(error, DatastoreDown):
        return f"Nothing was changed: {detail}. Try again when it is back online."
    return f"Nothing was changed: {detail}."


def save_changes(dataset: Dataset, data: dict[str, Any]) -> tuple[Problems, str]:
    """Validate `data` as a PATCH body and apply it: (problems by field, server error).

    Both empty when saved. A datasource goes to the datastore's disk first; if the
    node refuses or is down, nothing is changed.
    """
    body = DatasetUpdateSerializer(data=data, dataset=dataset)
    if not body.is_valid():
        return {key: as_problems(value) for key, value in body.errors.items()}, ""
    try:
        do_update_dataset(dataset, dict(body.validated_data))
    except ValidationError as e:
        detail = e.detail if isinstance(e.detail, dict) else {"": e.detail}
        return {key: as_problems(value) for key, value in detail.items()}, ""
    except APIException as e:
        return {}, server_message(e)
    return {}, ""


def _all(problems: Problems) -> list[Problem]:
    return [p for items in problems.values() for p in items]


def _messages(problems: Problems, key: str) -> list[str]:
    return [p["message"] for p in problems.get(key, [])]


# Data -------------------------------------------------------------------------


def _pending(dataset: Dataset) -> dict[str, Any] | None:
    if dataset.pending_datasource is None:
        return None
    current = pretty_json(ordered_datasource(dataset.datasource))
    on_disk = pretty_json(ordered_datasource(dataset.pending_datasource))
    return {"current": current, "on_disk": on_disk, "diff": line_diff(current, on_disk)}


def data_context(
    request: HttpRequest,
    dataset: Dataset,
    params: Params,
    *,
    form: DataForm | None = None,
    json_text: str | None = None,
    problems: list[Problem] | None = None,
    syntax: JsonSyntaxError | None = None,
    form_error: str = "",
) -> dict[str, Any]:
    advanced = params.get("mode") == "advanced"
    context: dict[str, Any] = {
        "mode": "advanced" if advanced else "simple",
        "form_error": form_error,
        "pending": _pending(dataset),
        "has_datasource": dataset.datasource is not None,
    }
    if advanced:
        if json_text is None:
            json_text = (
                pretty_json(ordered_datasource(dataset.datasource))
                if dataset.datasource is not None
                else ""
            )
        context.update(json_text=json_text, problems=problems or [], syntax=syntax)
    else:
        context["form"] = form or form_from_datasource(dataset.datasource)
    return context


def _datasource_saved(dataset: Dataset) -> str:
    if dataset.is_remote:
        return "Saved the datasource."
    return "Saved; datasource-properties.json on the datastore was updated."


def save_simple_data(request: HttpRequest, dataset: Dataset) -> Outcome:
    form = form_from_post(dataset.datasource, request.POST)
    datasource = build_datasource(dataset.datasource, form)
    problems, server = save_changes(dataset, {"datasource": datasource})
    if not problems and not server:
        return Outcome(True, _datasource_saved(dataset))
    form.attach(_all(problems))
    context = data_context(request, dataset, {}, form=form, form_error=server)
    return Outcome(False, server, context, server_error=bool(server))


def save_advanced_data(request: HttpRequest, dataset: Dataset) -> Outcome:
    params = {"mode": "advanced"}
    text = request.POST.get("datasource_json", "").replace("\r\n", "\n")
    value, syntax = parse_json_text(text)
    if syntax is not None:
        context = data_context(
            request,
            dataset,
            params,
            json_text=text,
            problems=[syntax.as_problem()],
            syntax=syntax,
        )
        return Outcome(False, context=context, params=params)
    problems, server = save_changes(dataset, {"datasource": value})
    if not problems and not server:
        return Outcome(True, _datasource_saved(dataset), params=params)
    listed = [
        {"path": p["path"] or "(root)", "message": p["message"]} for p in _all(problems)
    ]
    context = data_context(
        request, dataset, params, json_text=text, problems=listed, form_error=server
    )
    return Outcome(False, server, context, params=params, server_error=bool(server))


def _pending_action(
    request: HttpRequest, dataset: Dataset, action: Callable[[Dataset], Any], done: str
) -> Outcome:
    try:
        action(dataset)
    except ValidationError as e:
        message = "; ".join(
            f"{p['path']}: {p['message']}" if p["path"] else p["message"]
            for p in as_problems(e.detail)
        )
        text = f"Nothing was changed: the datastore refused the version ({message})."
    except APIException as e:
        text = server_message(e) if e.status_code >= 500 else str(e.detail)
    else:
        return Outcome(True, done)
    context = data_context(request, dataset, {}, form_error=text)
    return Outcome(False, text, context, server_error=True)


def apply_pending(request: HttpRequest, dataset: Dataset) -> Outcome:
    return _pending_action(
        request,
        dataset,
        do_apply_pending_datasource,
        "Applied the datasource-properties.json from disk.",
    )


def keep_current(request: HttpRequest, dataset: Dataset) -> Outcome:
    return _pending_action(
        request,
        dataset,
        do_discard_pending_datasource,
        "Kept the current version; it was written back to disk.",
    )


# Sharing & Permissions ---------------------------------------------------------


def sharing_link(request: HttpRequest, dataset: Dataset) -> str:
    """The URL that opens the dataset with its sharing token, or "" without one."""
    if not dataset.sharing_token:
        return ""
    kwargs = {"organization": dataset.organization.name, "name": dataset.name}
    try:
        path = reverse("dashboard:dataset-view", kwargs=kwargs)
    except NoReverseMatch:
        path = reverse("dashboard:dataset", kwargs=kwargs)
    query = urlencode({"token": dataset.sharing_token})
    return f"{request.build_absolute_uri(path)}?{query}"


def sharing_context(
    request: HttpRequest,
    dataset: Dataset,
    params: Params,
    *,
    is_public: bool | None = None,
    checked: set[int] | None = None,
    problems: Problems | None = None,
    form_error: str = "",
) -> dict[str, Any]:
    problems = problems or {}
    teams = teams_visible_to(request.user).filter(
        organization_id=dataset.organization_id
    )
    if checked is None:
        checked = set(dataset.allowed_teams.values_list("pk", flat=True))
    return {
        "is_public": dataset.is_public if is_public is None else is_public,
        "teams": [(team, team.pk in checked) for team in teams.order_by("name")],
        "public_errors": _messages(problems, "is_public"),
        "team_errors": _messages(problems, "allowed_teams"),
        "other_errors": [
            p["message"]
            for key, items in problems.items()
            if key not in ("is_public", "allowed_teams")
            for p in items
        ],
        "form_error": form_error,
        "link": sharing_link(request, dataset),
        "cache_seconds": MAX_ACCESS_CACHE_SECONDS,
    }


def save_access(request: HttpRequest, dataset: Dataset) -> Outcome:
    raw = request.POST.getlist("allowed_teams")
    ids = [int(v) for v in raw if v.isascii() and v.isdigit() and len(v) < 12]
    is_public = request.POST.get("is_public") == "on"
    problems: Problems = {}
    if len(ids) != len(raw):
        problems["allowed_teams"] = [{"path": "", "message": "unknown team"}]
    else:
        problems, server = save_changes(
            dataset, {"is_public": is_public, "allowed_teams": ids}
        )
        if not problems and not server:
            return Outcome(True, "Saved who may access the dataset.")
    context = sharing_context(
        request, dataset, {}, is_public=is_public, checked=set(ids), problems=problems
    )
    return Outcome(False, context=context)


def create_link(request: HttpRequest, dataset: Dataset) -> Outcome:
    do_get_sharing_token(dataset)
    return Outcome(True, "Created a sharing link.")


def revoke_link(request: HttpRequest, dataset: Dataset) -> Outcome:
    do_revoke_sharing_token(dataset)
    return Outcome(True, "Revoked the old link; the new one is below.")


# Metadata -------------------------------------------------------------------------


def metadata_context(
    request: HttpRequest,
    dataset: Dataset,
    params: Params,
    *,
    display_name: str | None = None,
    description: str | None = None,
    problems: Problems | None = None,
) -> dict[str, Any]:
    problems = problems or {}
    name_errors = _messages(problems, "display_name")
    description_errors = _messages(problems, "description")
    return {
        "display_name": dataset.display_name if display_name is None else display_name,
        "description": dataset.description if description is None else description,
        "tags": sorted(tag.name for tag in dataset.tags.all()),
        "display_name_errors": name_errors,
        "description_errors": description_errors,
        "error_count": len(name_errors) + len(description_errors),
        "max_description_chars": MAX_DESCRIPTION_CHARS,
    }


def save_metadata(request: HttpRequest, dataset: Dataset) -> Outcome:
    display_name = request.POST.get("display_name", "")
    # Browsers send a textarea's line breaks as CRLF.
    description = request.POST.get("description", "").replace("\r\n", "\n")
    problems, _ = save_changes(
        dataset, {"display_name": display_name, "description": description}
    )
    if not problems:
        return Outcome(True, "Saved the name and description.")
    context = metadata_context(
        request,
        dataset,
        {},
        display_name=display_name,
        description=description,
        problems=problems,
    )
    return Outcome(False, context=context)


# View Configuration -------------------------------------------------------------


def view_context(
    request: HttpRequest,
    dataset: Dataset,
    params: Params,
    *,
    form: ViewConfigForm | None = None,
) -> dict[str, Any]:
    return {
        "view_form": form or view_form_from_config(dataset.default_view_configuration),
        "has_view_configuration": dataset.default_view_configuration is not None,
    }


def save_view(request: HttpRequest, dataset: Dataset) -> Outcome:
    form = view_form_from_post(dataset.default_view_configuration, request.POST)
    config = build_view_config(dataset.default_view_configuration, form)
    problems, _ = save_changes(dataset, {"default_view_configuration": config})
    if not problems and form.json_error is None:
        return Outcome(True, "Saved the default view configuration.")
    form.attach(_all(problems))
    return Outcome(False, context=view_context(request, dataset, {}, form=form))


def clear_view(request: HttpRequest, dataset: Dataset) -> Outcome:
    problems, _ = save_changes(dataset, {"default_view_configuration": None})
    if problems:
        form = view_form_from_config(dataset.default_view_configuration)
        form.attach(_all(problems))
        return Outcome(False, context=view_context(request, dataset, {}, form=form))
    return Outcome(True, "Cleared the default view configuration.")


# Delete -----------------------------------------------------------------------------


def delete_context(
    request: HttpRequest,
    dataset: Dataset,
    params: Params,
    *,
    typed: str = "",
    error: str = "",
) -> dict[str, Any]:
    return {"typed_name": typed, "delete_error": error}


def delete_dataset(request: HttpRequest, dataset: Dataset) -> Outcome:
    typed = request.POST.get("confirm_name", "").strip()
    if typed != dataset.name:
        error = f"Type the dataset's name, {dataset.name}, to confirm."
        return Outcome(
            False,
            context=delete_context(request, dataset, {}, typed=typed, error=error),
        )
    title = dataset.display_name or dataset.name
    try:
        do_delete_dataset(dataset)
    except APIException as e:
        error = server_message(e)
        context = delete_context(request, dataset, {}, typed=typed, error=error)
        return Outcome(False, error, context, server_error=True)
    where = (
        "its remote data was not touched"
        if dataset.is_remote
        else "its folder was moved to the datastore's trash"
    )
    return Outcome(
        True, f"Deleted {title}; {where}.", redirect=reverse("dashboard:home")
    )


TAB_CONTEXTS: Final[dict[str, Callable[..., dict[str, Any]]]] = {
    "data": data_context,
    "sharing": sharing_context,
    "metadata": metadata_context,
    "view": view_context,
    "delete": delete_context,
}
HANDLERS: Final[dict[tuple[str, str], Callable[[HttpRequest, Dataset], Outcome]]] = {
    ("data", "save-simple"): save_simple_data,
    ("data", "save-advanced"): save_advanced_data,
    ("data", "apply-pending"): apply_pending,
    ("data", "keep-pending"): keep_current,
    ("sharing", "save-access"): save_access,
    ("sharing", "create-link"): create_link,
    ("sharing", "revoke-link"): revoke_link,
    ("metadata", "save-metadata"): save_metadata,
    ("view", "save-view"): save_view,
    ("view", "clear-view"): clear_view,
    ("delete", "delete"): delete_dataset,
}


def needs_import(dataset: Dataset) -> bool:
    return bool(dataset.status == Status.NEEDS_REVIEW)
