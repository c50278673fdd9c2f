"""Both services as real processes on loopback, against a fresh PostgreSQL database.

Used by the end-to-end and the browser tests' conftests: `temporary_database()`
makes (and drops) a database, `running_services()` migrates it, collects the static
files, starts one metaserver (gunicorn) and one datastore (`python -m datastore`)
and stops them again. Tests create datasets in the datastore's binaryData folder and
trigger scans over HTTP, like an operator would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[2]
ORG = "e2e_org"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(
    url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout}s\n{log.read_text()[-4000:]}")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Services:
    metaserver_url: str
    datastore_url: str
    binary_data: Path
    admin_token: str
    datastore_key: str
    datastore_name: str
    env: dict[str, str]
    logs: Path
    # The metaserver's environment, for management commands against its database.
    metaserver_env: dict[str, str] = field(default_factory=dict)

    def api(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Token {token}"} if token else {}
        return httpx.Client(base_url=self.metaserver_url, headers=headers, timeout=30)

    def data(self, token: str | None = None) -> httpx.Client:
        headers = {"X-Auth-Token": token} if token else {}
        return httpx.Client(base_url=self.datastore_url, headers=headers, timeout=60)

    def scan(self, organization: str = ORG, token: str | None = None) -> dict[str, int]:
        with self.data(token or self.admin_token) as client:
            response = client.post(
                "/data/triggers/checkInbox", params={"organization": organization}
            )
        assert response.status_code == 200, response.text
        return response.json()

    def dataset(
        self,
        name: str,
        status: str | None = None,
        organization: str = ORG,
        token: str | None = None,
    ) -> dict[str, Any]:
        """The dataset's record; with `status`, wait until the report has landed."""
        deadline = time.monotonic() + 20
        with self.api(token or self.admin_token) as client:
            while True:
                response = client.get(f"/api/datasets/{organization}/{name}/")
                # A scan answers before its report reaches the metaserver.
                found = response.status_code == 200
                if found and (status is None or response.json()["status"] == status):
                    return response.json()
                if time.monotonic() > deadline:
                    assert found, response.text
                    return response.json()
                time.sleep(0.2)

    def django(self, code: str, *args: str) -> str:
        """Run `code` in a fresh process with Django set up; returns its stdout.

        For setup that has no API yet (users with passwords, memberships).
        """
        result = subprocess.run(
            [sys.executable, "-c", "import django; django.setup()\n" + code, *args],
            env=self.metaserver_env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"setup code failed:\n{result.stderr[-4000:]}")
        return result.stdout


def _postgres_url(database: str) -> str:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/voxelhub")
    return base.rsplit("/", 1)[0] + f"/{database}"


@contextmanager
def temporary_database(prefix: str = "voxelhub_e2e") -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin_url = _postgres_url("postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _postgres_url(name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "metaserver.manage", *args],
        env=env,
        check=True,
        cwd=ROOT,
    )


