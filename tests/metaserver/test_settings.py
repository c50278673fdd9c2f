"""Settings come only from the environment, fail loudly on junk, and pass --deploy."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

import metaserver.config.settings as settings_module
from shared.env import SettingError

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_FILE = Path(settings_module.__file__)
MANAGE = (sys.executable, "-m", "metaserver.manage")
SECRET = "s3cr3t-" + "x1y2z3" * 10


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """Run the settings module with exactly `env` (plus PATH), as production would."""
    for name in list(os.environ):
        if name.startswith(("VOXELHUB_", "PYTEST_", "DATABASE_URL")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS_FILE))


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VOXELHUB_", "PYTEST_", "DJANGO_"))
    }
    env.update(extra)
    return env


def test_production_needs_a_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingError, match="VOXELHUB_SECRET_KEY"):
        load(monkeypatch)


@pytest.mark.parametrize("flag", ["VOXELHUB_DEBUG", "VOXELHUB_EMBEDDED"])
def test_debug_and_embedded_modes_make_up_a_random_key(
    monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    first = load(monkeypatch, **{flag: "1"})["SECRET_KEY"]
    second = load(monkeypatch, **{flag: "1"})["SECRET_KEY"]
    assert len(first) >= 50
    assert first != second


def test_secret_key_may_come_from_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    config = load(monkeypatch, VOXELHUB_SECRET_KEY_FILE=str(secret_file))
    assert config["SECRET_KEY"] == SECRET


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VOXELHUB_DEBUG", "maybe"),
        ("VOXELHUB_HTTPS", "2"),
        ("VOXELHUB_DATASTORE_STALE_SECONDS", "soon"),
        ("VOXELHUB_DATASTORE_STALE_SECONDS", "0"),
        ("VOXELHUB_BROKER_URL", "http://broker"),
        ("VOXELHUB_CSRF_TRUSTED_ORIGINS", "example.org"),
        ("VOXELHUB_LOG_LEVEL", "LOUD"),
        ("DATABASE_URL", "nonsense://"),
    ],
)
def test_junk_values_fail_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    with pytest.raises(SettingError, match=name):
        load(monkeypatch, VOXELHUB_SECRET_KEY=SECRET, **{name: value})


def test_database_url_password_is_not_echoed_in_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(SettingError) as error:
        load(
            monkeypatch,
            VOXELHUB_SECRET_KEY=SECRET,
            DATABASE_URL="weird://user:hunter2@host/db",
        )
    assert "hunter2" not in str(error.value)


def test_default_database_is_sqlite_in_voxelhub_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = load(monkeypatch, VOXELHUB_SECRET_KEY=SECRET, VOXELHUB_HOME=str(tmp_path))
    database = config["DATABASES"]["default"]
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert Path(database["NAME"]) == tmp_path / "metaserver.sqlite3"


def test_environment_values_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load(
        monkeypatch,
        VOXELHUB_SECRET_KEY=SECRET,
        VOXELHUB_ALLOWED_HOSTS="data.lab.org, api.lab.org",
        VOXELHUB_CSRF_TRUSTED_ORIGINS="https://data.lab.org",
        VOXELHUB_BROKER_URL="redis://redis:6379/0",
        VOXELHUB_DATASTORE_STALE_SECONDS="90",
        DATABASE_URL="postgres://u:p@db:5432/vh",
    )
    assert config["ALLOWED_HOSTS"] == ["data.lab.org", "api.lab.org"]
    assert config["CSRF_TRUSTED_ORIGINS"] == ["https://data.lab.org"]
    assert config["VOXELHUB_BROKER_URL"] == "redis://redis:6379/0"
    assert config["VOXELHUB_DATASTORE_STALE_SECONDS"] == 90
    assert config["DATABASES"]["default"]["HOST"] == "db"
    assert config["USE_TZ"] is True
    assert config["DEBUG"] is False


def test_https_turns_on_secure_cookies_redirects_and_hsts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = load(monkeypatch, VOXELHUB_SECRET_KEY=SECRET, VOXELHUB_HTTPS="1")
    assert config["SECURE_SSL_REDIRECT"] is True
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["CSRF_COOKIE_SECURE"] is True
    assert config["SECURE_HSTS_SECONDS"] >= 31_536_000
    assert "SECURE_PROXY_SSL_HEADER" not in config


def test_production_settings_pass_the_deploy_check() -> None:
    env = clean_env(
        VOXELHUB_DEBUG="0",
        VOXELHUB_HTTPS="1",
        VOXELHUB_SECRET_KEY=SECRET,
        VOXELHUB_ALLOWED_HOSTS="data.lab.org",
        DATABASE_URL=os.environ.get("DATABASE_URL", "postgres://localhost/vh"),
    )
    result = subprocess.run(
        [*MANAGE, "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_embedded_default_works_on_sqlite_end_to_end(tmp_path: Path) -> None:
    """Migrations, setup and a dataset report on the zero-setup SQLite database."""
    script = """
import sys, django
from pathlib import Path
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from metaserver.bootstrap import ensure_embedded_setup
from metaserver.datasets.actions import do_apply_dataset_report
from metaserver.datastores.models import DataStore
setup = ensure_embedded_setup(credentials_file=Path(sys.argv[1]))
reports = [
    {"organization": "sample_organization", "name": f"d{i}", "status": "active",
     "reason": "", "datasource": None}
    for i in range(600)
]
datastore = DataStore.objects.get(name=setup.datastore_name)
assert do_apply_dataset_report(datastore, reports)["created"] == 600
assert do_apply_dataset_report(datastore, reports[:100])["unusable"] == 600
print("ok")
"""
    env = clean_env(VOXELHUB_EMBEDDED="1", VOXELHUB_HOME=str(tmp_path))
    env.pop("DATABASE_URL", None)
    env["DJANGO_SETTINGS_MODULE"] = "metaserver.config.settings"
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "credentials.json")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok")
    assert (tmp_path / "metaserver.sqlite3").exists()


def test_missing_sqlite_folder_is_a_clear_check_error(tmp_path: Path) -> None:
    env = clean_env(VOXELHUB_EMBEDDED="1", VOXELHUB_HOME=str(tmp_path / "missing"))
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [*MANAGE, "check"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "voxelhub.E001" in result.stderr
    assert "does not exist" in result.stderr


def test_models_and_migrations_agree(db: None) -> None:
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
