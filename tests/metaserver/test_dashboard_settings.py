"""The dashboard's dataset settings (every tab, every action) and the import screen.

Remote datasets (`is_remote=True`) change without a datastore; datasets on disk
talk to `store1`, which is not running here, so their datasource changes and
deletion must answer with the datastore's 503 message and change nothing.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from django.test import Client
from django.urls import NoReverseMatch, reverse

from metaserver.accounts.actions import do_create_team
from metaserver.dashboard.datasource_forms import field_for_path
from metaserver.dashboard.json_text import line_diff, ordered_datasource, pretty_json
from metaserver.datasets.access import check_sharing_token
from metaserver.datasets.models import Dataset, Status

from .world import World, datasource

HTMX = {"HX-Request": "true", "HX-Target": "settings"}
TABS = ("data", "sharing", "metadata", "view", "delete")
EDITORS = ("admin", "dataset_manager", "team_manager")
NON_EDITORS = ("member", "member_without_team", "outsider")
UINT64_MAX = 2**64 - 1


def client_for(world: World, persona: str) -> Client:
    client = Client()
    if persona != "anonymous":
        client.force_login(world.users[persona])
    return client


def url(name: str, tab: str = "", **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"tab": tab, **params}.items() if v)
    return f"/datasets/lab/{name}/settings/" + (f"?{query}" if query else "")


def text_of(response: Any) -> str:
    return html.unescape(response.content.decode())


def field_error(response: Any, field_id: str) -> str:
    """The error text shown under the input `field_id` ("" when there is none)."""
    match = re.search(
        rf'<p class="field-error" id="{re.escape(field_id)}-error">(.*?)</p>',
        response.content.decode(),
        re.S,
    )
    return html.unescape(str(match[1])) if match else ""


def input_value(response: Any, field_id: str) -> str:
    match = re.search(
        rf'id="{re.escape(field_id)}" name="[^"]*" value="([^"]*)"',
        response.content.decode(),
    )
    assert match, f"no input {field_id}"
    return html.unescape(str(match[1]))


def dataset_page(name: str) -> str:
    """What a sharing link opens: the viewer if there is one, else the details."""
    kwargs = {"organization": "lab", "name": name}
    try:
        return str(reverse("dashboard:dataset-view", kwargs=kwargs))
    except NoReverseMatch:
        return str(reverse("dashboard:dataset", kwargs=kwargs))


def segmentation_source(name: str) -> dict[str, Any]:
    source = datasource(name)
    layer = dict(source["dataLayers"][0])
    layer.update(name="segmentation", category="segmentation", elementClass="uint64")
    layer["mags"] = [{"mag": [1, 1, 1], "path": "./segmentation/1"}]
    layer["largestSegmentId"] = 17
    source["dataLayers"].append(layer)
    return source


@pytest.fixture
def remote(world: World) -> Dataset:
    """A remote dataset of team alpha with a color and a segmentation layer."""
    return world.dataset(
        "remote",
        teams=(world.alpha,),
        is_remote=True,
        datasource=segmentation_source("remote"),
    )


@pytest.fixture
def ondisk(world: World) -> Dataset:
    """A dataset on store1's disk; store1 is down, so disk changes are refused."""
    return world.dataset("ondisk", teams=(world.alpha,), display_name="On disk")


def post(
    world: World, persona: str, name: str, tab: str, data: dict[str, Any], **kw: Any
) -> Any:
    return client_for(world, persona).post(url(name, tab), data, **kw)


def data_form(dataset: Dataset, **changes: str) -> dict[str, str]:
    """The Data tab's simple form as the page shows it, with `changes`."""
    values = {
        "action": "save-simple",
        "scale_x": "11.24",
        "scale_y": "11.24",
        "scale_z": "28",
        "scale_unit": "nanometer",
    }
    for i, _ in enumerate(dataset.datasource["dataLayers"]):
        values.update(
            {
                f"layer-{i}-x": "0",
                f"layer-{i}-y": "0",
                f"layer-{i}-z": "0",
                f"layer-{i}-width": "64",
                f"layer-{i}-height": "64",
                f"layer-{i}-depth": "32",
            }
        )
    values["layer-1-largest"] = "17"
    values.update(changes)
    return values


# Who may open which tab ----------------------------------------------------------


