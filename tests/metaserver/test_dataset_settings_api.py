"""Dataset settings through the API: who may change what, and every bad input."""

from __future__ import annotations

from typing import Any

import pytest

from metaserver.accounts.models import Team
from metaserver.datasets.models import Dataset, Folder, Status

from .world import World, assert_json_error, datasource

URL = "/api/datasets/lab/{}/"


def patch(world: World, persona: str, name: str, body: Any) -> Any:
    return world.client(persona).patch(URL.format(name), body, format="json")


@pytest.fixture
def remote(world: World) -> Dataset:
    """A remote dataset: changing its datasource needs no datastore."""
    return world.dataset("remote", teams=(world.alpha,), is_remote=True)


@pytest.mark.parametrize("persona", ["admin", "dataset_manager", "team_manager"])
def test_editors_change_display_name_description_and_public_flag(
    world: World, remote: Dataset, persona: str
) -> None:
    response = patch(
        world,
        persona,
        "remote",
        {"display_name": "Mouse cortex", "description": "# Cortex", "is_public": True},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["display_name"] == "Mouse cortex"
    assert body["description"] == "# Cortex"
    assert body["description_html"] == "<h1>Cortex</h1>\n"
    assert body["is_public"] is True
    remote.refresh_from_db()
    assert (remote.display_name, remote.is_public) == ("Mouse cortex", True)


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("member", 404),
        ("member_without_team", 404),
        ("outsider", 404),
        ("anonymous", 401),
    ],
)
def test_others_cannot_change_datasets(
    world: World, remote: Dataset, persona: str, status: int
) -> None:
    response = patch(world, persona, "remote", {"display_name": "x"})
    assert response.status_code in (status, 403), response.content
    remote.refresh_from_db()
    assert remote.display_name == ""


def test_team_manager_cannot_change_datasets_of_other_teams(world: World) -> None:
    world.dataset("elsewhere", is_remote=True)
    assert_json_error(patch(world, "team_manager", "elsewhere", {"is_public": 1}), 404)


def test_description_is_stored_raw_and_rendered_without_scripts(
    world: World, remote: Dataset
) -> None:
    text = "**bold** <script>alert(1)</script> [x](javascript:alert(1))"
    body = patch(world, "admin", "remote", {"description": text}).json()
    assert body["description"] == text
    assert "<strong>bold</strong>" in body["description_html"]
    assert "<script>" not in body["description_html"]
    assert "javascript:" not in body["description_html"].replace(
        "[x](javascript:alert(1))", ""
    )


def test_tags_are_replaced_deduplicated_and_filterable(
    world: World, remote: Dataset
) -> None:
    world.dataset("plain", is_remote=True, teams=(world.alpha,))
    body = patch(world, "admin", "remote", {"tags": [" EM ", "cortex", "EM"]}).json()
    assert body["tags"] == ["EM", "cortex"]
    member = world.client("member")
    listed = member.get("/api/datasets/", {"tag": "EM"}).json()["results"]
    assert [d["name"] for d in listed] == ["remote"]
    both = member.get("/api/datasets/?tag=EM&tag=cortex").json()["results"]
    assert [d["name"] for d in both] == ["remote"]
    none = member.get("/api/datasets/?tag=EM&tag=nope").json()["results"]
    assert none == []
    assert member.get("/api/tags/").json() == [
        {"name": "EM", "datasets": 1},
        {"name": "cortex", "datasets": 1},
    ]
    assert world.client("outsider").get("/api/tags/").json() == []
    body = patch(world, "admin", "remote", {"tags": []}).json()
    assert body["tags"] == []


@pytest.mark.parametrize(
    "tags",
    [["x" * 65], [""], [5], "EM", [None], ["a\nb"], [f"t{i}" for i in range(101)]],
)
def test_bad_tags_are_400(world: World, remote: Dataset, tags: Any) -> None:
    body = assert_json_error(patch(world, "admin", "remote", {"tags": tags}), 400)
    assert "tags" in body["detail"]


def test_allowed_teams_are_set_and_must_belong_to_the_organization(
    world: World, remote: Dataset
) -> None:
    from metaserver.accounts.actions import do_create_team

    beta = do_create_team(world.lab, "beta")
    foreign = do_create_team(world.other, "foreign")
    body = patch(world, "admin", "remote", {"allowed_teams": [beta.pk]}).json()
    assert body["allowed_teams"] == [{"id": beta.pk, "name": "beta"}]
    assert world.client("member").get(URL.format("remote")).status_code == 404
    bad = patch(world, "admin", "remote", {"allowed_teams": [foreign.pk, 99999]})
    detail = assert_json_error(bad, 400)["detail"]
    assert str(foreign.pk) in str(detail)
    assert "99999" in str(detail)
    assert list(remote.allowed_teams.all()) == [beta]
    assert isinstance(Team.objects.get(pk=foreign.pk), Team)


def test_unknown_fields_and_wrong_types_are_400_naming_them(
    world: World, remote: Dataset
) -> None:
    cases: list[tuple[Any, str]] = [
        ({"displayName": "x"}, "displayName"),
        ({"is_public": "yes"}, "is_public"),
        ({"is_public": 1}, "is_public"),
        ({"display_name": 5}, "display_name"),
        ({"display_name": "x" * 256}, "display_name"),
        ({"folder": "abc"}, "folder"),
        ({"allowed_teams": "alpha"}, "allowed_teams"),
        (["a", "list"], "JSON object"),
        ({"sharing_token": "vxs_mine"}, "sharing_token"),
        ({"name": "renamed"}, "name"),
    ]
    for body, named in cases:
        response = patch(world, "admin", "remote", body)
        assert named in str(assert_json_error(response, 400)["detail"]), body
    remote.refresh_from_db()
    assert remote.name == "remote"
    assert remote.sharing_token is None


