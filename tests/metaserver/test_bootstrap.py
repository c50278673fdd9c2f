"""ensure_embedded_setup and the CLI helpers."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from metaserver.accounts.models import ApiToken, Membership, Role, User, hash_secret
from metaserver.bootstrap import (
    SetupError,
    create_token_for,
    ensure_embedded_setup,
    set_password_for,
)
from metaserver.datastores.models import DataStore
from shared.protocol import HEARTBEAT_PATH, REGISTER_PATH

from .world import SignedDatastoreClient


def _works(setup_token: str, datastore_key: str, name: str = "localhost") -> None:
    me = APIClient().get("/api/user/", HTTP_AUTHORIZATION=f"Token {setup_token}")
    assert me.status_code == 200, me.content
    url = DataStore.objects.get(name=name).url
    # As the node does: register with the key alone, then sign with the answer.
    registered = SignedDatastoreClient(datastore_key, None).post(
        REGISTER_PATH.format(name=name),
        {"url": url, "allows_upload": True},
        format="json",
    )
    assert registered.status_code == 200, registered.content
    token = registered.json()["metaserver_token"]
    beat = SignedDatastoreClient(datastore_key, token).post(
        HEARTBEAT_PATH.format(name=name)
    )
    assert beat.status_code == 200


def test_first_run_creates_everything_and_writes_a_private_file(
    db: None, tmp_path: Path
) -> None:
    credentials = tmp_path / "home" / "credentials.json"
    setup = ensure_embedded_setup(credentials_file=credentials)
    assert setup.created is True
    assert setup.admin_username == "admin"
    assert setup.datastore_name == "localhost"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert json.loads(credentials.read_text()) == {
        "admin_password": setup.admin_password,
        "api_token": setup.api_token,
        "datastore_key": setup.datastore_key,
    }
    admin = User.objects.get(username="admin")
    assert admin.is_superuser
    assert admin.check_password(setup.admin_password)
    membership = Membership.objects.get(user=admin)
    assert (membership.organization.name, membership.role) == (
        "sample_organization",
        Role.ADMIN,
    )
    assert DataStore.objects.get(name="localhost").url == "http://127.0.0.1:8080"
    assert not list(credentials.parent.glob(".*tmp"))  # no leftover temp file
    _works(setup.api_token, setup.datastore_key)


def test_second_run_reuses_the_file_and_updates_the_datastore_url(
    db: None, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials.json"
    first = ensure_embedded_setup(credentials_file=credentials)
    written = credentials.stat().st_mtime_ns
    second = ensure_embedded_setup(
        credentials_file=credentials, datastore_url="http://127.0.0.1:9999"
    )
    assert second.created is False
    assert (second.admin_password, second.api_token, second.datastore_key) == (
        first.admin_password,
        first.api_token,
        first.datastore_key,
    )
    assert credentials.stat().st_mtime_ns == written
    assert DataStore.objects.get(name="localhost").url == "http://127.0.0.1:9999"
    assert ApiToken.objects.count() == 1
    assert User.objects.filter(username="admin").count() == 1


def test_lost_file_resets_the_password_and_rotates_token_and_key(
    db: None, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials.json"
    first = ensure_embedded_setup(credentials_file=credentials)
    credentials.unlink()
    second = ensure_embedded_setup(credentials_file=credentials)
    assert second.created is False
    assert second.admin_password != first.admin_password
    assert second.api_token != first.api_token
    assert second.datastore_key != first.datastore_key
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert User.objects.get(username="admin").check_password(second.admin_password)
    assert DataStore.objects.get(name="localhost").key_hash == hash_secret(
        second.datastore_key
    )
    _works(second.api_token, second.datastore_key)
    old = APIClient().get("/api/user/", HTTP_AUTHORIZATION=f"Token {first.api_token}")
    assert old.status_code == 200  # earlier tokens stay valid until revoked


@pytest.mark.parametrize("content", ["{not json", "[]", '{"api_token": 5}'])
def test_corrupt_file_is_replaced_with_working_credentials(
    db: None, tmp_path: Path, content: str
) -> None:
    credentials = tmp_path / "credentials.json"
    ensure_embedded_setup(credentials_file=credentials)
    credentials.write_text(content)
    setup = ensure_embedded_setup(credentials_file=credentials)
    assert json.loads(credentials.read_text())["api_token"] == setup.api_token
    _works(setup.api_token, setup.datastore_key)


def test_custom_names_are_used(db: None, tmp_path: Path) -> None:
    setup = ensure_embedded_setup(
        credentials_file=tmp_path / "c.json",
        organization="my_lab",
        admin_username="boss",
        datastore_name="e2e",
        datastore_url="http://127.0.0.1:7000",
    )
    assert setup.admin_username == "boss"
    assert Membership.objects.get(user__username="boss").organization.name == "my_lab"
    _works(setup.api_token, setup.datastore_key, name="e2e")


def test_bad_names_raise_a_setup_error(db: None, tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="name"):
        ensure_embedded_setup(credentials_file=tmp_path / "c.json", organization="a b")
    assert not (tmp_path / "c.json").exists()


def test_create_token_for_an_existing_user(db: None, tmp_path: Path) -> None:
    ensure_embedded_setup(credentials_file=tmp_path / "c.json")
    token = create_token_for("admin")
    assert token.startswith("vxh_")
    me = APIClient().get("/api/user/", HTTP_AUTHORIZATION=f"Token {token}")
    assert me.json()["username"] == "admin"


def test_set_password_for_an_existing_user(db: None, tmp_path: Path) -> None:
    ensure_embedded_setup(credentials_file=tmp_path / "c.json")
    set_password_for("admin", "a much better passphrase")
    assert User.objects.get(username="admin").check_password("a much better passphrase")


@pytest.mark.parametrize(
    "call", [lambda: create_token_for("ghost"), lambda: set_password_for("ghost", "x")]
)
def test_helpers_name_the_missing_user(db: None, call: object) -> None:
    with pytest.raises(SetupError, match="ghost"):
        call()  # type: ignore[operator]


def test_weak_password_is_a_setup_error(db: None, tmp_path: Path) -> None:
    ensure_embedded_setup(credentials_file=tmp_path / "c.json")
    with pytest.raises(SetupError, match="short"):
        set_password_for("admin", "abc")
