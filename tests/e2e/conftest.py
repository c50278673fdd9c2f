"""Both services as real processes on loopback (see `services.py`), once per session.

The session starts one metaserver (gunicorn), one datastore and two dramatiq worker
processes (`voxelhub datastore worker`, on Redis: `VOXELHUB_TEST_REDIS_URL`) on a
fresh PostgreSQL database and tears them down at the end.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

import pytest

from .services import Services, running_services, temporary_database


def _redis_url() -> str:
    import redis

    url = os.environ.get("VOXELHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as e:
        pytest.fail(f"the e2e job workers need Redis at {url}: {e}")
    return url


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
        with running_services(e2e_database, home, broker_url=_redis_url()) as running:
            yield running
    finally:
        shutil.rmtree(home / "binaryData", ignore_errors=True)


@pytest.fixture
def registered(services: Services) -> None:
    """Uploads go to datastores the metaserver has heard from: wait for that."""
    deadline = time.monotonic() + 20
    with services.api(services.admin_token) as api:
        while time.monotonic() < deadline:
            stores = api.get("/api/datastores/").json()
            stores = stores["results"] if isinstance(stores, dict) else stores
            if any(
                s["name"] == services.datastore_name and s["is_reachable"]
                for s in stores
            ):
                return
            time.sleep(0.2)
    pytest.fail("the datastore did not register")