@pytest.mark.parametrize("tab", TABS)
@pytest.mark.parametrize(
    ("persona", "allowed"),
    [
        ("admin", set(TABS)),
        ("dataset_manager", set(TABS)),
        ("team_manager", set(TABS) - {"delete"}),
        ("member", set()),
        ("member_without_team", set()),
        ("outsider", set()),
    ],
)
def test_settings_tabs_are_for_editors_and_delete_for_managers(
    world: World, remote: Dataset, tab: str, persona: str, allowed: set[str]
) -> None:
    response = client_for(world, persona).get(url("remote", tab))
    assert response.status_code == (200 if tab in allowed else 404)
    if tab in allowed:
        assert b'role="tablist"' in response.content
        assert f'id="tab-{tab}"'.encode() in response.content
        assert (b'id="tab-delete"' in response.content) == ("delete" in allowed)


def test_anonymous_visitors_are_sent_to_the_login(
    world: World, remote: Dataset
) -> None:
    for path in (url("remote", "data"), "/datasets/lab/remote/import/"):
        response = Client().get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")
    response = Client().post(url("remote", "metadata"), {"action": "save-metadata"})
    assert response.status_code == 302


def test_an_unknown_tab_or_dataset_is_404(world: World, remote: Dataset) -> None:
    client = client_for(world, "admin")
    assert client.get(url("remote", "nope")).status_code == 404
    assert client.get(url("missing", "data")).status_code == 404
    assert client.post(url("remote", "data"), {"action": "nope"}).status_code == 400


def test_tabs_load_as_htmx_fragments_with_their_title(
    world: World, remote: Dataset
) -> None:
    client = client_for(world, "admin")
    for tab in TABS:
        response = client.get(url("remote", tab), headers=HTMX)
        assert response.status_code == 200
        body = response.content.decode()
        assert "<html" not in body
        assert body.startswith("<title>")
        assert 'id="settings"' in body
        assert 'aria-selected="true" aria-controls="tab-panel">' in body
    full = client.get(url("remote", "sharing")).content.decode()
    assert "<html" in full
    assert "dashboard/settings.css" in full
    assert "dashboard/settings.js" in full


@pytest.mark.parametrize(
    ("tab", "data"),
    [
        ("data", {"action": "save-simple", "scale_x": "1"}),
        ("data", {"action": "save-advanced", "datasource_json": "{}"}),
        ("data", {"action": "apply-pending"}),
        ("data", {"action": "keep-pending"}),
        ("sharing", {"action": "save-access", "is_public": "on"}),
        ("sharing", {"action": "create-link"}),
        ("sharing", {"action": "revoke-link"}),
        ("metadata", {"action": "save-metadata", "display_name": "x"}),
        ("view", {"action": "save-view", "zoom": "2"}),
        ("view", {"action": "clear-view"}),
        ("delete", {"action": "delete", "confirm_name": "remote"}),
    ],
)
@pytest.mark.parametrize("persona", [*NON_EDITORS, "anonymous"])
def test_no_action_works_for_those_who_may_not_edit(
    world: World, remote: Dataset, tab: str, data: dict[str, str], persona: str
) -> None:
    remote.pending_datasource = datasource("remote")
    remote.save()
    before = Dataset.objects.filter(pk=remote.pk).values().get()
    response = post(world, persona, "remote", tab, data)
    # Anonymous visitors are sent to the login; the others cannot tell it exists.
    assert response.status_code == (302 if persona == "anonymous" else 404)
    assert Dataset.objects.filter(pk=remote.pk).values().get() == before


def test_team_managers_cannot_delete(world: World, remote: Dataset) -> None:
    data = {"action": "delete", "confirm_name": "remote"}
    assert post(world, "team_manager", "remote", "delete", data).status_code == 404
    assert Dataset.objects.filter(pk=remote.pk).exists()


def test_posts_need_the_csrf_token(world: World, remote: Dataset) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users["admin"])
    response = client.post(
        url("remote", "metadata"), {"action": "save-metadata", "display_name": "x"}
    )
    assert response.status_code == 403
    remote.refresh_from_db()
    assert remote.display_name == ""


def test_details_sidebar_links_editors_to_the_settings(
    world: World, remote: Dataset
) -> None:
    link = b'href="/datasets/lab/remote/settings/"'
    for persona in EDITORS:
        page = client_for(world, persona).get("/datasets/lab/remote/")
        assert link in page.content, persona
    assert link not in client_for(world, "member").get("/datasets/lab/remote/").content


# Data -------------------------------------------------------------------------


