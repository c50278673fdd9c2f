"""Datastore calls after registration are signed, fresh and never replayed.

Refusals are bare (RELIABILITY 21): the reason goes to the metaserver's log only.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from metaserver.datasets.models import Dataset
from metaserver.datastores.actions import NONCE_RETENTION
from metaserver.datastores.models import DataStore, DatastoreNonce
from shared.protocol import (
    HEARTBEAT_PATH,
    NONCE_HEADER,
    REGISTER_PATH,
    REPORT_PATH,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    VALIDATE_ACCESS_PATH,
)
from shared.tokens import sign_request

from .world import KEY_META, World, assert_json_error, meta_name

SIGNED_PATHS = [HEARTBEAT_PATH, REPORT_PATH, VALIDATE_ACCESS_PATH]
HEARTBEAT = HEARTBEAT_PATH.format(name="store1")
VALIDATE = VALIDATE_ACCESS_PATH.format(name="store1")
ASK = json.dumps(
    {"token": None, "organization": "lab", "dataset": "ds", "mode": "read"}
).encode()


def send(
    world: World,
    path: str,
    body: bytes,
    signature: dict[str, str],
    *,
    key: str | None = None,
) -> Any:
    """POST `body` with the key and exactly the signature headers given."""
    client = APIClient()
    client.credentials(**{KEY_META: key or world.datastore_key})
    extra = {meta_name(name): value for name, value in signature.items()}
    return client.generic("POST", path, body, content_type="application/json", **extra)


def signed(
    world: World, path: str, body: bytes, *, secret: str | None = None, **kw: Any
) -> dict[str, str]:
    return sign_request(
        secret or world.datastore.metaserver_token, "POST", path, body, **kw
    )


def assert_bare(response: Any, status: int) -> None:
    assert assert_json_error(response, status)["detail"] is None


@pytest.mark.parametrize("path", SIGNED_PATHS)
def test_a_right_key_without_signature_is_401(world: World, path: str) -> None:
    response = send(world, path.format(name="store1"), b"{}", {})
    assert_bare(response, 401)


@pytest.mark.parametrize("missing", [TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER])
def test_a_signature_missing_any_of_its_headers_is_401(
    world: World, missing: str
) -> None:
    headers = signed(world, HEARTBEAT, b"{}")
    del headers[missing]
    assert_bare(send(world, HEARTBEAT, b"{}", headers), 401)


def test_a_correctly_signed_call_passes(world: World) -> None:
    response = send(world, HEARTBEAT, b"{}", signed(world, HEARTBEAT, b"{}"))
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("path", SIGNED_PATHS)
def test_a_wrong_signature_is_403(world: World, path: str) -> None:
    url = path.format(name="store1")
    headers = signed(world, url, b"{}") | {SIGNATURE_HEADER: "0" * 64}
    assert_bare(send(world, url, b"{}", headers), 403)


def test_a_signature_with_another_datastores_token_is_403(world: World) -> None:
    headers = signed(
        world, HEARTBEAT, b"{}", secret=world.other_datastore.metaserver_token
    )
    assert_bare(send(world, HEARTBEAT, b"{}", headers), 403)


def test_another_datastores_key_and_token_do_not_pass_for_this_one(
    world: World,
) -> None:
    headers = signed(
        world, HEARTBEAT, b"{}", secret=world.other_datastore.metaserver_token
    )
    response = send(world, HEARTBEAT, b"{}", headers, key=world.other_datastore_key)
    assert_bare(response, 403)


@pytest.mark.parametrize("offset", [-120, 120])
def test_a_timestamp_two_minutes_off_is_403(world: World, offset: int) -> None:
    headers = signed(world, HEARTBEAT, b"{}", timestamp=int(time.time()) + offset)
    assert_bare(send(world, HEARTBEAT, b"{}", headers), 403)


def test_a_timestamp_a_few_seconds_off_passes(world: World) -> None:
    headers = signed(world, HEARTBEAT, b"{}", timestamp=int(time.time()) - 20)
    assert send(world, HEARTBEAT, b"{}", headers).status_code == 200


def test_a_body_changed_after_signing_is_403(world: World) -> None:
    headers = signed(world, VALIDATE, ASK)
    changed = ASK.replace(b'"token": null', b'"token": "stolen"')
    assert changed != ASK
    assert_bare(send(world, VALIDATE, changed, headers), 403)


def test_a_path_changed_after_signing_is_403(world: World) -> None:
    headers = signed(world, HEARTBEAT, ASK)
    assert_bare(send(world, VALIDATE, ASK, headers), 403)


def test_a_query_string_added_after_signing_is_403(world: World) -> None:
    headers = signed(world, HEARTBEAT, b"{}")
    assert_bare(send(world, HEARTBEAT + "?extra=1", b"{}", headers), 403)


def test_the_same_nonce_twice_is_a_replay_and_403(world: World) -> None:
    headers = signed(world, VALIDATE, ASK)
    assert send(world, VALIDATE, ASK, headers).status_code == 200
    assert_bare(send(world, VALIDATE, ASK, headers), 403)
    fresh = signed(world, VALIDATE, ASK)
    assert send(world, VALIDATE, ASK, fresh).status_code == 200


def test_a_refused_signature_does_not_use_up_its_nonce(world: World) -> None:
    headers = signed(world, HEARTBEAT, b"{}")
    send(world, HEARTBEAT, b"{}", headers | {SIGNATURE_HEADER: "0" * 64})
    assert send(world, HEARTBEAT, b"{}", headers).status_code == 200


def test_nonces_are_remembered_per_datastore(world: World) -> None:
    nonce = "shared-nonce-0123456789"
    mine = signed(world, HEARTBEAT, b"{}", nonce=nonce)
    assert send(world, HEARTBEAT, b"{}", mine).status_code == 200
    theirs_path = HEARTBEAT_PATH.format(name="store2")
    theirs = signed(
        world,
        theirs_path,
        b"{}",
        secret=world.other_datastore.metaserver_token,
        nonce=nonce,
    )
    response = send(world, theirs_path, b"{}", theirs, key=world.other_datastore_key)
    assert response.status_code == 200


def test_a_datastore_that_never_registered_cannot_sign(world: World) -> None:
    DataStore.objects.filter(pk=world.datastore.pk).update(metaserver_token="")
    headers = signed(world, HEARTBEAT, b"{}", secret="guessed-empty-or-old-token")
    assert_bare(send(world, HEARTBEAT, b"{}", headers), 403)


def test_registration_needs_the_key_only_and_its_token_signs_what_follows(
    world: World,
) -> None:
    old = world.datastore.metaserver_token
    body = json.dumps({"url": "http://store1:8080", "allows_upload": True}).encode()
    registered = send(world, REGISTER_PATH.format(name="store1"), body, {})
    assert registered.status_code == 200, registered.content
    token = registered.json()["metaserver_token"]
    new = signed(world, HEARTBEAT, b"{}", secret=token)
    assert send(world, HEARTBEAT, b"{}", new).status_code == 200
    # Registration rotated the token: one signed with the old one is refused.
    assert_bare(send(world, HEARTBEAT, b"{}", signed(world, HEARTBEAT, b"{}")), 403)
    assert old != token


def test_refusals_reveal_nothing_and_are_logged_without_secrets(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    headers = signed(world, VALIDATE, ASK)
    send(world, VALIDATE, ASK, headers)
    caplog.set_level(logging.WARNING, logger="metaserver.datastores.authentication")
    bodies = [
        send(world, VALIDATE, ASK, headers).content,  # replay
        send(world, VALIDATE, ASK, headers | {SIGNATURE_HEADER: "f" * 64}).content,
        send(world, VALIDATE, b"{}", signed(world, VALIDATE, ASK)).content,
        send(world, VALIDATE, ASK, {}).content,
    ]
    for content in bodies:
        assert json.loads(content)["detail"] is None
        text = content.decode()
        for secret in (
            world.datastore_key,
            world.datastore.metaserver_token,
            headers[SIGNATURE_HEADER],
            headers[NONCE_HEADER],
            "nonce",
            "signature",
            "timestamp",
        ):
            assert secret not in text
    reasons = [r.getMessage() for r in caplog.records]
    assert any("replay" in r for r in reasons), reasons
    assert any("signature does not match" in r for r in reasons), reasons
    assert any("unsigned" in r for r in reasons), reasons
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    for reason in reasons:
        assert world.datastore.metaserver_token not in reason
        assert world.datastore_key not in reason
        assert headers[SIGNATURE_HEADER] not in reason


def test_heartbeats_prune_nonces_older_than_twice_the_window(world: World) -> None:
    now = timezone.now()
    old = DatastoreNonce.objects.create(
        datastore=world.other_datastore,
        nonce="old-nonce-0123456789",
        seen_at=now - NONCE_RETENTION - timedelta(seconds=1),
    )
    recent = DatastoreNonce.objects.create(
        datastore=world.other_datastore,
        nonce="recent-nonce-0123456789",
        seen_at=now - NONCE_RETENTION + timedelta(seconds=10),
    )
    assert world.datastore_client().post(HEARTBEAT).status_code == 200
    remaining = set(DatastoreNonce.objects.values_list("pk", flat=True))
    assert old.pk not in remaining
    assert recent.pk in remaining


def test_a_report_over_djangos_in_memory_limit_is_still_verified_and_read(
    world: World,
) -> None:
    body = json.dumps({"datasets": []}).encode() + b" " * 5000
    url = REPORT_PATH.format(name="store1")
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000):
        response = send(world, url, body, signed(world, url, body))
    assert response.status_code == 200, response.content


def test_validate_access_runs_few_queries(
    world: World, datasets: dict[str, Dataset], django_assert_num_queries: Any
) -> None:
    body = json.dumps(
        {
            "token": world.tokens["member"],
            "organization": "lab",
            "dataset": "private",
            "mode": "read",
        }
    ).encode()
    # The first use of an API token stamps its last_used (then at most rarely).
    send(world, VALIDATE, body, signed(world, VALIDATE, body))
    headers = signed(world, VALIDATE, body)
    with django_assert_num_queries(6):
        # the datastore by name (key check); the nonce: savepoint, insert, release
        # (without a test's surrounding transaction: the insert and its commit);
        # the API token with its user; the gate's one visibility query.
        response = send(world, VALIDATE, body, headers)
    assert response.json()["allowed"] is True
