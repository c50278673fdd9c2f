"""/api/uploads/: who may reserve where, names, paths, quota, cancel, and the
datastore's outcome reports. The datastore's side is faked at the client module."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from metaserver.datasets.folder_actions import do_create_folder
from metaserver.datasets.models import Dataset, Folder, Status
from metaserver.datastores.datastore_client import (
    DatastoreRejected,
    DatastoreUnavailable,
)
from metaserver.jobs.models import Job
from metaserver.uploads import actions
from metaserver.uploads.models import Upload, UploadState

from .world import World, assert_json_error, datasource

pytestmark = pytest.mark.timeout(60)
SHA = hashlib.sha256(b"x").hexdigest()


class Node:
    """The datastore as the metaserver's client sees it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.refuse: DatastoreRejected | DatastoreUnavailable | None = None

    def reserve(self, datastore: Any, upload_id: str, *args: Any, **kw: Any) -> Any:
        if self.refuse is not None:
            raise self.refuse
        self.calls.append(("reserve", datastore.name, upload_id, args, kw))
        return {"upload_id": upload_id, "created": True}

    def cancel(self, datastore: Any, upload_id: str) -> Any:
        self.calls.append(("cancel", datastore.name, upload_id))
        return {"upload_id": upload_id, "cancelled": True}


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> Node:
    fake = Node()
    monkeypatch.setattr(actions, "reserve_upload", fake.reserve)
    monkeypatch.setattr(actions, "cancel_upload", fake.cancel)
    return fake


@pytest.fixture
def live(world: World) -> World:
    """store1 is registered and sent a heartbeat just now."""
    world.datastore.last_heartbeat = timezone.now()
    world.datastore.save(update_fields=["last_heartbeat"])
    return world


@pytest.fixture
def alpha_folder(live: World) -> Folder:
    root = Folder.objects.root_of(live.lab.pk)
    return do_create_folder(root, "alpha data", allowed_teams=[live.alpha])


def body(name: str = "new_ds", **extra: Any) -> dict[str, Any]:
    return {
        "organization": "lab",
        "name": name,
        "files": [{"path": "ds/color/1/x.wkw", "size": 1000, "sha256": SHA}],
        "voxel_size": [11, 11, 24],
        **extra,
    }


def reserve(world: World, persona: str = "admin", **extra: Any) -> Any:
    return world.client(persona).post("/api/uploads/", body(**extra), format="json")


# -- who may reserve ------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["admin", "dataset_manager", "superuser"])
def test_managers_reserve_and_get_a_token_the_datastore_knows_by_hash(
    live: World, node: Node, persona: str
) -> None:
    response = reserve(live, persona, layers=[{"name": "em", "category": "color"}])
    assert response.status_code == 201, response.content
    answer = response.json()
    token = answer["upload_token"]
    assert token.startswith("vxu_")
    assert answer["datastore"] == "store1"
    assert answer["datastore_url"] == "http://store1:8080"
    assert answer["state"] == "reserved"
    assert answer["total_size"] == 1000
    upload = Upload.objects.get(pk=answer["id"])
    assert upload.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(upload.__dict__)
    [(kind, store, upload_id, args, kw)] = node.calls
    assert (kind, store, upload_id) == ("reserve", "store1", answer["id"])
    assert args[:2] == ("lab", "new_ds")
    assert kw["token_sha256"] == upload.token_hash
    assert kw["expires"] == pytest.approx(upload.expires.timestamp())
    assert kw["layer_hints"] == [{"name": "em", "category": "color"}]
    assert kw["data_format"] == "wkw"  # the default output of a conversion
    assert answer["data_format"] == "wkw"
    assert upload.expires - upload.created == timedelta(hours=24)


def test_the_output_format_of_a_conversion_goes_to_the_datastore(
    live: World, node: Node
) -> None:
    response = reserve(live, "admin", data_format="zarr3")
    assert response.status_code == 201, response.content
    assert response.json()["data_format"] == "zarr3"
    [(_, _, _, _, kw)] = node.calls
    assert kw["data_format"] == "zarr3"
    assert Upload.objects.get(pk=response.json()["id"]).data_format == "zarr3"