@pytest.mark.parametrize("persona", EDITORS)
def test_editors_change_voxel_size_bounding_box_and_largest_segment_id(
    world: World, remote: Dataset, persona: str
) -> None:
    form = data_form(
        remote,
        scale_x="4",
        scale_y="4,5",
        scale_z="40",
        scale_unit="micrometer",
        **{"layer-0-width": "128", "layer-1-largest": str(UINT64_MAX)},
    )
    response = post(world, persona, "remote", "data", form, headers=HTMX)
    assert response.status_code == 200
    trigger = json.loads(response["HX-Trigger"])
    assert trigger["vh-toast"]["level"] == "success"
    remote.refresh_from_db()
    source = remote.datasource
    assert source["scale"] == {"factor": [4, 4.5, 40], "unit": "micrometer"}
    assert source["dataLayers"][0]["boundingBox"]["width"] == 128
    # Beyond JavaScript's safe integers: WEBKNOSSOS's bigint envelope, exact.
    assert source["dataLayers"][1]["largestSegmentId"] == {
        "customJsonEncoding": "bigint",
        "value": str(UINT64_MAX),
    }
    assert source["dataLayers"][0]["someFutureKey"] == {"kept": True}
    # The form shows the saved values, the id as typed, and the sidebar follows.
    assert input_value(response, "f-layer-1-largest") == str(UINT64_MAX)
    assert input_value(response, "f-scale_y") == "4.5"
    assert 'hx-swap-oob="innerHTML"' in response.content.decode()


def test_bad_data_inputs_are_shown_at_their_fields_and_kept(
    world: World, remote: Dataset
) -> None:
    form = data_form(
        remote,
        scale_y="-1",
        scale_z="",
        **{
            "layer-0-width": "0",
            "layer-0-x": "1.5",
            "layer-1-largest": "abc",
            "layer-1-depth": str(2**64),
        },
    )
    response = post(world, "admin", "remote", "data", form, headers=HTMX)
    assert response.status_code == 200
    assert not response.has_header("HX-Trigger")  # the problems are at the fields
    assert field_error(response, "f-scale_y") == "must be a finite number > 0"
    assert field_error(response, "f-scale_z") == "required"
    assert field_error(response, "f-layer-0-width") == "must be > 0"
    assert "must be an integer" in field_error(response, "f-layer-0-x")
    assert "'abc'" in field_error(response, "f-layer-1-largest")
    assert "2^31" in field_error(response, "f-layer-1-depth")
    assert input_value(response, "f-scale_y") == "-1"
    assert input_value(response, "f-layer-1-largest") == "abc"
    assert "6 problems" in text_of(response)
    remote.refresh_from_db()
    assert remote.datasource == segmentation_source("remote")


def test_largest_segment_id_above_uint64_is_refused_at_its_field(
    world: World, remote: Dataset
) -> None:
    form = data_form(remote, **{"layer-1-largest": str(2**64)})
    response = post(world, "admin", "remote", "data", form)
    assert response.status_code == 200
    assert "2^64-1" in field_error(response, "f-layer-1-largest")


def test_an_emptied_largest_segment_id_becomes_unknown(
    world: World, remote: Dataset
) -> None:
    response = post(
        world, "admin", "remote", "data", data_form(remote, **{"layer-1-largest": ""})
    )
    assert response.status_code == 302
    assert response["Location"] == url("remote", "data")
    remote.refresh_from_db()
    assert remote.datasource["dataLayers"][1]["largestSegmentId"] is None


def test_a_plain_voxel_size_list_keeps_its_shape(world: World) -> None:
    source = datasource("plain")
    source["scale"] = [4, 4, 40]
    dataset = world.dataset("plain", is_remote=True, datasource=source)
    form = data_form(dataset, scale_x="5", scale_y="4", scale_z="40")
    post(world, "admin", "plain", "data", form)
    dataset.refresh_from_db()
    assert dataset.datasource["scale"] == [5, 4, 40]


def test_advanced_json_shows_syntax_errors_with_line_and_column(
    world: World, remote: Dataset
) -> None:
    text = '{\n  "id": {"name": "remote"},\n  "scale": [1, 2, 3,]\n}'
    response = post(
        world,
        "admin",
        "remote",
        "data",
        {"action": "save-advanced", "datasource_json": text},
        headers=HTMX,
    )
    body = text_of(response)
    assert "invalid JSON at line 3, column 21" in body
    assert 'data-error-line="3"' in body
    assert text in body  # the person's text stays in the textarea


