"""No token reaches a log file of either service, whichever way it was sent."""

from __future__ import annotations

import time

import numpy as np
import pytest

from .services import ORG, Services, write_zarr3_dataset

pytestmark = pytest.mark.e2e


def _dataset(services: Services, name: str) -> None:
    write_zarr3_dataset(services.binary_data / ORG / name, np.ones((8, 8, 8)))
    services.scan()
    services.dataset(name, "active")


def test_tokens_in_urls_and_headers_never_reach_the_logs(services: Services) -> None:
    _dataset(services, "logged")
    with services.api(services.admin_token) as api:
        sharing = api.get(f"/api/datasets/{ORG}/logged/sharing-token/").json()["token"]
        viewer = api.post("/api/auth/viewer-token/").json()["token"]
    data_path = f"/data/datasets/{ORG}/logged/layers/color/data"
    params = {"mag": "1", "x": 0, "y": 0, "z": 0, "width": 8, "height": 8, "depth": 1}
    with services.api() as anonymous:
        for name in ("token", "sharingToken"):
            response = anonymous.get(
                f"/api/datasets/{ORG}/logged/", params={name: sharing}
            )
            assert response.status_code == 200, response.text
    with services.data() as data:
        for token in (sharing, viewer, services.admin_token):
            for name in ("token", "sharingToken"):
                answer = data.get(data_path, params={**params, name: token})
                assert answer.status_code == 200, answer.text
            headers = {"X-Auth-Token": token, "Referer": f"http://x/?token={token}"}
            assert (
                data.get(data_path, params=params, headers=headers).status_code == 200
            )
    time.sleep(0.5)  # let the access logs flush
    logs = {
        name: (services.logs / f"{name}.log").read_text(errors="replace")
        for name in ("metaserver", "datastore")
    }
    assert f"/api/datasets/{ORG}/logged/" in logs["metaserver"], "no access log?"
    assert data_path in logs["datastore"], "no access log?"
    for name, text in logs.items():
        for token in (sharing, viewer, services.admin_token):
            assert token not in text, f"a token is in the {name} log"
