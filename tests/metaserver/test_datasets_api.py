"""GET /api/datasets/ and /api/datasets/{org}/{name}/ for every persona."""

from __future__ import annotations

from typing import Any

import pytest

from metaserver.datasets.models import Dataset, Folder, Status

from .world import World, assert_json_error, datasource

# Who sees which of the `datasets` fixture's datasets.
VISIBLE = {
    "superuser": {"private", "public", "hidden", "broken", "other_private"},
    "admin": {"private", "public", "hidden", "broken"},
    "dataset_manager": {"private", "public", "hidden", "broken"},
    "member": {"private", "public"},
    "member_without_team": {"public"},
    "outsider": {"public", "other_private"},
    "anonymous": {"public"},
}


def _names(response: Any) -> set[str]:
    assert response.status_code == 200, response.content
    return {item["name"] for item in response.json()["results"]}


@pytest.mark.parametrize(("persona", "expected"), sorted(VISIBLE.items()))
def test_listing_shows_each_persona_exactly_the_datasets_it_may_see(
    world: World, datasets: dict[str, Dataset], persona: str, expected: set[str]
) -> None:
    assert _names(world.client(persona).get("/api/datasets/")) == expected


@pytest.mark.parametrize(("persona", "expected"), sorted(VISIBLE.items()))
def test_detail_is_found_exactly_where_the_listing_shows_it(
    world: World, datasets: dict[str, Dataset], persona: str, expected: set[str]
) -> None:
    client = world.client(persona)
    for key, dataset in datasets.items():
        response = client.get(f"/api/datasets/{dataset.organization.name}/{key}/")
        if key in expected:
            assert response.status_code == 200, (key, response.content)
            assert response.json()["name"] == key
        else:
            body = assert_json_error(response, 404)
            assert body["error"] == "not found"


def test_missing_and_forbidden_datasets_look_the_same(
    world: World, datasets: dict[str, Dataset]
) -> None:
    client = world.client("outsider")
    forbidden = client.get("/api/datasets/lab/hidden/")
    missing = client.get("/api/datasets/lab/no_such_dataset/")
    assert forbidden.status_code == missing.status_code == 404
    assert set(forbidden.json()) == set(missing.json())
    assert forbidden.json()["error"] == missing.json()["error"]


def test_dataset_item_has_the_documented_shape(
    world: World, datasets: dict[str, Dataset]
) -> None:
    response = world.client("admin").get("/api/datasets/lab/private/")
    body = response.json()
    for key in (
        "name",
        "organization",
        "display_name",
        "status",
        "status_reason",
        "datastore",
        "datasource",
        "is_public",
        "created",
        "updated",
    ):
        assert key in body
    assert body["organization"] == "lab"
    assert body["datastore"] == {"name": "store1", "url": "http://store1:8080"}
    assert body["datasource"]["dataLayers"][0]["boundingBox"]["topLeft"] == [0, 0, 0]
    assert body["datasource"]["dataLayers"][0]["someFutureKey"] == {"kept": True}


def test_datastore_url_of_a_dataset_is_the_public_one(world: World) -> None:
    world.dataset("elsewhere", datastore=world.other_datastore, is_public=True)
    body = world.client("anonymous").get("/api/datasets/lab/elsewhere/").json()
    assert body["datastore"]["url"] == "https://data.example.org"


def test_listing_filters_by_search_text_organization_and_status(
    world: World, datasets: dict[str, Dataset]
) -> None:
    Dataset.objects.filter(name="hidden").update(display_name="Mouse cortex")
    client = world.client("superuser")
    assert _names(client.get("/api/datasets/", {"q": "CORTEX"})) == {"hidden"}
    assert _names(client.get("/api/datasets/", {"q": "priv"})) == {
        "private",
        "other_private",
    }
    assert _names(client.get("/api/datasets/", {"organization": "other"})) == {
        "other_private"
    }
    assert _names(client.get("/api/datasets/", {"status": "unusable"})) == {"broken"}
    assert _names(client.get("/api/datasets/", {"organization": "nobody"})) == set()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "sleeping"}, "status"),
        ({"organization": "../etc"}, "organization"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "1001"}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
        ({"page": "-1"}, "page"),
        ({"page": "first"}, "page"),
    ],
)
def test_bad_listing_parameters_give_400_naming_the_parameter(
    world: World, params: dict[str, str], field: str
) -> None:
    body = assert_json_error(world.client("admin").get("/api/datasets/", params), 400)
    assert field in body["detail"]


def test_listing_is_paginated_in_a_stable_order(world: World) -> None:
    for index in range(7):
        world.dataset(f"ds{index}", is_public=True)
    client = world.client("anonymous")
    first = client.get("/api/datasets/", {"page_size": 3}).json()
    assert first["count"] == 7
    assert [d["name"] for d in first["results"]] == ["ds0", "ds1", "ds2"]
    third = client.get("/api/datasets/", {"page_size": 3, "page": 3}).json()
    assert [d["name"] for d in third["results"]] == ["ds6"]
    assert third["next"] is None
    body = assert_json_error(client.get("/api/datasets/", {"page": 4}), 404)
    assert "page 4" in body["detail"]
    body = assert_json_error(
        client.get("/api/datasets/", {"page": 5, "page_size": 3}), 404
    )
    assert body["detail"] == "page 5 does not exist (3 pages)"
    second = client.get("/api/datasets/", {"page_size": 3, "page": 2}).json()
    assert [d["name"] for d in second["results"]] == ["ds3", "ds4", "ds5"]
    assert second["previous"]
    assert second["next"]
    assert second["count"] == 7


