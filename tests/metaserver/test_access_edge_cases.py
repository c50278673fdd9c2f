"""RELIABILITY 25 on the metaserver: odd but valid worlds, right answers, no 500s."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from metaserver.accounts.models import Organization
from metaserver.datasets.models import Folder

from .world import World, assert_json_error, datasource


def test_organization_with_no_teams_and_no_folders_lists_cleanly(world: World) -> None:
    bare = Organization.objects.create(name="bare", display_name="Bare")
    from metaserver.accounts.actions import do_set_role

    do_set_role(world.users["member"], bare, "member")
    folders = world.client("member").get("/api/folders/?organization=bare")
    assert folders.status_code == 200, folders.content
    # Made outside the actions (like the Django admin would): the root appears.
    assert [(f["name"], f["is_root"]) for f in folders.json()] == [("Bare", True)]
    listing = world.client("member").get("/api/datasets/?organization=bare")
    assert listing.json()["results"] == []
    assert Folder.objects.filter(organization=bare, parent=None).count() == 1


def test_empty_values_in_queries_filter_nothing(world: World) -> None:
    world.dataset("one", teams=(world.alpha,))
    client = world.client("member")
    for query in ("?tag=", "?q=", "?tag=&tag=", "?folder=", "?q=&tag=&ordering=name"):
        response = client.get("/api/datasets/" + query)
        assert response.status_code == 200, (query, response.content)
        assert [d["name"] for d in response.json()["results"]] == ["one"], query


def test_empty_lists_in_bodies_are_fine_or_clear_400s(world: World) -> None:
    world.dataset("one", is_remote=True)
    client = world.client("admin")
    body = {"tags": [], "allowed_teams": []}
    response = client.patch("/api/datasets/lab/one/", body, format="json")
    assert response.status_code == 200, response.content
    root = Folder.objects.root_of(world.lab.pk)
    moved = client.post(
        "/api/datasets/move/", {"datasets": [], "folder": root.pk}, format="json"
    )
    assert "datasets" in str(assert_json_error(moved, 400)["detail"])
    assert client.patch("/api/datasets/lab/one/", {}, format="json").status_code == 200


def test_only_coarse_mags_and_huge_segment_ids_survive_a_round_trip(
    world: World,
) -> None:
    world.dataset("coarse", is_remote=True)
    source: dict[str, Any] = datasource("coarse")
    layer = source["dataLayers"][0]
    layer["mags"] = [{"mag": [4, 4, 2], "path": "./color/4-4-2"}]
    segmentation = {
        **layer,
        "name": "segmentation",
        "category": "segmentation",
        "elementClass": "uint64",
        "largestSegmentId": 2**64 - 1,
        "mags": [{"mag": [8, 8, 4], "path": "./segmentation/8-8-4"}],
    }
    source["dataLayers"].append(segmentation)
    client = world.client("admin")
    response = client.patch(
        "/api/datasets/lab/coarse/", {"datasource": source}, format="json"
    )
    assert response.status_code == 200, response.content
    read = client.get("/api/datasets/lab/coarse/").json()["datasource"]
    assert read["dataLayers"][1]["largestSegmentId"] == 2**64 - 1
    assert read["dataLayers"][0]["mags"] == [
        {"mag": [4, 4, 2], "path": "./color/4-4-2"}
    ]
    too_big = {**segmentation, "largestSegmentId": 2**64}
    source["dataLayers"][1] = too_big
    response = client.patch(
        "/api/datasets/lab/coarse/", {"datasource": source}, format="json"
    )
    detail = assert_json_error(response, 400)["detail"]
    assert "dataLayers[1].largestSegmentId" in str(detail)


def test_logged_out_user_reads_a_public_dataset(world: World) -> None:
    world.dataset("open", is_public=True)
    client = APIClient()
    assert client.get("/api/datasets/lab/open/").status_code == 200
    assert [d["name"] for d in client.get("/api/datasets/").json()["results"]] == [
        "open"
    ]
    assert client.get("/api/tags/").status_code == 200