@pytest.mark.parametrize("value", ["n5", "WKW", "", 3, None])
def test_an_unknown_output_format_is_400_naming_the_field(
    live: World, node: Node, value: object
) -> None:
    response = reserve(live, "admin", data_format=value)
    body = assert_json_error(response, 400)
    assert "data_format" in json.dumps(body["detail"])
    assert node.calls == []


def test_team_managers_reserve_into_a_folder_of_their_team_only(
    live: World, node: Node, alpha_folder: Folder
) -> None:
    response = reserve(
        live, "team_manager", folder=alpha_folder.pk, allowed_teams=["alpha"]
    )
    assert response.status_code == 201, response.content
    assert response.json()["allowed_teams"] == [live.alpha.pk]
    # The root folder is not theirs to edit.
    assert_json_error(reserve(live, "team_manager", name="b"), 403)
    hidden = do_create_folder(Folder.objects.root_of(live.lab.pk), "hidden")
    assert_json_error(reserve(live, "team_manager", name="c", folder=hidden.pk), 404)


def test_team_managers_may_only_allow_teams_they_manage(
    live: World, node: Node, alpha_folder: Folder
) -> None:
    from metaserver.accounts.actions import do_create_team

    beta = do_create_team(live.lab, "beta")
    response = reserve(
        live, "team_manager", folder=alpha_folder.pk, allowed_teams=[beta.pk]
    )
    assert "beta" in assert_json_error(response, 403)["detail"]
    assert node.calls == []


@pytest.mark.parametrize("persona", ["member", "member_without_team"])
def test_members_without_managing_rights_are_403(
    live: World, node: Node, persona: str
) -> None:
    assert_json_error(reserve(live, persona), 403)
    assert not Upload.objects.exists()


def test_outsiders_do_not_learn_the_organization_exists(
    live: World, node: Node
) -> None:
    assert_json_error(reserve(live, "outsider"), 404)
    assert_json_error(reserve(live, "anonymous"), 401)
    assert not Upload.objects.exists()
    assert node.calls == []


# -- names and files ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "x" * 129, "a b", "ä"])
def test_names_that_are_no_folder_name_are_400(
    live: World, node: Node, name: str
) -> None:
    detail = assert_json_error(reserve(live, name=name), 400)["detail"]
    assert "name" in detail


def test_a_name_used_by_a_dataset_or_an_active_upload_is_409_until_cancelled(
    live: World, node: Node
) -> None:
    live.dataset("existing")
    assert "exists" in assert_json_error(reserve(live, name="existing"), 409)["detail"]
    first = reserve(live, name="wanted")
    assert first.status_code == 201
    detail = assert_json_error(reserve(live, name="wanted"), 409)["detail"]
    assert "in progress" in detail
    cancel = live.client("admin").post(f"/api/uploads/{first.json()['id']}/cancel/")
    assert cancel.status_code == 200, cancel.content
    assert reserve(live, name="wanted").status_code == 201


@pytest.mark.parametrize(
    "path",
    [
        "../x",
        "a/../../x",
        "/etc/passwd",
        "a\\b",
        "a\x00b",
        "a//b",
        "./a",
        "a/%2e%2e/b",
        "x" * 256 + "/a",
        "",
    ],
)
def test_file_paths_that_could_escape_are_400_naming_the_file(
    live: World, node: Node, path: str
) -> None:
    files = [
        {"path": "fine.tif", "size": 1, "sha256": SHA},
        {"path": path, "size": 1, "sha256": SHA},
    ]
    response = reserve(live, files=files)
    detail = assert_json_error(response, 400)["detail"]
    if "\x00" in path:  # refused by the JSON parser already, naming the place
        assert "files[1].path" in detail
    else:
        assert list(detail["files"]) == ["1"], detail
    assert node.calls == []


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        ([{"path": "a", "size": 1, "sha256": SHA}] * 2, "listed twice"),
        (
            [
                {"path": "a", "size": 1, "sha256": SHA},
                {"path": "a/b", "size": 1, "sha256": SHA},
            ],
            "also a folder",
        ),
        ([{"path": "a", "size": -1, "sha256": SHA}], "size"),
        ([{"path": "a", "size": 1, "sha256": "abc"}], "sha256"),
        ([{"path": "a", "size": 1, "sha256": "g" * 64}], "SHA-256"),
        ([{"path": "a", "size": 1}], "sha256"),
        ([{"path": "a", "size": 1, "sha256": SHA, "mode": 511}], "mode"),
        ([], "files"),
    ],
)
def test_malformed_file_lists_are_400_saying_what_is_wrong(
    live: World, node: Node, files: list[dict[str, Any]], needle: str
) -> None:
    response = reserve(live, files=files)
    assert needle in str(assert_json_error(response, 400)["detail"])


