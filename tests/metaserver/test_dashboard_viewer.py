"""The dataset viewer page and its view configurations: who may open, save, reset."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client

from metaserver.accounts.viewer_tokens import user_for_viewer_token
from metaserver.datasets.dataset_actions import (
    do_get_sharing_token,
    do_revoke_sharing_token,
)
from metaserver.datasets.models import Dataset, UserViewConfiguration
from metaserver.datasets.view_hierarchy import (
    clean_view_configuration,
    computed_view_configuration,
    merge_view_configurations,
    view_levels,
)

from .world import World, datasource

pytestmark = pytest.mark.timeout(60)

MANAGERS = ("superuser", "admin", "dataset_manager", "team_manager")


def client_for(world: World, persona: str, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    if persona != "anonymous":
        client.force_login(world.users[persona])
    return client


def view_url(name: str, suffix: str = "", organization: str = "lab") -> str:
    return f"/datasets/{organization}/{name}/view/{suffix}"


def viewer_data(response: Any) -> dict[str, Any]:
    """The JSON the page hands to viewer.js."""
    html = response.content.decode()
    found = re.search(
        r'<script id="viewer-data" type="application/json">(.*?)</script>', html, re.S
    )
    assert found, "the page has no viewer data"
    return json.loads(found.group(1))


def post_json(client: Client, url: str, body: Any, method: str = "post") -> Any:
    return getattr(client, method)(
        url, data=json.dumps(body), content_type="application/json"
    )


# ---- who may open the page --------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("superuser", 200),
        ("admin", 200),
        ("dataset_manager", 200),
        ("team_manager", 200),
        ("member", 200),
        ("member_without_team", 404),
        ("outsider", 404),
    ],
)
def test_a_private_datasets_viewer_opens_for_its_readers_only(
    world: World, datasets: dict[str, Dataset], persona: str, status: int
) -> None:
    response = client_for(world, persona).get(view_url("private"))
    assert response.status_code == status
    if status == 200:
        data = viewer_data(response)
        assert data["layers"][0]["name"] == "color"
        assert data["dataUrl"] == "http://store1:8080/data/datasets/lab/private/layers/"


def test_anonymous_visitors_of_a_private_dataset_are_sent_to_the_login(
    datasets: dict[str, Dataset],
) -> None:
    response = Client().get(view_url("private"))
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/datasets/lab/private/view/"


def test_a_missing_dataset_looks_like_a_forbidden_one(world: World) -> None:
    client = client_for(world, "member_without_team")
    assert client.get(view_url("does_not_exist")).status_code == 404


@pytest.mark.parametrize(
    "persona",
    [
        "admin",
        "dataset_manager",
        "team_manager",
        "member",
        "member_without_team",
        "outsider",
        "anonymous",
    ],
)
def test_everyone_opens_the_viewer_of_a_public_dataset(
    world: World, datasets: dict[str, Dataset], persona: str
) -> None:
    response = client_for(world, persona).get(view_url("public"))
    assert response.status_code == 200
    data = viewer_data(response)
    # Only logged-in readers keep a view of their own.
    assert (data["ownUrl"] is None) == (persona == "anonymous")
    if persona == "anonymous":
        assert data["token"] == ""
        assert data["tokenUrl"] is None


def test_logged_in_readers_get_a_viewer_token_of_their_own(
    world: World, datasets: dict[str, Dataset]
) -> None:
    data = viewer_data(client_for(world, "member").get(view_url("private")))
    assert data["token"].startswith("vxt_")
    assert user_for_viewer_token(data["token"]) == world.users["member"]
    fresh = client_for(world, "member").get(view_url("private", "token/"))
    assert fresh.status_code == 200
    assert user_for_viewer_token(fresh.json()["token"]) == world.users["member"]
    assert "no-store" in fresh["Cache-Control"]


def test_only_readers_get_fresh_viewer_tokens(
    world: World, datasets: dict[str, Dataset]
) -> None:
    assert Client().get(view_url("private", "token/")).status_code == 403
    outsider = client_for(world, "outsider")
    assert outsider.get(view_url("private", "token/")).status_code == 404


@pytest.mark.parametrize("persona", ["anonymous", "outsider"])
def test_a_sharing_token_opens_the_viewer_without_access_and_goes_to_the_datastore(
    world: World, datasets: dict[str, Dataset], persona: str
) -> None:
    token = do_get_sharing_token(datasets["hidden"])
    response = client_for(world, persona).get(view_url("hidden") + f"?token={token}")
    assert response.status_code == 200
    data = viewer_data(response)
    assert data["token"] == token
    assert data["ownUrl"] is None
    assert data["defaultUrl"] is None
    assert b"Shared link" in response.content


def test_a_wrong_or_revoked_sharing_token_opens_nothing(
    world: World, datasets: dict[str, Dataset]
) -> None:
    token = do_get_sharing_token(datasets["hidden"])
    other = do_get_sharing_token(datasets["private"])
    anonymous = Client()
    assert anonymous.get(view_url("hidden") + f"?token={other}").status_code == 302
    do_revoke_sharing_token(datasets["hidden"])
    assert anonymous.get(view_url("hidden") + f"?token={token}").status_code == 302
    outsider = client_for(world, "outsider")
    assert outsider.get(view_url("hidden") + f"?token={token}").status_code == 404


def test_an_unusable_dataset_says_why_instead_of_showing_planes(
    world: World, datasets: dict[str, Dataset]
) -> None:
    response = client_for(world, "admin").get(view_url("broken"))
    assert response.status_code == 200
    assert b"not found on disk" in response.content
    assert b'id="viewer-data"' not in response.content


def test_layers_the_viewer_cannot_draw_say_so(world: World) -> None:
    source = datasource("rgb")
    source["dataLayers"][0]["elementClass"] = "uint24"
    world.dataset("rgb", datasource=source, is_public=True)
    response = Client().get(view_url("rgb"))
    assert response.status_code == 200
    assert viewer_data(response)["layers"][0]["supported"] is False
    assert b"RGB (uint24) color layers cannot be shown in this viewer yet." in (
        response.content
    )


def test_the_details_sidebar_links_to_the_viewer(
    world: World, datasets: dict[str, Dataset]
) -> None:
    response = client_for(world, "member").get(
        "/datasets/lab/private/", headers={"HX-Request": "true"}
    )
    assert b'href="/datasets/lab/private/view/"' in response.content
    broken = client_for(world, "admin").get(
        "/datasets/lab/broken/", headers={"HX-Request": "true"}
    )
    assert b'href="/datasets/lab/broken/view/"' not in broken.content


# ---- the dataset's default ----------------------------------------------------

GOOD = {
    "position": [10, 20, 5],
    "zoom": 2.5,
    "segmentationPatternOpacity": 60,
    "layers": {"color": {"intensityRange": [10, 200], "alpha": 100}},
}


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("superuser", 200),
        ("admin", 200),
        ("dataset_manager", 200),
        ("team_manager", 200),
        ("member", 403),
        ("member_without_team", 404),
        ("outsider", 404),
        ("anonymous", 403),
    ],
)
def test_saving_the_default_view_needs_edit_rights(
    world: World, datasets: dict[str, Dataset], persona: str, status: int
) -> None:
    response = post_json(
        client_for(world, persona), view_url("private", "default/"), GOOD
    )
    assert response.status_code == status, response.content
    body = response.json()
    datasets["private"].refresh_from_db()
    if status == 200:
        assert datasets["private"].default_view_configuration == GOOD
        assert body["datasetDefault"]["position"] == [10, 20, 5]
    else:
        assert set(body) == {"error", "detail"}
        assert datasets["private"].default_view_configuration is None


def test_the_page_offers_saving_the_default_to_editors_only(
    world: World, datasets: dict[str, Dataset]
) -> None:
    for persona in MANAGERS:
        page = client_for(world, persona).get(view_url("private"))
        assert viewer_data(page)["defaultUrl"] == view_url("private", "default/")
        assert b"Save view configuration as default" in page.content
    member = client_for(world, "member").get(view_url("private"))
    assert viewer_data(member)["defaultUrl"] is None
    assert b"Save view configuration as default" not in member.content


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"zoom": -1}, "zoom"),
        ({"position": [1, 2]}, "position"),
        ({"layers": {"nope": {"alpha": 5}}}, "layers.nope"),
        (
            {"layers": {"color": {"intensityRange": [9, 1]}}},
            "layers.color.intensityRange",
        ),
        ({"fancy": True}, "fancy"),
        ([1, 2, 3], "(root)"),
    ],
)
def test_a_bad_default_is_refused_with_the_json_path_of_the_problem(
    world: World, datasets: dict[str, Dataset], body: Any, path: str
) -> None:
    response = post_json(
        client_for(world, "admin"), view_url("private", "default/"), body
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid view configuration"
    assert [p["path"] for p in response.json()["detail"]] == [path]


def test_malformed_and_huge_bodies_are_refused(
    world: World, datasets: dict[str, Dataset]
) -> None:
    client = client_for(world, "admin")
    broken = client.post(
        view_url("private", "default/"), data="{", content_type="application/json"
    )
    assert broken.status_code == 400
    assert broken.json()["error"] == "malformed request body"
    huge = {"position": [1, 2, 3], "layers": {"color": {"min": 1}}, "x": "y" * 70_000}
    assert post_json(client, view_url("private", "own/"), huge).status_code == 413


def test_saving_needs_the_csrf_token(
    world: World, datasets: dict[str, Dataset]
) -> None:
    client = client_for(world, "admin", enforce_csrf_checks=True)
    assert post_json(client, view_url("private", "default/"), GOOD).status_code == 403
    assert post_json(client, view_url("private", "own/"), GOOD).status_code == 403
    page = client.get(view_url("private"))
    token = re.search(
        rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content
    ).group(1)
    response = client.post(
        view_url("private", "own/"),
        data=json.dumps(GOOD),
        content_type="application/json",
        headers={"X-CSRFToken": token.decode()},
    )
    assert response.status_code == 200


# ---- the user's own view ------------------------------------------------------


def test_a_members_own_view_is_kept_and_wins_over_the_default(
    world: World, datasets: dict[str, Dataset]
) -> None:
    admin = client_for(world, "admin")
    assert post_json(admin, view_url("private", "default/"), GOOD).status_code == 200
    member = client_for(world, "member")
    own = {"position": [30, 31, 3], "layers": {"color": {"alpha": 50}}}
    assert post_json(member, view_url("private", "own/"), own).status_code == 200
    data = viewer_data(member.get(view_url("private")))
    assert data["hasOwnConfiguration"] is True
    assert data["configuration"]["position"] == [30, 31, 3]
    # Key by key: the default's zoom and intensity range stay.
    assert data["configuration"]["zoom"] == 2.5
    assert data["configuration"]["layers"]["color"]["intensityRange"] == [10, 200]
    assert data["configuration"]["layers"]["color"]["alpha"] == 50
    assert data["datasetDefault"]["position"] == [10, 20, 5]
    # Somebody else still opens at the default.
    other = viewer_data(client_for(world, "team_manager").get(view_url("private")))
    assert other["configuration"]["position"] == [10, 20, 5]
    assert other["hasOwnConfiguration"] is False


def test_saving_the_own_view_again_replaces_it(
    world: World, datasets: dict[str, Dataset]
) -> None:
    member = client_for(world, "member")
    for x in (1, 2, 3):
        body = {"position": [x, 0, 0]}
        assert post_json(member, view_url("private", "own/"), body).status_code == 200
    stored = UserViewConfiguration.objects.get(user=world.users["member"])
    assert stored.configuration == {"position": [3, 0, 0]}


def test_reset_forgets_the_own_view(world: World, datasets: dict[str, Dataset]) -> None:
    member = client_for(world, "member")
    post_json(member, view_url("private", "own/"), {"position": [30, 31, 3]})
    response = member.delete(view_url("private", "own/"))
    assert response.status_code == 200
    assert response.json()["cleared"] is True
    assert response.json()["configuration"]["position"] == [32, 32, 16]
    assert not UserViewConfiguration.objects.exists()
    again = member.delete(view_url("private", "own/"))
    assert again.json()["cleared"] is False


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"zoom": 0}, "zoom"),
        ({"position": [1, 2, "x"]}, "position"),
        ({"layers": {"color": {"alpha": 101}}}, "layers.color.alpha"),
        ({"layers": {"gone": {}}}, "layers.gone"),
        (None, "(root)"),
    ],
)
def test_a_bad_own_view_is_refused_with_the_json_path(
    world: World, datasets: dict[str, Dataset], body: Any, path: str
) -> None:
    response = post_json(client_for(world, "member"), view_url("private", "own/"), body)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert [p["path"] for p in body["detail"]] == [path]
    assert not UserViewConfiguration.objects.exists()


@pytest.mark.parametrize(
    ("persona", "status"),
    [("anonymous", 403), ("outsider", 404), ("member_without_team", 404)],
)
def test_only_readers_keep_an_own_view(
    world: World, datasets: dict[str, Dataset], persona: str, status: int
) -> None:
    client = client_for(world, persona)
    assert post_json(client, view_url("private", "own/"), GOOD).status_code == status
    assert client.delete(view_url("private", "own/")).status_code == status
    assert not UserViewConfiguration.objects.exists()


def test_a_sharing_token_does_not_let_anyone_keep_a_view(
    world: World, datasets: dict[str, Dataset]
) -> None:
    token = do_get_sharing_token(datasets["hidden"])
    client = client_for(world, "outsider")
    url = view_url("hidden", "own/") + f"?token={token}"
    assert post_json(client, url, GOOD).status_code == 404


def test_own_views_go_when_the_dataset_or_user_goes(
    world: World, datasets: dict[str, Dataset]
) -> None:
    member = client_for(world, "member")
    post_json(member, view_url("private", "own/"), GOOD)
    world.users["member"].delete()
    assert not UserViewConfiguration.objects.exists()


# ---- the hierarchy --------------------------------------------------------------


def two_layer_source() -> dict[str, Any]:
    source = datasource("two")
    source["dataLayers"][0]["boundingBox"] = {
        "topLeft": [100, 200, 10],
        "width": 50,
        "height": 40,
        "depth": 21,
    }
    source["dataLayers"][0]["elementClass"] = "uint16"
    source["dataLayers"].insert(
        0,
        {
            "name": "segmentation",
            "category": "segmentation",
            "boundingBox": {"topLeft": [0, 0, 0], "width": 8, "height": 8, "depth": 8},
            "elementClass": "uint64",
            "dataFormat": "zarr3",
            "mags": [{"mag": [2, 2, 1]}],
            "largestSegmentId": 9,
        },
    )
    return source


def test_computed_defaults_centre_on_the_first_color_layer_with_full_ranges() -> None:
    computed = computed_view_configuration(two_layer_source())
    assert computed["position"] == [125, 220, 20]
    assert computed["zoom"] == 1.0
    assert computed["layers"]["color"]["intensityRange"] == [0, 65535]
    assert computed["layers"]["segmentation"] == {"alpha": 100, "isDisabled": False}


def test_float_layers_get_no_computed_intensity_range() -> None:
    source = datasource("f")
    source["dataLayers"][0]["elementClass"] = "float"
    computed = computed_view_configuration(source)
    assert "intensityRange" not in computed["layers"]["color"]


def test_levels_merge_key_by_key_and_layer_by_layer() -> None:
    merged = merge_view_configurations(
        {"zoom": 1, "position": [1, 1, 1], "layers": {"a": {"alpha": 100, "x": 1}}},
        {"zoom": 2, "layers": {"a": {"alpha": 50}, "b": {"alpha": 10}}},
        None,
        {"position": [5, 5, 5], "layers": {"a": {"isDisabled": True}}},
    )
    assert merged == {
        "zoom": 2,
        "position": [5, 5, 5],
        "layers": {
            "a": {"alpha": 50, "x": 1, "isDisabled": True},
            "b": {"alpha": 10},
        },
    }


def test_merging_does_not_change_its_inputs() -> None:
    low = {"layers": {"a": {"alpha": 1}}}
    merge_view_configurations(low, {"layers": {"a": {"alpha": 2}}})
    assert low == {"layers": {"a": {"alpha": 1}}}


def test_cleaning_drops_what_the_validator_refuses() -> None:
    clean = clean_view_configuration(
        {
            "zoom": -3,
            "position": [1, 2, 3],
            "sparkles": True,
            "layers": {"color": {"alpha": 500, "isDisabled": True}, "gone": {}},
        },
        ["color"],
    )
    assert clean == {"position": [1, 2, 3], "layers": {"color": {"isDisabled": True}}}
    assert clean_view_configuration("junk", ["color"]) == {}


def test_the_hierarchy_is_computed_then_datasource_then_dataset_then_user() -> None:
    source = two_layer_source()
    source["defaultViewConfiguration"] = {"zoom": 3, "position": [1, 2, 3]}
    source["dataLayers"][1]["defaultViewConfiguration"] = {
        "intensityRange": [100, 4000],
        "color": [255, 0, 0],
    }
    levels = view_levels(
        source,
        {"position": [7, 8, 9], "layers": {"color": {"color": [0, 255, 0]}}},
        {"zoom": 0.5, "layers": {"segmentation": {"isDisabled": True}}},
    )
    default = levels.dataset_default
    assert default["zoom"] == 3
    assert default["position"] == [7, 8, 9]
    assert default["layers"]["color"]["intensityRange"] == [100, 4000]
    assert default["layers"]["color"]["color"] == [0, 255, 0]
    effective = levels.effective
    assert effective["zoom"] == 0.5
    assert effective["position"] == [7, 8, 9]
    assert effective["layers"]["segmentation"]["isDisabled"] is True
    assert effective["layers"]["segmentation"]["alpha"] == 100


def test_an_own_view_of_a_layer_that_is_gone_is_ignored() -> None:
    levels = view_levels(
        datasource("x"), None, {"layers": {"old": {"alpha": 3}}, "zoom": 4}
    )
    assert levels.effective["zoom"] == 4
    assert set(levels.effective["layers"]) == {"color"}


def test_the_page_and_a_save_take_a_handful_of_queries(
    world: World,
    datasets: dict[str, Dataset],
    django_assert_max_num_queries: Any,
) -> None:
    member = client_for(world, "member")
    member.get(view_url("private"))  # the session and its viewer token exist now
    # Session, user, the read gate, the own view, the edit gate, organizations.
    with django_assert_max_num_queries(9):
        assert member.get(view_url("private")).status_code == 200
    # Session, user, the read gate, then one upsert.
    with django_assert_max_num_queries(4):
        assert post_json(member, view_url("private", "own/"), GOOD).status_code == 200
