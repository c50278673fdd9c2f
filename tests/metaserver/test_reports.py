"""POST /api/datastores/{name}/datasets: the complete list of a datastore's datasets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import override_settings

from metaserver.datasets.actions import do_apply_dataset_report
from metaserver.datasets.models import Dataset, Folder, Status
from shared.protocol import REPORT_PATH

from .world import World, assert_json_error, datasource

URL = REPORT_PATH.format(name="store1")


def entry(
    name: str,
    *,
    organization: str = "lab",
    status: str = "active",
    reason: str = "",
    props: Any = "default",
) -> dict[str, Any]:
    return {
        "organization": organization,
        "name": name,
        "status": status,
        "reason": reason,
        "datasource": datasource(name) if props == "default" else props,
    }


def report(world: World, *entries: dict[str, Any], key: str | None = None) -> Any:
    return world.datastore_client(key).post(
        URL, {"datasets": list(entries)}, format="json"
    )


def row(name: str, organization: str = "lab") -> Dataset:
    return Dataset.objects.get(organization__name=organization, name=name)


def test_first_report_creates_the_datasets(world: World) -> None:
    response = report(world, entry("a"), entry("b"))
    assert response.status_code == 200, response.content
    assert response.json() == {"created": 2, "updated": 0, "unusable": 0, "ignored": []}
    assert row("a").status == Status.ACTIVE
    assert row("a").datastore == world.datastore
    assert row("a").datasource == datasource("a")


def test_repeating_a_report_changes_nothing(world: World) -> None:
    report(world, entry("a"), entry("b"))
    before = row("a").updated
    answer = report(world, entry("a"), entry("b")).json()
    assert answer == {"created": 0, "updated": 0, "unusable": 0, "ignored": []}
    assert row("a").updated == before


def test_changed_datasource_of_an_active_dataset_waits_for_a_person(
    world: World,
) -> None:
    report(world, entry("a"))
    changed = datasource("a")
    changed["dataLayers"][0]["boundingBox"]["width"] = 128
    answer = report(world, entry("a", props=changed)).json()
    assert answer["updated"] == 1
    assert row("a").datasource == datasource("a")
    assert row("a").pending_datasource == changed
    # The same change reported again is nothing new.
    assert report(world, entry("a", props=changed)).json()["updated"] == 0
    # Applied through the API, it becomes the datasource.
    response = world.client("admin").post(
        "/api/datasets/lab/a/pending-datasource/", {"action": "apply"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["datasource"] == changed
    assert response.json()["pending_datasource"] is None
    assert report(world, entry("a", props=changed)).json()["updated"] == 0


def test_file_changed_back_on_disk_clears_the_pending_change(world: World) -> None:
    report(world, entry("a"))
    changed = datasource("a")
    changed["scale"]["factor"] = [1, 1, 1]
    report(world, entry("a", props=changed))
    assert row("a").pending_datasource == changed
    assert report(world, entry("a")).json()["updated"] == 1
    assert row("a").pending_datasource is None
    assert row("a").datasource == datasource("a")


def test_changed_datasource_of_a_dataset_under_review_is_taken_at_once(
    world: World,
) -> None:
    report(world, entry("a", status="needs_review", props=None))
    answer = report(world, entry("a")).json()
    assert answer["updated"] == 1
    assert (row("a").status, row("a").datasource) == ("active", datasource("a"))
    assert row("a").pending_datasource is None


def test_applying_without_a_pending_change_is_409(world: World) -> None:
    report(world, entry("a"))
    client = world.client("admin")
    url = "/api/datasets/lab/a/pending-datasource/"
    assert_json_error(client.post(url, {"action": "apply"}, format="json"), 409)
    assert_json_error(client.post(url, {"action": "discard"}, format="json"), 409)
    assert_json_error(client.post(url, {"action": "merge"}, format="json"), 400)
    member = world.client("member").post(url, {"action": "apply"}, format="json")
    assert_json_error(member, 404)


def test_dataset_missing_from_a_report_becomes_unusable_not_found_on_disk(
    world: World,
) -> None:
    report(world, entry("a"), entry("b"))
    answer = report(world, entry("a")).json()
    assert answer == {"created": 0, "updated": 0, "unusable": 1, "ignored": []}
    gone = row("b")
    assert gone.status == Status.UNUSABLE
    assert gone.status_reason == "not found on disk"
    assert gone.datasource == datasource("b")  # kept, never deleted


def test_reappearing_dataset_is_active_again(world: World) -> None:
    report(world, entry("a"))
    report(world)
    assert row("a").status == Status.UNUSABLE
    answer = report(world, entry("a")).json()
    assert answer["updated"] == 1
    assert row("a").status == Status.ACTIVE
    assert row("a").status_reason == ""


def test_vanishing_keeps_sharing_settings(world: World) -> None:
    report(world, entry("a"))
    dataset = row("a")
    dataset.is_public = True
    dataset.save()
    dataset.allowed_teams.add(world.alpha)
    report(world)
    report(world, entry("a"))
    assert row("a").is_public
    assert list(row("a").allowed_teams.all()) == [world.alpha]


def test_invalid_datasource_makes_the_dataset_unusable_naming_the_json_path(
    world: World,
) -> None:
    broken = datasource("a")
    broken["dataLayers"][0]["boundingBox"]["width"] = 0
    answer = report(world, entry("a", props=broken)).json()
    assert answer["unusable"] == 1
    dataset = row("a")
    assert dataset.status == Status.UNUSABLE
    assert "dataLayers[0].boundingBox.width" in dataset.status_reason
    assert dataset.datasource == broken


@pytest.mark.parametrize("props", [None, {}, {"dataLayers": "many"}])
def test_active_report_without_a_usable_datasource_is_unusable(
    world: World, props: Any
) -> None:
    assert report(world, entry("a", props=props)).status_code == 200
    assert row("a").status == Status.UNUSABLE
    assert row("a").status_reason


def test_needs_review_keeps_the_inferred_datasource(world: World) -> None:
    report(world, entry("a", status="needs_review", reason="no properties file"))
    dataset = row("a")
    assert dataset.status == Status.NEEDS_REVIEW
    assert dataset.status_reason == "no properties file"
    assert dataset.datasource == datasource("a")


def test_datastore_may_report_a_dataset_unusable_with_its_reason(world: World) -> None:
    report(world, entry("a", status="unusable", reason="outside the allowed roots"))
    assert row("a").status == Status.UNUSABLE
    assert row("a").status_reason == "outside the allowed roots"


def test_unknown_organizations_are_ignored_and_listed(world: World) -> None:
    answer = report(world, entry("a"), entry("x", organization="ghost")).json()
    assert answer["created"] == 1
    assert answer["ignored"] == ["ghost/x"]
    assert not Dataset.objects.filter(name="x").exists()


def test_names_that_cannot_be_directories_are_ignored_and_listed(world: World) -> None:
    answer = report(world, entry("a"), entry("../etc"), entry(".hidden")).json()
    assert answer["created"] == 1
    assert sorted(answer["ignored"]) == ["lab/../etc", "lab/.hidden"]


def test_dataset_of_another_datastore_is_not_taken_over(world: World) -> None:
    world.dataset("shared_name", datastore=world.other_datastore)
    answer = report(world, entry("shared_name")).json()
    assert answer["ignored"] == ["lab/shared_name"]
    assert row("shared_name").datastore == world.other_datastore


def test_other_datastores_datasets_are_untouched_by_a_report(world: World) -> None:
    world.dataset("theirs", datastore=world.other_datastore)
    report(world, entry("a"))
    assert row("theirs").status == Status.ACTIVE


def test_remote_and_converting_datasets_survive_a_report_that_omits_them(
    world: World,
) -> None:
    world.dataset("remote", is_remote=True)
    world.dataset("converting", status=Status.CONVERTING)
    report(world, entry("a"))
    assert row("remote").status == Status.ACTIVE
    assert row("converting").status == Status.CONVERTING


def test_empty_report_marks_everything_of_the_datastore_unusable(
    world: World,
) -> None:
    report(world, entry("a"), entry("b"))
    answer = report(world).json()
    assert answer == {"created": 0, "updated": 0, "unusable": 2, "ignored": []}


def test_report_records_a_heartbeat(world: World) -> None:
    report(world)
    world.datastore.refresh_from_db()
    assert world.datastore.is_reachable


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({}, "datasets"),
        ({"datasets": {}}, "datasets"),
        ([], "datasets"),
        ("datasets", "datasets"),
        ({"datasets": [1]}, "datasets[0]"),
        ({"datasets": [{**entry("a"), "name": 5}]}, "datasets[0].name"),
        (
            {"datasets": [{**entry("a"), "organization": ""}]},
            "datasets[0].organization",
        ),
        ({"datasets": [{**entry("a"), "status": "converting"}]}, "datasets[0].status"),
        ({"datasets": [{**entry("a"), "reason": ["x"]}]}, "datasets[0].reason"),
        ({"datasets": [{**entry("a"), "datasource": [1]}]}, "datasets[0].datasource"),
        ({"datasets": [entry("a"), entry("a")]}, "datasets[1]"),
    ],
)
def test_malformed_reports_are_400_naming_the_path_and_change_nothing(
    world: World, body: Any, path: str
) -> None:
    world.dataset("existing")
    response = world.datastore_client().post(URL, body, format="json")
    detail = assert_json_error(response, 400)["detail"]
    assert path in {problem["path"] for problem in detail}
    assert row("existing").status == Status.ACTIVE
    assert Dataset.objects.count() == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b'{"datasets": [}',
        b"\xff\xfe garbage",
        b'{"datasets": NaN}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"datasets": [{"organization": "lab", "name": "a\\u0000b"}]}',
    ],
)
def test_garbage_bodies_are_400_json(world: World, raw: bytes) -> None:
    response = world.datastore_client().generic(
        "POST", URL, raw, content_type="application/json"
    )
    assert_json_error(response, 400)


def test_report_with_too_many_datasets_is_413(world: World) -> None:
    with override_settings(VOXELHUB_MAX_REPORT_DATASETS=3):
        response = report(world, *(entry(f"d{i}") for i in range(4)))
    body = assert_json_error(response, 413)
    assert "at most 3" in body["detail"]
    assert not Dataset.objects.exists()


def test_report_over_the_byte_limit_is_413_before_parsing(world: World) -> None:
    big = json.dumps({"datasets": [entry(f"d{i}") for i in range(20)]})
    with override_settings(VOXELHUB_MAX_REPORT_BYTES=1000):
        response = world.datastore_client().generic(
            "POST", URL, big, content_type="application/json"
        )
    assert "1000 bytes" in assert_json_error(response, 413)["detail"]
    assert not Dataset.objects.exists()


def test_wrong_content_type_is_415(world: World) -> None:
    response = world.datastore_client().generic(
        "POST", URL, b"datasets=1", content_type="application/x-www-form-urlencoded"
    )
    assert_json_error(response, 415)


@pytest.mark.parametrize("count", [20, 500])
def test_report_runs_a_constant_number_of_queries(
    world: World, django_assert_num_queries: Any, count: int
) -> None:
    Folder.objects.root_of(world.lab.pk)
    entries = [entry(f"d{i:05d}") for i in range(count)]
    with django_assert_num_queries(13):
        # key check; the nonce (savepoint, insert, release); heartbeat and pruning
        # of old nonces; savepoint, lock, organizations, datasets, the root folder
        # of each organization with new datasets, insert, release. Nothing per
        # dataset.
        first = report(world, *entries)
    assert first.json()["created"] == count
    for item in entries[: count // 2]:
        item["datasource"]["dataLayers"][0]["boundingBox"]["width"] = 99
    kept = entries[: count - count // 4]
    with django_assert_num_queries(12):
        # the same with one update (changed and vanished alike) instead of the insert
        second = report(world, *kept).json()
    assert second["updated"] == count // 2
    assert second["unusable"] == count // 4
    pending = {
        d.name: d.pending_datasource["dataLayers"][0]["boundingBox"]["width"]
        for d in Dataset.objects.exclude(pending_datasource=None)
    }
    assert len(pending) == count // 2
    assert pending["d00000"] == 99
    assert Dataset.objects.filter(status=Status.UNUSABLE).count() == count // 4


def test_action_accepts_plain_dicts_as_the_cli_would_pass_them(world: World) -> None:
    result = do_apply_dataset_report(world.datastore, [entry("a")])
    assert result["created"] == 1