def test_more_files_than_allowed_is_400(live: World, node: Node, settings: Any) -> None:
    settings.VOXELHUB_UPLOAD_MAX_FILES = 3
    files = [{"path": f"f{i}", "size": 1, "sha256": SHA} for i in range(4)]
    detail = assert_json_error(reserve(live, files=files), 400)["detail"]
    assert "at most 3" in str(detail)


def test_the_quota_counts_uploads_in_progress_and_frees_on_cancel(
    live: World, node: Node, settings: Any
) -> None:
    settings.VOXELHUB_UPLOAD_QUOTA_BYTES = 1500
    first = reserve(live, name="one")
    assert first.status_code == 201
    detail = assert_json_error(reserve(live, name="two"), 400)["detail"]
    assert "quota" in str(detail)
    live.client("admin").post(f"/api/uploads/{first.json()['id']}/cancel/")
    assert reserve(live, name="two").status_code == 201


def test_a_done_upload_counts_while_its_dataset_exists(
    live: World, node: Node, settings: Any
) -> None:
    settings.VOXELHUB_UPLOAD_QUOTA_BYTES = 1500
    upload = Upload.objects.get(pk=reserve(live, name="kept").json()["id"])
    Upload.objects.filter(pk=upload.pk).update(state=UploadState.DONE)
    assert reserve(live, name="next").status_code == 201  # no dataset: not counted
    Upload.objects.filter(name="next").update(state=UploadState.CANCELLED)
    live.dataset("kept")
    assert_json_error(reserve(live, name="next"), 400)


# -- datastores -----------------------------------------------------------------------


def test_without_a_live_datastore_that_allows_uploads_it_is_503(
    world: World, node: Node
) -> None:
    assert_json_error(reserve(world), 503)
    world.datastore.last_heartbeat = timezone.now()
    world.datastore.allows_upload = False
    world.datastore.save()
    assert_json_error(reserve(world), 503)
    assert not Upload.objects.exists()


def test_a_datastore_that_refuses_frees_the_name_again(live: World, node: Node) -> None:
    node.refuse = DatastoreRejected(live.datastore, 409, "name taken", None)
    assert_json_error(reserve(live), 409)
    node.refuse = DatastoreUnavailable(live.datastore, "ConnectError")
    assert_json_error(reserve(live), 502)
    assert set(Upload.objects.values_list("state", flat=True)) == {"failed"}
    node.refuse = None
    assert reserve(live).status_code == 201


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_reservations_of_one_name_one_wins_one_409(
    live: World, node: Node
) -> None:
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def run(persona: str) -> None:
        try:
            barrier.wait(timeout=10)
            statuses.append(reserve(live, persona, name="race").status_code)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(p,)) for p in ("admin", "dataset_manager")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [201, 409]
    assert Upload.objects.filter(name="race", state="reserved").count() == 1


# -- looking and cancelling -------------------------------------------------------


def test_the_uploader_and_managers_see_an_upload_others_get_404(
    live: World, node: Node, alpha_folder: Folder
) -> None:
    upload_id = reserve(live, "team_manager", folder=alpha_folder.pk).json()["id"]
    for persona in ("team_manager", "admin", "dataset_manager", "superuser"):
        response = live.client(persona).get(f"/api/uploads/{upload_id}/")
        assert response.status_code == 200, (persona, response.content)
        assert "upload_token" not in response.json()
    for persona in ("member", "member_without_team", "outsider"):
        assert_json_error(live.client(persona).get(f"/api/uploads/{upload_id}/"), 404)
    assert_json_error(live.client("anonymous").get(f"/api/uploads/{upload_id}/"), 401)
    assert_json_error(live.client("admin").get("/api/uploads/not-a-uuid/"), 404)
    listed = live.client("member").get("/api/uploads/").json()["results"]
    assert listed == []
    listed = live.client("admin").get("/api/uploads/").json()["results"]
    assert [u["id"] for u in listed] == [upload_id]


