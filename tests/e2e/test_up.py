"""`voxelhub up` on embedded defaults: what the README's first command promises."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from .services import ROOT, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _voxelhub() -> list[str]:
    return [sys.executable, "-m", "voxelhub.cli"]


def _embedded_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VOXELHUB_", "DJANGO_", "PYTEST_", "DATABASE_URL"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _read_until(proc: subprocess.Popen[str], pattern: str, timeout: float) -> str:
    """Collect stdout until `pattern` appears (the banner), or fail with what came."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            seen.append(line)
            if re.search(pattern, "".join(seen)):
                # The banner is printed in one write; give it a moment to arrive whole.
                time.sleep(0.3)
                seen.extend(proc.stdout.readlines())
                return "".join(seen)
        elif proc.poll() is not None:
            break
        else:
            time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} within {timeout}s; output:\n{''.join(seen)}")


def test_up_runs_everything_with_a_sample_dataset_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    m_port, d_port = free_port(), free_port()
    proc = subprocess.Popen(
        [*_voxelhub(), "up", "--home", str(home),
         "--metaserver-port", str(m_port), "--datastore-port", str(d_port)],
        cwd=tmp_path,
        env=_embedded_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        banner = _read_until(proc, r"API token\s+vxh_\S+", timeout=240)
        password = re.search(r"^\s+password\s+(\S+)$", banner, re.MULTILINE)
        token = re.search(r"API token\s+(vxh_\S+)", banner)
        assert password, banner
        assert token, banner
        assert (home / "metaserver.sqlite3").exists()
        assert (home / "binaryData" / "sample_organization" / "sample_dataset").is_dir()

        api = httpx.Client(
            base_url=f"http://127.0.0.1:{m_port}",
            headers={"Authorization": f"Token {token.group(1)}"},
            timeout=30,
        )
        login = api.post(
            "/api/auth/token/",
            json={"username": "admin", "password": password.group(1)},
        )
        assert login.status_code == 200, login.text
        deadline = time.monotonic() + 60
        dataset: dict = {}
        while time.monotonic() < deadline:
            response = api.get("/api/datasets/sample_organization/sample_dataset/")
            if response.status_code == 200:
                dataset = response.json()
                if dataset["status"] == "active":
                    break
            time.sleep(0.5)
        assert dataset.get("status") == "active", dataset
        layers = {layer["name"] for layer in dataset["datasource"]["dataLayers"]}
        assert layers == {"color", "segmentation"}

        data = httpx.get(
            f"http://127.0.0.1:{d_port}/data/datasets/sample_organization/"
            "sample_dataset/layers/segmentation/data",
            params={
                "mag": 1,
                "x": 0,
                "y": 0,
                "z": 100,
                "width": 256,
                "height": 256,
                "depth": 1,
            },
            headers={"X-Auth-Token": token.group(1)},
            timeout=30,
        )
        assert data.status_code == 200, data.text
        ids = np.frombuffer(data.content, dtype=np.uint32)
        assert ids.size == 256 * 256
        assert len(np.unique(ids)) > 5  # cells, not noise and not empty

        token_cmd = subprocess.run(
            [*_voxelhub(), "token", "create", "admin", "--home", str(home)],
            env=_embedded_env(home), cwd=ROOT, capture_output=True, text=True,
            check=True,
        )  # fmt: skip
        new_token = token_cmd.stdout.strip()
        assert new_token.startswith("vxh_")
        api.close()
        me = httpx.get(
            f"http://127.0.0.1:{m_port}/api/user/",
            headers={"Authorization": f"Token {new_token}"},
        )
        assert me.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            if proc.stdout:
                proc.stdout.close()
    assert proc.returncode == 0
    for port in (m_port, d_port):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


def test_user_set_password_on_an_unknown_user_fails_with_a_message(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    result = subprocess.run(
        [*_voxelhub(), "manage", "--home", str(home), "migrate", "-v", "0"],
        env=_embedded_env(home), cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    result = subprocess.run(
        [*_voxelhub(), "user", "set-password", "nobody", "pw", "--home", str(home)],
        env=_embedded_env(home), cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "nobody" in result.stderr