def test_an_empty_listing_is_one_empty_page(world: World) -> None:
    Dataset.objects.all().delete()
    body = world.client("anonymous").get("/api/datasets/").json()
    assert body == {"count": 0, "next": None, "previous": None, "results": []}
    assert_json_error(world.client("anonymous").get("/api/datasets/", {"page": 2}), 404)


def _add_team_datasets(world: World, count: int) -> None:
    Dataset.objects.all().delete()
    root = Folder.objects.root_of(world.lab.pk)
    created = Dataset.objects.bulk_create(
        Dataset(
            organization=world.lab,
            folder=root,
            datastore=world.datastore,
            name=f"bulk{index:04d}",
            datasource=datasource(f"bulk{index:04d}"),
            status=Status.ACTIVE,
        )
        for index in range(count)
    )
    world.alpha.allowed_datasets.add(*created)


@pytest.mark.parametrize("persona", ["member", "admin", "superuser", "anonymous"])
@pytest.mark.parametrize("count", [20, 500])
def test_listing_runs_a_constant_number_of_queries(
    world: World, django_assert_num_queries: Any, persona: str, count: int
) -> None:
    _add_team_datasets(world, count)
    Dataset.objects.filter(name__lt="bulk0010").update(is_public=True)
    client = world.client(persona)
    client.get("/api/datasets/")  # records the token's last_used: a write, once
    # Token with its user, the page's ids with the total count, its rows, their
    # tags, their teams; nothing per dataset.
    expected = 4 if persona == "anonymous" else 5
    with django_assert_num_queries(expected):
        response = client.get("/api/datasets/", {"page_size": 1000})
    assert response.json()["count"] == (10 if persona == "anonymous" else count)


def test_unknown_nested_route_under_datasets_is_a_json_404(world: World) -> None:
    assert_json_error(world.client("admin").get("/api/datasets/lab/x/y/z/"), 404)


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_writing_to_the_listing_is_not_allowed(world: World, method: str) -> None:
    response = getattr(world.client("admin"), method)("/api/datasets/", {})
    assert_json_error(response, 405)


def test_listing_rows_equal_the_serializers_output_field_for_field(
    world: World,
) -> None:
    """The listing builds its rows without the serializer (speed); both must give
    the same JSON for every kind of value: nulls, unicode, nested JSON, tags,
    teams, folders, remote and other datastores, timestamps."""
    import json

    from django.utils import timezone

    from metaserver.accounts.actions import do_create_team
    from metaserver.datasets.api.serializers import DatasetListItemSerializer
    from metaserver.datasets.folder_actions import do_create_folder
    from metaserver.datasets.models import Tag

    beta = do_create_team(world.lab, "beta ü")
    folder = do_create_folder(Folder.objects.root_of(world.lab.pk), "f")
    full = world.dataset(
        "full",
        teams=(world.alpha, beta),
        display_name="Zebrafish “retina” 🐟",
        description="# Title\n\n<script>x</script> line\u2028sep",
        status_reason="",
        pending_datasource={"id": {"name": "full"}, "dataLayers": [], "ü": [1.5, None]},
        default_view_configuration={"position": [1, 2, 3], "zoom": 1.25},
        is_public=True,
        is_remote=True,
        folder=folder,
        last_used=timezone.now(),
    )
    for name in ("b-tag", "a-tag"):
        tag, _ = Tag.objects.get_or_create(organization=world.lab, name=name)
        full.tags.add(tag)
    world.dataset(
        "bare", datasource=None, status=Status.UNUSABLE, status_reason="not found"
    )
    world.dataset("elsewhere", datastore=world.other_datastore)
    listed = world.client("admin").get("/api/datasets/", {"ordering": "name"})
    assert listed.status_code == 200
    assert listed["Content-Type"] == "application/json"
    rows = listed.json()["results"]
    instances = [
        Dataset.objects.prefetch_related("tags", "allowed_teams").get(
            organization=world.lab, name=row["name"]
        )
        for row in rows
    ]
    expected = json.loads(
        json.dumps(DatasetListItemSerializer(instances, many=True).data)
    )
    assert rows == expected
    by_name = {row["name"]: row for row in rows}
    assert by_name["full"]["tags"] == ["a-tag", "b-tag"]
    assert by_name["full"]["pending_datasource"]["ü"] == [1.5, None]
    assert by_name["bare"]["datasource"] is None
    assert by_name["elsewhere"]["datastore"]["url"] == "https://data.example.org"


def test_the_browsable_api_still_renders_the_listing(world: World) -> None:
    world.dataset("shown", is_public=True)
    response = world.client("admin").get("/api/datasets/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"&quot;shown&quot;" in response.content or b'"shown"' in response.content