def test_cancel_frees_the_name_and_tells_the_datastore(live: World, node: Node) -> None:
    upload_id = reserve(live, "dataset_manager").json()["id"]
    assert_json_error(
        live.client("member").post(f"/api/uploads/{upload_id}/cancel/"), 404
    )
    response = live.client("dataset_manager").post(f"/api/uploads/{upload_id}/cancel/")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "cancelled"
    assert node.calls[-1] == ("cancel", "store1", upload_id)
    again = live.client("admin").post(f"/api/uploads/{upload_id}/cancel/")
    assert "cancelled" in assert_json_error(again, 409)["detail"]


def test_a_finishing_upload_cannot_be_cancelled_until_it_expires(
    live: World, node: Node
) -> None:
    upload_id = reserve(live).json()["id"]
    Upload.objects.filter(pk=upload_id).update(state=UploadState.FINISHING)
    url = f"/api/uploads/{upload_id}/cancel/"
    assert_json_error(live.client("admin").post(url), 409)
    Upload.objects.filter(pk=upload_id).update(
        expires=timezone.now() - timedelta(seconds=1)
    )
    assert live.client("admin").post(url).status_code == 200


# -- what the datastore reports -----------------------------------------------------


def finished(world: World, upload_id: str, status: str, **extra: Any) -> Any:
    url = f"/api/datastores/store1/uploads/{upload_id}/finished"
    payload = {"status": status, "reason": "", "datasource": None, **extra}
    return world.datastore_client().post(url, payload, format="json")


def test_an_imported_upload_becomes_an_active_dataset_in_its_folder(
    live: World, node: Node, alpha_folder: Folder
) -> None:
    upload_id = reserve(
        live, folder=alpha_folder.pk, allowed_teams=[live.alpha.pk], name="fresh"
    ).json()["id"]
    assert finished(live, upload_id, "finishing").json()["state"] == "finishing"
    assert_json_error(
        live.client("admin").post(f"/api/uploads/{upload_id}/cancel/"), 409
    )
    response = finished(live, upload_id, "imported", datasource=datasource("fresh"))
    assert response.status_code == 200, response.content
    assert response.json() == {"state": "done", "job_id": None}
    dataset = Dataset.objects.get(organization=live.lab, name="fresh")
    assert dataset.status == Status.ACTIVE
    assert dataset.folder == alpha_folder
    assert list(dataset.allowed_teams.all()) == [live.alpha]
    assert dataset.datasource == datasource("fresh")
    upload = Upload.objects.get(pk=upload_id)
    assert upload.result == {"dataset": "lab/fresh"}
    resent = finished(live, upload_id, "imported", datasource=datasource("fresh"))
    assert resent.json() == {"state": "done", "job_id": None}
    assert_json_error(finished(live, upload_id, "finishing"), 409)


def test_an_upload_a_scan_reported_first_is_completed_not_duplicated(
    live: World, node: Node, alpha_folder: Folder
) -> None:
    upload_id = reserve(live, folder=alpha_folder.pk, name="raced").json()["id"]
    finished(live, upload_id, "finishing")
    live.dataset("raced", status=Status.ACTIVE)  # as a report creates it: root
    finished(live, upload_id, "imported", datasource=datasource("raced"))
    dataset = Dataset.objects.get(organization=live.lab, name="raced")
    assert dataset.folder == alpha_folder


def test_an_invalid_datasource_makes_the_dataset_unusable_with_the_reason(
    live: World, node: Node
) -> None:
    upload_id = reserve(live, name="odd").json()["id"]
    finished(live, upload_id, "finishing")
    finished(live, upload_id, "imported", datasource={"dataLayers": "nope"})
    dataset = Dataset.objects.get(organization=live.lab, name="odd")
    assert dataset.status == Status.UNUSABLE
    assert "datasource" in dataset.status_reason