def test_advanced_json_lists_problems_with_their_paths_then_saves(
    world: World, remote: Dataset
) -> None:
    source = segmentation_source("remote")
    source["scale"]["factor"] = [11, -1, 28]
    del source["dataLayers"][0]["elementClass"]
    data = {"action": "save-advanced", "datasource_json": json.dumps(source)}
    response = post(world, "admin", "remote", "data", data, headers=HTMX)
    body = text_of(response)
    assert "<code>scale.factor[1]</code> must be a finite number > 0" in body
    assert "<code>dataLayers[0].elementClass</code> required" in body
    assert "2 problems" in body
    remote.refresh_from_db()
    assert remote.datasource["scale"]["factor"] == [11.24, 11.24, 28.0]
    source["scale"]["factor"] = [5, 5, 50]
    source["dataLayers"][0]["elementClass"] = "uint16"
    data["datasource_json"] = json.dumps(source)
    client = client_for(world, "admin")
    response = client.post(url("remote", "data"), data)
    assert response["Location"] == url("remote", "data", mode="advanced")
    remote.refresh_from_db()
    assert remote.datasource["scale"]["factor"] == [5, 5, 50]
    assert remote.datasource["dataLayers"][0]["elementClass"] == "uint16"
    page = client.get(response["Location"])
    assert '"factor": [5, 5, 50]' in text_of(page)
    assert "Saved the datasource." in text_of(page)


def test_advanced_json_must_be_an_object(world: World, remote: Dataset) -> None:
    data = {"action": "save-advanced", "datasource_json": "[1, 2]"}
    response = post(world, "admin", "remote", "data", data)
    assert response.status_code == 200
    assert "must be a JSON object" in text_of(response)


def test_with_the_datastore_down_nothing_changes_and_it_says_so(
    world: World, ondisk: Dataset
) -> None:
    form = data_form(ondisk, scale_x="1", **{"layer-1-largest": ""})
    form = {k: v for k, v in form.items() if not k.startswith("layer-1")}
    response = post(world, "admin", "ondisk", "data", form, headers=HTMX)
    assert response.status_code == 200
    toast = json.loads(response["HX-Trigger"])["vh-toast"]
    assert toast["level"] == "error"
    assert "Nothing was changed: datastore store1 is unreachable" in toast["text"]
    assert "Nothing was changed: datastore store1 is unreachable" in text_of(response)
    assert input_value(response, "f-scale_x") == "1"
    ondisk.refresh_from_db()
    assert ondisk.datasource == datasource("ondisk")


def test_a_dataset_without_datasource_offers_the_advanced_editor(
    world: World,
) -> None:
    world.dataset(
        "empty",
        datasource=None,
        status=Status.UNUSABLE,
        status_reason="no layers found",
        is_remote=True,
    )
    client = client_for(world, "admin")
    assert "No datasource known" in text_of(client.get(url("empty", "data")))
    page = client.get(url("empty", "data", mode="advanced"))
    assert 'name="datasource_json"' in page.content.decode()
    data = {"action": "save-advanced", "datasource_json": json.dumps(datasource())}
    client.post(url("empty", "data"), data)
    dataset = Dataset.objects.get(name="empty")
    assert dataset.status == Status.ACTIVE
    assert dataset.datasource["id"]["name"] == "empty"


# Changed on disk -------------------------------------------------------------------


def _with_pending(dataset: Dataset) -> dict[str, Any]:
    changed: dict[str, Any] = json.loads(json.dumps(dataset.datasource))
    changed["scale"]["factor"] = [8, 8, 30]
    dataset.pending_datasource = changed
    dataset.save()
    return changed


def test_pending_datasource_shows_both_versions_and_the_changed_lines(
    world: World, remote: Dataset
) -> None:
    _with_pending(remote)
    body = text_of(client_for(world, "admin").get(url("remote", "data")))
    assert "datasource-properties.json on disk changed" in body
    assert "Apply the version from disk" in body
    assert "Keep the current version" in body
    removed = re.findall(r'diff-line diff-removed">(.*?)</td>', body)
    added = re.findall(r'diff-line diff-added">(.*?)</td>', body)
    assert [re.sub("<.*?>", "", line) for line in removed] == [
        'removed:     "factor": [11.24, 11.24, 28.0],'
    ]
    assert [re.sub("<.*?>", "", line) for line in added] == [
        'added:     "factor": [8, 8, 30],'
    ]
    assert "\N{MINUS SIGN}1" in body
    assert "+1" in body
    page = client_for(world, "admin").get(url("remote", "sharing"))
    assert "on disk changed" not in text_of(page)


def test_applying_the_pending_datasource_takes_the_disks_version(
    world: World, remote: Dataset
) -> None:
    changed = _with_pending(remote)
    client = client_for(world, "team_manager")
    response = client.post(url("remote", "data"), {"action": "apply-pending"})
    assert response.status_code == 302
    remote.refresh_from_db()
    assert remote.datasource == changed
    assert remote.pending_datasource is None
    page = client.get(response["Location"])
    assert "Applied the datasource-properties.json from disk." in text_of(page)
    assert "on disk changed" not in text_of(page)
    again = post(world, "admin", "remote", "data", {"action": "apply-pending"})
    assert again.status_code == 200
    assert "nothing to apply" in text_of(again)


