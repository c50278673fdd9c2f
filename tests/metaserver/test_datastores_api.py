"""/api/datastores/ for people: admins look, superusers change, nobody sees keys."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from metaserver.accounts.models import hash_secret
from metaserver.datastores.models import DataStore
from shared.protocol import HEARTBEAT_PATH, REGISTER_PATH

from .world import SignedDatastoreClient, World, assert_json_error

READERS = ["superuser", "admin", "outsider"]  # the outsider is admin of `other`
NON_READERS = ["dataset_manager", "member", "member_without_team"]
SECRET_WORDS = ("key", "hash", "token")


def _assert_no_secrets(payload: object) -> None:
    text = json.dumps(payload).lower()
    for word in SECRET_WORDS:
        assert word not in text, text


@pytest.mark.parametrize("persona", READERS)
def test_admins_list_datastores_without_any_secret(world: World, persona: str) -> None:
    response = world.client(persona).get("/api/datastores/")
    assert response.status_code == 200, response.content
    items = response.json()
    assert [d["name"] for d in items] == ["store1", "store2"]
    assert set(items[0]) == {
        "name",
        "url",
        "public_url",
        "allows_upload",
        "is_reachable",
        "last_heartbeat",
        "version",
        "created",
    }
    _assert_no_secrets(items)


@pytest.mark.parametrize("persona", READERS)
def test_admins_see_one_datastore(world: World, persona: str) -> None:
    response = world.client(persona).get("/api/datastores/store2/")
    assert response.json()["public_url"] == "https://data.example.org"
    _assert_no_secrets(response.json())


@pytest.mark.parametrize("persona", NON_READERS)
@pytest.mark.parametrize("url", ["/api/datastores/", "/api/datastores/store1/"])
def test_other_users_are_refused(world: World, persona: str, url: str) -> None:
    assert_json_error(world.client(persona).get(url), 403)


@pytest.mark.parametrize("url", ["/api/datastores/", "/api/datastores/store1/"])
def test_anonymous_is_refused(world: World, url: str) -> None:
    assert_json_error(APIClient().get(url), 401)


def test_superuser_creates_a_datastore_and_sees_its_key_once(world: World) -> None:
    client = world.client("superuser")
    response = client.post(
        "/api/datastores/",
        {"name": "store3", "url": "http://store3:8080/", "allows_upload": False},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    key = body["key"]
    assert len(key) >= 32
    stored = DataStore.objects.get(name="store3")
    assert stored.key_hash == hash_secret(key)
    assert stored.url == "http://store3:8080"
    assert stored.allows_upload is False
    _assert_no_secrets(client.get("/api/datastores/store3/").json())
    registered = SignedDatastoreClient(key, None).post(
        REGISTER_PATH.format(name="store3"),
        {"url": "http://store3:8080", "allows_upload": False},
        format="json",
    )
    assert registered.status_code == 200, registered.content
    token = registered.json()["metaserver_token"]
    heartbeat = SignedDatastoreClient(key, token).post(
        HEARTBEAT_PATH.format(name="store3")
    )
    assert heartbeat.status_code == 200


def test_superuser_may_choose_the_key(world: World) -> None:
    key = "k" * 40
    response = world.client("superuser").post(
        "/api/datastores/", {"name": "store3", "url": "http://store3", "key": key}
    )
    assert response.json()["key"] == key


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "store1", "url": "http://x"}, "name"),
        ({"name": "../x", "url": "http://x"}, "name"),
        ({"name": "ok", "url": "file:///etc"}, "url"),
        ({"name": "ok"}, "url"),
        ({"name": "ok", "url": "http://x", "key": "short"}, "key"),
        ({"name": "ok", "url": "http://x", "public_url": "nope"}, "public_url"),
    ],
)
def test_bad_datastore_bodies_are_400_naming_the_field(
    world: World, body: dict[str, str], field: str
) -> None:
    response = world.client("superuser").post("/api/datastores/", body)
    assert field in assert_json_error(response, 400)["detail"]


def test_superuser_changes_urls_and_upload_flag(world: World) -> None:
    response = world.client("superuser").patch(
        "/api/datastores/store1/",
        {"url": "http://moved:1", "allows_upload": False, "name": "renamed"},
    )
    assert response.status_code == 200, response.content
    datastore = DataStore.objects.get(pk=world.datastore.pk)
    assert (datastore.name, datastore.url, datastore.allows_upload) == (
        "store1",
        "http://moved:1",
        False,
    )


def test_patching_with_a_bad_url_is_400_and_changes_nothing(world: World) -> None:
    response = world.client("superuser").patch(
        "/api/datastores/store1/", {"url": "gopher://x"}
    )
    assert "url" in assert_json_error(response, 400)["detail"]
    assert DataStore.objects.get(pk=world.datastore.pk).url == "http://store1:8080"


def test_deleting_an_unused_datastore_works(world: World) -> None:
    response = world.client("superuser").delete("/api/datastores/store2/")
    assert response.status_code == 204
    assert not DataStore.objects.filter(name="store2").exists()


def test_deleting_a_datastore_that_serves_datasets_is_409(world: World) -> None:
    world.dataset("a")
    body = assert_json_error(
        world.client("superuser").delete("/api/datastores/store1/"), 409
    )
    assert "1 dataset" in body["detail"]
    assert DataStore.objects.filter(name="store1").exists()


@pytest.mark.parametrize("persona", ["admin", "outsider", "member"])
def test_only_superusers_change_datastores(world: World, persona: str) -> None:
    client = world.client(persona)
    assert_json_error(
        client.post("/api/datastores/", {"name": "x", "url": "http://x"}), 403
    )
    assert_json_error(client.patch("/api/datastores/store1/", {"url": "http://y"}), 403)
    assert_json_error(client.delete("/api/datastores/store1/"), 403)
    assert DataStore.objects.get(name="store1").url == "http://store1:8080"


def test_anonymous_cannot_change_datastores(world: World) -> None:
    assert_json_error(APIClient().delete("/api/datastores/store1/"), 401)


def test_unknown_datastore_is_404(world: World) -> None:
    assert_json_error(world.client("superuser").get("/api/datastores/nope/"), 404)