def test_a_conversion_creates_a_job_and_a_converting_dataset(
    live: World, node: Node
) -> None:
    upload_id = reserve(live, "dataset_manager", name="tiffs").json()["id"]
    finished(live, upload_id, "finishing")
    response = finished(live, upload_id, "conversion_needed", reason="no layers")
    assert response.status_code == 200, response.content
    job = Job.objects.get(pk=response.json()["job_id"])
    assert job.kind == "convert"
    assert job.owner == live.users["dataset_manager"]
    assert job.datastore == live.datastore
    assert job.arguments["upload"] == upload_id
    assert job.arguments["voxel_size"] == [11.0, 11.0, 24.0]
    dataset = Dataset.objects.get(organization=live.lab, name="tiffs")
    assert dataset.status == Status.CONVERTING
    resent = finished(live, upload_id, "conversion_needed")
    assert resent.json()["job_id"] == job.pk
    assert Job.objects.count() == 1


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_failed_and_cancelled_reports_end_the_upload_with_the_reason(
    live: World, node: Node, status: str
) -> None:
    upload_id = reserve(live).json()["id"]
    finished(live, upload_id, "finishing")
    assert finished(live, upload_id, "reserved", reason="digest").status_code == 200
    response = finished(live, upload_id, status, reason="zip entry ../x")
    assert response.json()["state"] == status
    upload = Upload.objects.get(pk=upload_id)
    assert upload.message == "zip entry ../x"
    assert upload.finished is not None
    assert not Dataset.objects.filter(name="new_ds").exists()


def test_a_cancelled_upload_cannot_start_finishing(live: World, node: Node) -> None:
    upload_id = reserve(live).json()["id"]
    live.client("admin").post(f"/api/uploads/{upload_id}/cancel/")
    assert_json_error(finished(live, upload_id, "finishing"), 409)
    assert_json_error(finished(live, upload_id, "imported"), 409)


def test_only_the_uploads_datastore_reports_and_only_signed(
    live: World, node: Node
) -> None:
    upload_id = reserve(live).json()["id"]
    url = f"/api/datastores/store2/uploads/{upload_id}/finished"
    other = live.datastore_client(
        live.other_datastore_key, secret=live.other_datastore.metaserver_token
    )
    assert_json_error(other.post(url, {"status": "failed"}, format="json"), 404)
    unsigned = live.datastore_client()
    unsigned.secret = None
    url = f"/api/datastores/store1/uploads/{upload_id}/finished"
    assert unsigned.post(url, {"status": "failed"}, format="json").status_code == 401
    assert_json_error(live.client("admin").post(url, {"status": "failed"}), 401)
    assert_json_error(finished(live, upload_id, "exploded"), 400)
    assert Upload.objects.get(pk=upload_id).state == UploadState.RESERVED


def test_an_expired_reservation_releases_its_name_and_quota(
    live: World, node: Node, settings: Any
) -> None:
    settings.VOXELHUB_UPLOAD_QUOTA_BYTES = 1500
    old = reserve(live, name="stale").json()["id"]
    Upload.objects.filter(pk=old).update(expires=timezone.now() - timedelta(seconds=1))
    assert reserve(live, name="stale").status_code == 201
    expired = Upload.objects.get(pk=old)
    assert expired.state == UploadState.FAILED
    assert "expired" in expired.message


def test_a_raw_files_layout_goes_to_the_datastore(live: World, node: Node) -> None:
    raw = {"dtype": "uint16", "shape": [64, 48, 10], "order": "C", "header_bytes": 16}
    response = reserve(live, "admin", raw=raw)
    assert response.status_code == 201, response.content
    assert response.json()["raw"] == raw
    [(_, _, _, _, kw)] = node.calls
    assert kw["raw"] == raw


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"dtype": "complex64", "shape": [1, 1, 1]}, "raw.dtype"),
        ({"dtype": "uint8", "shape": [1, 1]}, "raw.shape"),
        ({"dtype": "uint8", "shape": [1, 0, 1]}, "raw.shape"),
        ({"dtype": "uint8", "shape": [1, 1, True]}, "raw.shape"),
        ({"dtype": "uint8", "shape": [1, 1, 1], "order": "X"}, "raw.order"),
        (
            {"dtype": "uint8", "shape": [1, 1, 1], "header_bytes": -1},
            "raw.header_bytes",
        ),
        ({"dtype": "uint8", "shape": [1, 1, 1], "endian": "big"}, "unknown fields"),
        ("uint8", "raw"),
    ],
)
def test_a_bad_raw_layout_is_400_naming_the_field(
    live: World, node: Node, raw: object, field: str
) -> None:
    body = assert_json_error(reserve(live, "admin", raw=raw), 400)
    assert field in json.dumps(body["detail"])
    assert node.calls == []
