"""Datastore-only endpoints: key authentication, registration, heartbeat."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from metaserver.datastores.models import DataStore
from shared.protocol import (
    HEARTBEAT_PATH,
    REGISTER_PATH,
    REPORT_PATH,
    VALIDATE_ACCESS_PATH,
)

from .world import KEY_META, World, assert_json_error

PATHS = [REGISTER_PATH, HEARTBEAT_PATH, REPORT_PATH, VALIDATE_ACCESS_PATH]
REGISTER_BODY = {
    "url": "http://node7:9000",
    "public_url": "https://data.lab.org",
    "allows_upload": False,
    "version": "0.1.0",
}
DATASTORE_PARAM = "X-Voxelhub-Datastore-Key"


def _post(client: APIClient, path: str, name: str = "store1") -> object:
    return client.post(path.format(name=name), {}, format="json")


@pytest.mark.parametrize("path", PATHS)
def test_missing_key_is_401_without_details(world: World, path: str) -> None:
    body = assert_json_error(_post(APIClient(), path), 401)
    assert body["detail"] is None


@pytest.mark.parametrize("path", PATHS)
def test_wrong_key_is_403_without_details(world: World, path: str) -> None:
    response = _post(world.datastore_client("x" * 43), path)
    body = assert_json_error(response, 403)
    assert body["detail"] is None


@pytest.mark.parametrize("path", PATHS)
def test_key_of_another_datastore_is_403(world: World, path: str) -> None:
    response = _post(world.datastore_client(world.other_datastore_key), path)
    assert assert_json_error(response, 403)["detail"] is None


@pytest.mark.parametrize("path", PATHS)
def test_unknown_datastore_name_is_403_like_a_wrong_key(
    world: World, path: str
) -> None:
    response = _post(world.datastore_client(), path, name="nonexistent")
    assert assert_json_error(response, 403)["detail"] is None


@pytest.mark.parametrize("path", PATHS)
def test_key_in_the_query_string_is_not_accepted(world: World, path: str) -> None:
    url = path.format(name="store1")
    for param in ("key", "datastore_key", DATASTORE_PARAM):
        response = APIClient().post(
            f"{url}?{param}={world.datastore_key}", {}, format="json"
        )
        assert_json_error(response, 401)


@pytest.mark.parametrize("persona", ["superuser", "admin", "anonymous"])
@pytest.mark.parametrize("path", PATHS)
def test_user_tokens_and_sessions_cannot_call_datastore_endpoints(
    world: World, persona: str, path: str
) -> None:
    assert _post(world.client(persona), path).status_code == 401
    if persona != "anonymous":
        session = APIClient()
        session.force_login(world.users[persona])
        assert _post(session, path).status_code == 401


def test_error_responses_never_echo_the_key(world: World) -> None:
    response = _post(world.datastore_client(world.other_datastore_key), HEARTBEAT_PATH)
    assert world.other_datastore_key not in response.content.decode()


def test_registration_records_the_node_and_rotates_the_metaserver_token(
    world: World,
) -> None:
    client = world.datastore_client()
    first = client.post(REGISTER_PATH.format(name="store1"), REGISTER_BODY)
    assert first.status_code == 200, first.content
    assert first.json()["name"] == "store1"
    second = client.post(REGISTER_PATH.format(name="store1"), REGISTER_BODY).json()
    assert second["metaserver_token"] != first.json()["metaserver_token"]
    assert len(second["metaserver_token"]) >= 32
    datastore = DataStore.objects.get(name="store1")
    assert datastore.metaserver_token == second["metaserver_token"]
    assert datastore.url == "http://node7:9000"
    assert datastore.public_url == "https://data.lab.org"
    assert datastore.allows_upload is False
    assert datastore.version == "0.1.0"
    assert datastore.is_reachable


def test_registration_works_with_or_without_a_trailing_slash(world: World) -> None:
    url = REGISTER_PATH.format(name="store1") + "/"
    response = world.datastore_client().post(url, REGISTER_BODY)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "ftp://node7"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": None}, "url"),
        ({"public_url": "javascript:alert(1)"}, "public_url"),
        ({"allows_upload": "perhaps"}, "allows_upload"),
        ({"version": "v" * 65}, "version"),
    ],
)
def test_bad_registration_bodies_give_400_naming_the_field(
    world: World, change: dict[str, object], field: str
) -> None:
    response = world.datastore_client().post(
        REGISTER_PATH.format(name="store1"), {**REGISTER_BODY, **change}
    )
    assert field in assert_json_error(response, 400)["detail"]
    assert DataStore.objects.get(name="store1").url == "http://store1:8080"


def test_heartbeat_makes_a_datastore_reachable_until_it_goes_stale(
    world: World, settings: object
) -> None:
    assert not world.datastore.is_reachable
    response = world.datastore_client().post(HEARTBEAT_PATH.format(name="store1"), {})
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    datastore = DataStore.objects.get(name="store1")
    assert datastore.is_reachable
    DataStore.objects.filter(pk=datastore.pk).update(
        last_heartbeat=timezone.now() - timedelta(seconds=31)
    )
    assert not DataStore.objects.get(name="store1").is_reachable


def test_heartbeat_accepts_a_request_without_body(world: World) -> None:
    client = world.datastore_client()
    response = client.post(HEARTBEAT_PATH.format(name="store1"))
    assert response.status_code == 200


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_datastore_endpoints_only_take_post(world: World, method: str) -> None:
    response = getattr(world.datastore_client(), method)(
        HEARTBEAT_PATH.format(name="store1")
    )
    assert_json_error(response, 405)


def test_header_name_is_the_one_of_the_protocol() -> None:
    assert KEY_META == "HTTP_X_VOXELHUB_DATASTORE_KEY"