def test_keeping_the_current_version_forgets_the_pending_one(
    world: World, remote: Dataset
) -> None:
    _with_pending(remote)
    response = post(
        world, "admin", "remote", "data", {"action": "keep-pending"}, headers=HTMX
    )
    assert json.loads(response["HX-Trigger"])["vh-toast"]["text"].startswith(
        "Kept the current version"
    )
    remote.refresh_from_db()
    assert remote.pending_datasource is None
    assert remote.datasource == segmentation_source("remote")


def test_keeping_the_current_version_needs_the_datastore(
    world: World, ondisk: Dataset
) -> None:
    changed = _with_pending(ondisk)
    response = post(world, "admin", "ondisk", "data", {"action": "keep-pending"})
    assert response.status_code == 200
    assert "Nothing was changed: datastore store1 is unreachable" in text_of(response)
    ondisk.refresh_from_db()
    assert ondisk.pending_datasource == changed


# Sharing & Permissions ---------------------------------------------------------------


@pytest.mark.parametrize("persona", EDITORS)
def test_editors_set_public_and_allowed_teams(
    world: World, remote: Dataset, persona: str
) -> None:
    beta = do_create_team(world.lab, "beta")
    do_create_team(world.other, "foreign")
    page = text_of(client_for(world, persona).get(url("remote", "sharing")))
    assert f'name="allowed_teams" value="{world.alpha.pk}" checked' in page
    assert f'value="{beta.pk}"' in page
    assert "foreign" not in page
    data = {
        "action": "save-access",
        "is_public": "on",
        "allowed_teams": [world.alpha.pk, beta.pk],
    }
    response = post(world, persona, "remote", "sharing", data, headers=HTMX)
    assert json.loads(response["HX-Trigger"])["vh-toast"]["level"] == "success"
    remote.refresh_from_db()
    assert remote.is_public
    assert set(remote.allowed_teams.all()) == {world.alpha, beta}


def test_teams_of_other_organizations_and_junk_are_refused(
    world: World, remote: Dataset
) -> None:
    foreign = do_create_team(world.other, "foreign")
    data = {"action": "save-access", "allowed_teams": [foreign.pk]}
    response = post(world, "admin", "remote", "sharing", data)
    assert response.status_code == 200
    assert f"no such teams in lab: {foreign.pk}" in text_of(response)
    data = {"action": "save-access", "allowed_teams": ["alpha"], "is_public": "on"}
    response = post(world, "admin", "remote", "sharing", data)
    assert "unknown team" in text_of(response)
    assert 'id="is-public" name="is_public" role="switch" class="switch" checked' in (
        response.content.decode()
    )
    assert list(remote.allowed_teams.all()) == [world.alpha]
    remote.refresh_from_db()
    assert not remote.is_public


def test_a_team_manager_who_removes_their_team_is_sent_home(
    world: World, remote: Dataset
) -> None:
    data = {"action": "save-access", "allowed_teams": []}
    response = post(world, "team_manager", "remote", "sharing", data, headers=HTMX)
    assert response["HX-Redirect"] == "/"
    assert remote.allowed_teams.count() == 0


def test_sharing_link_is_created_copied_and_revoked(
    world: World, remote: Dataset
) -> None:
    client = client_for(world, "team_manager")
    page = text_of(client.get(url("remote", "sharing")))
    assert "Create sharing link" in page
    assert "read-only, without an account" in page
    response = client.post(url("remote", "sharing"), {"action": "create-link"})
    assert response.status_code == 302
    remote.refresh_from_db()
    token = remote.sharing_token
    assert token
    assert token.startswith("vxs_")
    page = text_of(client.get(url("remote", "sharing")))
    link = f"http://testserver{dataset_page('remote')}?token={token}"
    assert f'value="{link}"' in page
    assert 'data-copy="#sharing-link"' in page
    assert "Revoke and create new" in page
    assert 'hx-confirm="Revoke this sharing link?' in page
    response = client.post(
        url("remote", "sharing"), {"action": "revoke-link"}, headers=HTMX
    )
    remote.refresh_from_db()
    assert remote.sharing_token != token
    assert check_sharing_token(token, "lab", "remote") is None
    assert check_sharing_token(remote.sharing_token, "lab", "remote") == remote
    assert f"?token={remote.sharing_token}" in text_of(response)


# Metadata ---------------------------------------------------------------------------