def test_view_configuration_is_validated_with_json_paths(
    world: World, remote: Dataset
) -> None:
    good = {
        "position": [32, 32, 16],
        "zoom": 1.5,
        "interpolation": True,
        "segmentationPatternOpacity": 40,
        "layers": {"color": {"alpha": 80, "intensityRange": [0, 200]}},
    }
    body = patch(world, "admin", "remote", {"default_view_configuration": good}).json()
    assert body["default_view_configuration"] == good
    bad = {
        "position": [1, 2],
        "zoom": -1,
        "layers": {"nope": {}, "color": {"alpha": 101, "color": [0, 0, 300]}},
        "colour": 1,
    }
    detail = assert_json_error(
        patch(world, "admin", "remote", {"default_view_configuration": bad}), 400
    )["detail"]
    paths = {p["path"] for p in detail["default_view_configuration"]}
    assert paths == {
        "position",
        "zoom",
        "layers.nope",
        "layers.color.alpha",
        "layers.color.color",
        "colour",
    }
    remote.refresh_from_db()
    assert remote.default_view_configuration == good
    cleared = patch(world, "admin", "remote", {"default_view_configuration": None})
    assert cleared.json()["default_view_configuration"] is None


def test_invalid_datasource_is_400_with_the_json_path(
    world: World, remote: Dataset
) -> None:
    source = datasource("remote")
    source["scale"]["factor"] = [11, -1, 28]
    del source["dataLayers"][0]["elementClass"]
    detail = assert_json_error(
        patch(world, "admin", "remote", {"datasource": source}), 400
    )["detail"]
    paths = {p["path"] for p in detail["datasource"]}
    assert paths == {"dataLayers[0].elementClass", "scale.factor[1]"}
    remote.refresh_from_db()
    assert remote.datasource == datasource("remote")


def test_remote_dataset_datasource_changes_only_the_record(
    world: World, remote: Dataset
) -> None:
    source = datasource("whatever")
    source["scale"]["factor"] = [4, 4, 40]
    body = patch(world, "dataset_manager", "remote", {"datasource": source}).json()
    assert body["datasource"]["scale"]["factor"] == [4, 4, 40]
    # The id always names the dataset itself.
    assert body["datasource"]["id"] == {"name": "remote", "team": "lab"}
    assert body["datasource"]["dataLayers"][0]["someFutureKey"] == {"kept": True}


def test_datasource_change_with_the_datastore_down_changes_nothing(
    world: World,
) -> None:
    dataset = world.dataset("ondisk", display_name="before")
    source = datasource("ondisk")
    source["scale"]["factor"] = [1, 1, 1]
    response = patch(
        world,
        "admin",
        "ondisk",
        {"datasource": source, "display_name": "after"},
    )
    body = assert_json_error(response, 503)
    assert "store1" in body["detail"]
    dataset.refresh_from_db()
    assert dataset.display_name == "before"
    assert dataset.datasource == datasource("ondisk")


def test_delete_needs_admin_or_dataset_manager(world: World, remote: Dataset) -> None:
    for persona in ("team_manager", "member", "outsider"):
        response = world.client(persona).delete(URL.format("remote"))
        assert response.status_code == 404, (persona, response.content)
    assert world.client("anonymous").delete(URL.format("remote")).status_code in (
        401,
        403,
    )
    response = world.client("dataset_manager").delete(URL.format("remote"))
    assert response.json() == {"deleted": "lab/remote", "trash": None}
    assert not Dataset.objects.filter(name="remote").exists()


def test_deleting_a_dataset_on_disk_with_the_datastore_down_keeps_it(
    world: World,
) -> None:
    world.dataset("ondisk")
    assert_json_error(world.client("admin").delete(URL.format("ondisk")), 503)
    assert Dataset.objects.filter(name="ondisk").exists()


def test_listing_searches_descriptions_and_sorts(world: World) -> None:
    world.dataset("b_set", display_name="Zebra", description="retina scan")
    world.dataset("mid", display_name="", description="cortex")
    world.dataset("c_set", display_name="Alpha", status=Status.UNUSABLE)
    client = world.client("admin")

    def names(**query: str) -> list[str]:
        response = client.get("/api/datasets/", query)
        assert response.status_code == 200, response.content
        return [d["name"] for d in response.json()["results"]]

    assert names(q="RETINA") == ["b_set"]
    assert names(ordering="-name") == ["mid", "c_set", "b_set"]
    # Display names sort case-insensitively, falling back to the name.
    assert names(ordering="display_name") == ["c_set", "mid", "b_set"]
    assert names(ordering="-display_name") == ["b_set", "mid", "c_set"]
    assert names(status="unusable") == ["c_set"]
    assert_json_error(client.get("/api/datasets/", {"ordering": "password"}), 400)
    assert_json_error(client.get("/api/datasets/", {"folder": "x"}), 400)
    assert names(q="") == ["b_set", "c_set", "mid"]


def test_every_dataset_lives_in_a_folder(world: World) -> None:
    dataset = world.dataset("anywhere")
    assert dataset.folder == Folder.objects.root_of(world.lab.pk)
    body = world.client("admin").get(URL.format("anywhere")).json()
    assert body["folder"] == dataset.folder_id
