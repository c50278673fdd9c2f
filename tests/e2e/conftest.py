"""Both services as real processes on loopback (see `services.py`), once per session.

The session starts one metaserver (gunicorn) and one datastore on a fresh PostgreSQL
database and tears them down at the end.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from .services import Services, running_services, temporary_database


@pytest.fixture(scope="session")
def e2e_database() -> Iterator[str]:
    with temporary_database("voxelhub_e2e") as url:
        yield url


@pytest.fixture(scope="session")
def services(
    e2e_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Services]:
    home = tmp_path_factory.mktemp("e2e-home")
    try:
        with running_services(e2e_database, home) as running:
            yield running
    finally:
        shutil.rmtree(home / "binaryData", ignore_errors=True)