@pytest.mark.parametrize("persona", EDITORS)
def test_editors_change_display_name_and_description(
    world: World, remote: Dataset, persona: str
) -> None:
    data = {
        "action": "save-metadata",
        "display_name": "  Mouse cortex  ",
        "description": "# Cortex\r\n\r\n*EM* data",
    }
    response = post(world, persona, "remote", "metadata", data, headers=HTMX)
    assert response.status_code == 200
    remote.refresh_from_db()
    assert remote.display_name == "Mouse cortex"
    assert remote.description == "# Cortex\n\n*EM* data"
    body = response.content.decode()
    # The settings header and the details sidebar (out of band) follow.
    assert "<h1>Mouse cortex</h1>" in body
    assert "<em>EM</em>" in body.split('hx-swap-oob="innerHTML"', 1)[1]


def test_a_too_long_display_name_is_shown_at_its_field_with_the_input_kept(
    world: World, remote: Dataset
) -> None:
    data = {
        "action": "save-metadata",
        "display_name": "x" * 256,
        "description": "kept text",
    }
    response = post(world, "admin", "remote", "metadata", data)
    assert response.status_code == 200
    assert "no more than 255 characters" in field_error(response, "display-name")
    assert "kept text</textarea>" in response.content.decode()
    assert 'value="' + "x" * 256 + '"' in response.content.decode()
    remote.refresh_from_db()
    assert remote.display_name == ""


def test_tags_are_shown_read_only(world: World, remote: Dataset) -> None:
    from metaserver.datasets.dataset_actions import do_update_dataset

    do_update_dataset(remote, {"tags": ["EM", "cortex"]})
    body = text_of(client_for(world, "admin").get(url("remote", "metadata")))
    assert '<span class="chip">EM</span><span class="chip">cortex</span>' in body
    assert 'name="tags"' not in body


def test_description_preview_renders_markdown_without_scripts(
    world: World, remote: Dataset
) -> None:
    preview = "/datasets/lab/remote/settings/preview/"
    text = "**bold** <script>alert(1)</script> [x](javascript:alert(1))"
    response = client_for(world, "team_manager").post(preview, {"description": text})
    assert response.status_code == 200
    body = response.content.decode()
    assert "<strong>bold</strong>" in body
    assert "<script" not in body
    assert 'href="javascript' not in body
    empty = client_for(world, "admin").post(preview, {"description": " "})
    assert "Nothing to preview" in empty.content.decode()
    assert client_for(world, "member").post(preview, {}).status_code == 404
    assert client_for(world, "admin").get(preview).status_code == 405


# View configuration -------------------------------------------------------------


def test_view_configuration_is_saved_keeping_other_keys(
    world: World, remote: Dataset
) -> None:
    remote.default_view_configuration = {"rotation": [0, 0, 90], "zoom": 3}
    remote.save()
    data = {
        "action": "save-view",
        "position_x": "32",
        "position_y": "32",
        "position_z": "16",
        "zoom": "1.5",
        "interpolation": "on",
        "opacity": "40",
        "layers_json": '{"color": {"alpha": 80, "intensityRange": [0, 200]}}',
    }
    response = post(world, "team_manager", "remote", "view", data, headers=HTMX)
    assert json.loads(response["HX-Trigger"])["vh-toast"]["level"] == "success"
    remote.refresh_from_db()
    assert remote.default_view_configuration == {
        "rotation": [0, 0, 90],
        "position": [32, 32, 16],
        "zoom": 1.5,
        "interpolation": True,
        "segmentationPatternOpacity": 40,
        "layers": {"color": {"alpha": 80, "intensityRange": [0, 200]}},
    }
    assert "Also kept as stored: <code>rotation</code>" in response.content.decode()


def test_bad_view_configuration_shows_the_problems_at_the_fields(
    world: World, remote: Dataset
) -> None:
    data = {
        "action": "save-view",
        "position_x": "1",
        "position_y": "",
        "position_z": "2",
        "zoom": "-1",
        "opacity": "101",
        "layers_json": '{"nope": {}, "color": {"alpha": 101}}',
    }
    response = post(world, "admin", "remote", "view", data)
    assert response.status_code == 200
    body = text_of(response)
    assert re.search(r'id="position-error">must be a list of 3 numbers', body)
    assert field_error(response, "f-zoom").startswith("must be a number above 0")
    assert field_error(response, "f-opacity") == "must be a number from 0 to 100"
    assert (
        "<code>layers.nope</code> no such layer (layers: color, segmentation)" in body
    )
    assert "<code>layers.color.alpha</code> must be a number from 0 to 100" in body
    assert input_value(response, "f-zoom") == "-1"
    remote.refresh_from_db()
    assert remote.default_view_configuration is None
    data["layers_json"] = '{"color": {"alpha": 1,}}'
    data["zoom"] = "2"
    body = text_of(post(world, "admin", "remote", "view", data))
    assert "invalid JSON at line 1, column 23" in body
    assert '{"color": {"alpha": 1,}}</textarea>' in body