@contextmanager
def running_services(
    database_url: str, home: Path, broker_url: str = "", worker_processes: int = 2
) -> Iterator[Services]:
    """Metaserver and datastore on free loopback ports, with `home` as VOXELHUB_HOME.

    With `broker_url` (Redis or RabbitMQ) the datastore sends its jobs there and
    `voxelhub datastore worker --processes N` runs them as separate processes,
    as in production; without, the datastore's in-process worker runs them. The
    datastore's name (hence its queue) is unique, so runs sharing a broker do
    not take each other's jobs.
    """
    datastore_name = f"e2e-{uuid.uuid4().hex[:8]}"
    binary_data = home / "binaryData"
    (binary_data / ORG).mkdir(parents=True)
    logs = home / "logs"
    logs.mkdir()
    metaserver_port, datastore_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VOXELHUB_", "DJANGO_", "PYTEST_"))
    }
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": database_url,
            "VOXELHUB_HOME": str(home),
            "VOXELHUB_SECRET_KEY": "e2e-" + uuid.uuid4().hex * 2,
            "VOXELHUB_DEBUG": "0",
            "VOXELHUB_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SETTINGS_MODULE": "metaserver.config.settings",
        }
    )
    python = sys.executable
    _manage(env, "migrate", "--noinput", "-v", "0")
    # As in production: WhiteNoise serves only collected files when DEBUG is off.
    _manage(env, "collectstatic", "--noinput", "-v", "0")
    datastore_url = f"http://127.0.0.1:{datastore_port}"
    setup = subprocess.run(
        [
            python,
            "-c",
            "import django, json, sys; django.setup();"
            "from pathlib import Path;"
            "from metaserver.bootstrap import ensure_embedded_setup as s;"
            f"r = s(credentials_file=Path(sys.argv[1]), organization={ORG!r},"
            f" datastore_name={datastore_name!r}, datastore_url={datastore_url!r});"
            "print(json.dumps({'token': r.api_token, 'key': r.datastore_key}))",
            str(home / "credentials.json"),
        ],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    creds = json.loads(setup.stdout.strip().splitlines()[-1])
    metaserver_url = f"http://127.0.0.1:{metaserver_port}"
    ds_env = dict(env)
    ds_env.update(
        {
            "VOXELHUB_DATASTORE_NAME": datastore_name,
            "VOXELHUB_BROKER_URL": broker_url,
            "VOXELHUB_DATASTORE_URL": datastore_url,
            "VOXELHUB_DATASTORE_KEY": creds["key"],
            "VOXELHUB_DATASTORE_BINARY_DATA": str(binary_data),
            "VOXELHUB_DATASTORE_METASERVER_URL": metaserver_url,
            "VOXELHUB_DATASTORE_SCAN_INTERVAL": "3600",
            "VOXELHUB_DATASTORE_HEARTBEAT_INTERVAL": "1",
        }
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with open(logs / "metaserver.log", "wb") as log:
            procs.append(
                subprocess.Popen(
                    [
                        python,
                        "-m",
                        "gunicorn",
                        "-c",
                        "python:metaserver.config.gunicorn",
                        "metaserver.config.wsgi:application",
                        "--access-logfile",
                        "-",
                        "--bind",
                        f"127.0.0.1:{metaserver_port}",
                        "--workers",
                        "2",
                        "--threads",
                        "4",
                    ],
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        wait_http(f"{metaserver_url}/api/schema/", procs[0], logs / "metaserver.log")
        with open(logs / "datastore.log", "wb") as log:
            procs.append(
                subprocess.Popen(
                    [python, "-m", "datastore"],
                    env=ds_env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        wait_http(f"{datastore_url}/data/health", procs[1], logs / "datastore.log")
        if broker_url:
            with open(logs / "worker.log", "wb") as log:
                procs.append(
                    subprocess.Popen(
                        [
                            *(python, "-m", "voxelhub.cli", "datastore", "worker"),
                            *("--processes", str(worker_processes), "--threads", "1"),
                        ],
                        env=ds_env,
                        cwd=ROOT,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        yield Services(
            metaserver_url=metaserver_url,
            datastore_url=datastore_url,
            binary_data=binary_data,
            admin_token=creds["token"],
            datastore_key=creds["key"],
            datastore_name=datastore_name,
            env=ds_env,
            logs=logs,
            metaserver_env=env,
        )
    finally:
        for proc in reversed(procs):
            stop_process(proc)


def write_zarr3_dataset(folder: Path, data: Any, team: str = ORG) -> None:
    """A one-layer uint8 zarr3 dataset of `data` (x, y, z) with its properties."""
    import numpy as np

    from shared.datasource import (
        Category,
        DataFormat,
        DatasourceProperties,
        ElementClass,
        LayerProperties,
        MagProperties,
        VoxelSize,
        save_datasource,
    )
    from shared.formats import create_mag
    from shared.geometry import BoundingBox, Mag, Vec3

    volume = np.asarray(data, dtype=np.uint8)
    array = create_mag(folder / "color" / "1", DataFormat.ZARR3, np.uint8)
    array.write(Vec3(0, 0, 0), volume[np.newaxis])
    array.close()
    save_datasource(
        folder / "datasource-properties.json",
        DatasourceProperties(
            name=folder.name,
            team=team,
            voxel_size=VoxelSize((11.0, 11.0, 24.0)),
            layers=(
                LayerProperties(
                    name="color",
                    category=Category.COLOR,
                    bounding_box=BoundingBox(Vec3(0, 0, 0), Vec3(*volume.shape)),
                    element_class=ElementClass.UINT8,
                    data_format=DataFormat.ZARR3,
                    mags=(MagProperties(mag=Mag(1, 1, 1), path="./color/1"),),
                    num_channels=1,
                ),
            ),
        ),
    )
