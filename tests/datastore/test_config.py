from __future__ import annotations

from pathlib import Path

import pytest

from datastore.config import DatastoreSettings
from shared.env import SettingError
from shared.protocol import MAX_ACCESS_CACHE_SECONDS


def test_defaults_come_from_the_documented_values() -> None:
    settings = DatastoreSettings.from_env({"VOXELHUB_DATASTORE_KEY": "k"})
    assert settings.name == "localhost"
    assert settings.url == "http://127.0.0.1:8080"
    assert settings.public_url == settings.url
    assert (settings.bind_host, settings.bind_port) == ("127.0.0.1", 8080)
    assert settings.binary_data == Path("data/binaryData")
    assert settings.metaserver_url == "http://127.0.0.1:8000"
    assert settings.allowed_roots == ()
    assert settings.scan_interval == 60
    assert settings.heartbeat_interval == 10
    assert settings.max_request_voxels == 512**3
    assert settings.access_cache_seconds == 10
    assert settings.allows_upload is True
    assert settings.read_threads >= 2
    assert settings.broker_url == ""
    assert settings.queue_name == "datastore.localhost"


def test_bind_address_follows_the_url_unless_set_explicitly() -> None:
    env = {
        "VOXELHUB_DATASTORE_KEY": "k",
        "VOXELHUB_DATASTORE_URL": "http://node7.cluster:9090",
    }
    assert DatastoreSettings.from_env(env).bind_port == 9090
    env["VOXELHUB_DATASTORE_BIND"] = "10.1.2.3:8081"
    settings = DatastoreSettings.from_env(env)
    assert (settings.bind_host, settings.bind_port) == ("10.1.2.3", 8081)
    env["VOXELHUB_DATASTORE_BIND"] = "[::1]:8082"
    assert DatastoreSettings.from_env(env).bind_host == "::1"


def test_the_key_is_required_and_may_come_from_a_file(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match="VOXELHUB_DATASTORE_KEY"):
        DatastoreSettings.from_env({})
    secret = tmp_path / "key"
    secret.write_text("from-file-secret\n")
    settings = DatastoreSettings.from_env({"VOXELHUB_DATASTORE_KEY_FILE": str(secret)})
    assert settings.key == "from-file-secret"


def test_the_key_and_broker_password_never_appear_in_the_repr() -> None:
    settings = DatastoreSettings.from_env(
        {
            "VOXELHUB_DATASTORE_KEY": "super-secret-key",
            "VOXELHUB_BROKER_URL": "redis://:hunter2@redis:6379/0",
        }
    )
    assert "super-secret-key" not in repr(settings)
    assert "hunter2" not in repr(settings)


def test_access_cache_time_is_capped_at_the_protocol_maximum() -> None:
    settings = DatastoreSettings.from_env(
        {
            "VOXELHUB_DATASTORE_KEY": "k",
            "VOXELHUB_DATASTORE_ACCESS_CACHE_SECONDS": "3600",
        }
    )
    assert settings.access_cache_seconds == MAX_ACCESS_CACHE_SECONDS


def test_allowed_roots_are_colon_separated() -> None:
    settings = DatastoreSettings.from_env(
        {"VOXELHUB_DATASTORE_KEY": "k", "VOXELHUB_DATASTORE_ALLOWED_ROOTS": "/a:/b/c"}
    )
    assert settings.allowed_roots == (Path("/a"), Path("/b/c"))


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VOXELHUB_DATASTORE_URL", "ftp://x"),
        ("VOXELHUB_DATASTORE_BIND", "nonsense"),
        ("VOXELHUB_DATASTORE_NAME", "../evil"),
        ("VOXELHUB_DATASTORE_SCAN_INTERVAL", "soon"),
        ("VOXELHUB_DATASTORE_MAX_REQUEST_VOXELS", "0"),
        ("VOXELHUB_DATASTORE_ALLOWS_UPLOAD", "maybe"),
    ],
)
def test_junk_settings_fail_loudly_naming_the_variable(
    variable: str, value: str
) -> None:
    with pytest.raises(SettingError, match=variable):
        DatastoreSettings.from_env({"VOXELHUB_DATASTORE_KEY": "k", variable: value})