def test_clearing_the_view_configuration(world: World, remote: Dataset) -> None:
    remote.default_view_configuration = {"zoom": 2}
    remote.save()
    assert "Clear</button>" in text_of(
        client_for(world, "admin").get(url("remote", "view"))
    )
    response = post(world, "admin", "remote", "view", {"action": "clear-view"})
    assert response.status_code == 302
    remote.refresh_from_db()
    assert remote.default_view_configuration is None


# Delete -----------------------------------------------------------------------------


def test_delete_explains_the_trash_and_needs_the_typed_name(
    world: World, ondisk: Dataset
) -> None:
    client = client_for(world, "dataset_manager")
    page = text_of(client.get(url("ondisk", "delete")))
    assert "binaryData/lab/.trash/" in page
    assert "cannot be undone from the dashboard" in page
    assert 'data-expected="ondisk"' in page
    response = client.post(
        url("ondisk", "delete"), {"action": "delete", "confirm_name": "On disk"}
    )
    assert response.status_code == 200
    assert "Type the dataset's name, ondisk, to confirm." in text_of(response)
    assert Dataset.objects.filter(pk=ondisk.pk).exists()


def test_deleting_with_the_datastore_down_keeps_the_dataset(
    world: World, ondisk: Dataset
) -> None:
    data = {"action": "delete", "confirm_name": "ondisk"}
    response = post(world, "admin", "ondisk", "delete", data, headers=HTMX)
    assert response.status_code == 200
    assert "datastore store1 is unreachable" in text_of(response)
    assert Dataset.objects.filter(pk=ondisk.pk).exists()


@pytest.mark.parametrize("persona", ["admin", "dataset_manager"])
def test_managers_delete_and_go_home_with_a_toast(
    world: World, remote: Dataset, persona: str
) -> None:
    client = client_for(world, persona)
    data = {"action": "delete", "confirm_name": " remote "}
    response = client.post(url("remote", "delete"), data, headers=HTMX)
    assert response["HX-Redirect"] == "/"
    assert not Dataset.objects.filter(pk=remote.pk).exists()
    home = text_of(client.get("/"))
    assert "Deleted remote; its remote data was not touched." in home
    assert client.get(url("remote", "data")).status_code == 404


# Import -----------------------------------------------------------------------------


def _inferred(name: str) -> dict[str, Any]:
    source = segmentation_source(name)
    source["scale"] = {"factor": [1.0, 1.0, 1.0], "unit": "nanometer"}
    del source["dataLayers"][1]["largestSegmentId"]
    return source


@pytest.fixture
def found(world: World) -> Dataset:
    """Found on disk without properties; remote so that importing needs no node."""
    return world.dataset(
        "found",
        teams=(world.alpha,),
        status=Status.NEEDS_REVIEW,
        is_remote=True,
        datasource=_inferred("found"),
    )


IMPORT = "/datasets/lab/found/import/"


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("admin", 200),
        ("dataset_manager", 200),
        ("team_manager", 200),
        ("member", 404),
        ("member_without_team", 404),
        ("outsider", 404),
    ],
)
def test_import_screen_is_for_editors(
    world: World, found: Dataset, persona: str, status: int
) -> None:
    assert client_for(world, persona).get(IMPORT).status_code == status
    response = client_for(world, persona).post(IMPORT, {"scale_x": "1"})
    assert response.status_code == (200 if status == 200 else 404)


def test_import_shows_the_inferred_layers_and_asks_for_the_voxel_size(
    world: World, found: Dataset
) -> None:
    response = client_for(world, "admin").get(IMPORT)
    body = text_of(response)
    assert "Found on disk" in body
    assert '<th scope="row">color</th>' in body
    assert '<th scope="row">segmentation</th>' in body
    # 1 x 1 x 1 nm is the inference's guess: the person types the real one.
    assert input_value(response, "f-scale_x") == ""
    assert 'id="f-layer-1-largest"' in body
    assert 'id="f-layer-0-width"' not in body
    missing = client_for(world, "admin").post(IMPORT, {"scale_unit": "nanometer"})
    assert missing.status_code == 200
    assert field_error(missing, "f-scale_x") == "required"
    found.refresh_from_db()
    assert found.status == Status.NEEDS_REVIEW


def test_import_makes_the_dataset_active(world: World, found: Dataset) -> None:
    client = client_for(world, "team_manager")
    response = client.post(
        IMPORT,
        {
            "scale_x": "11.24",
            "scale_y": "11.24",
            "scale_z": "28",
            "scale_unit": "nanometer",
            "layer-1-largest": "4711",
            "display_name": "Found it",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == url("found", "sharing")
    found.refresh_from_db()
    assert found.status == Status.ACTIVE
    assert found.display_name == "Found it"
    assert found.datasource["scale"] == {
        "factor": [11.24, 11.24, 28],
        "unit": "nanometer",
    }
    assert found.datasource["dataLayers"][1]["largestSegmentId"] == 4711
    assert found.datasource["dataLayers"][0]["boundingBox"]["width"] == 64
    page = text_of(client.get(response["Location"]))
    assert "Imported Found it: it is active now." in page
    again = client.get(IMPORT)
    assert again.status_code == 302
    assert again["Location"] == url("found")


def test_import_of_a_dataset_on_disk_with_the_datastore_down(world: World) -> None:
    world.dataset("raw", status=Status.NEEDS_REVIEW, datasource=_inferred("raw"))
    response = client_for(world, "admin").post(
        "/datasets/lab/raw/import/",
        {"scale_x": "2", "scale_y": "2", "scale_z": "2", "scale_unit": "nanometer"},
    )
    assert response.status_code == 200
    assert "Nothing was changed: datastore store1 is unreachable" in text_of(response)
    assert input_value(response, "f-scale_x") == "2"
    assert Dataset.objects.get(name="raw").status == Status.NEEDS_REVIEW


def test_import_without_inferred_layers_says_what_is_needed(world: World) -> None:
    world.dataset(
        "nothing",
        status=Status.UNUSABLE,
        status_reason="no layers found: the dataset folder has no sub-folders",
        datasource=None,
    )
    client = client_for(world, "admin")
    body = text_of(client.get("/datasets/lab/nothing/import/"))
    assert "no layers found: the dataset folder has no sub-folders" in body
    assert "What is needed" in body
    assert 'name="scale_x"' not in body
    assert client.post("/datasets/lab/nothing/import/", {}).status_code == 409


def test_settings_of_a_dataset_to_review_link_to_the_import(
    world: World, found: Dataset
) -> None:
    body = text_of(client_for(world, "admin").get(url("found", "data")))
    assert f'href="{IMPORT}"' in body
    details = client_for(world, "admin").get("/datasets/lab/found/").content
    assert f'href="{IMPORT}"'.encode() in details


# Helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("scale.factor[1]", "scale_y"),
        ("scale[2]", "scale_z"),
        ("scale", "scale"),
        ("scale.unit", "scale_unit"),
        ("dataLayers[0].boundingBox.width", "layer-0-width"),
        ("dataLayers[3].boundingBox.topLeft[2]", "layer-3-z"),
        ("dataLayers[0].boundingBox", "layer-0-box"),
        ("dataLayers[1].largestSegmentId", "layer-1-largest"),
        ("dataLayers[0].elementClass", None),
        ("id.name", None),
    ],
)
def test_json_paths_map_to_form_inputs(path: str, field: str | None) -> None:
    assert field_for_path(path) == field


def test_datasources_are_shown_in_webknossos_key_order() -> None:
    scrambled = {
        "dataLayers": [{"mags": [], "name": "c", "boundingBox": {"depth": 1}}],
        "zzz": 1,
        "scale": {"unit": "nanometer", "factor": [1, 2, 3]},
        "id": {"team": "t", "name": "n"},
    }
    ordered = ordered_datasource(scrambled)
    assert list(ordered) == ["id", "scale", "dataLayers", "zzz"]
    assert list(ordered["dataLayers"][0]) == ["name", "boundingBox", "mags"]
    text = pretty_json(ordered)
    assert '"factor": [1, 2, 3]' in text
    assert json.loads(text) == scrambled


def test_line_diff_pairs_changed_lines_and_skips_unchanged_ones() -> None:
    old = "\n".join(f"line {i}" for i in range(20))
    new = old.replace("line 3", "line three").replace("line 15\n", "")
    diff = line_diff(old, new)
    assert (diff.removed, diff.added) == (2, 1)
    kinds = [row.kind for row in diff.rows]
    assert kinds.count("gap") == 1
    changed = [row for row in diff.rows if row.kind == "changed"]
    assert (changed[0].left, changed[0].right) == ("line 3", "line three")
    assert (changed[1].left, changed[1].right) == ("line 15", None)
    assert changed[1].right_kind == "empty"
