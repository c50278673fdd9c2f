"""The real metaserver insists on signed datastore calls; the real node signs.

Every other end-to-end test that scans, reads or waits for a heartbeat passes only
if the node's signed calls are accepted; these prove the refusals are real too.
The test never registers, so the running node keeps its token.
"""

from __future__ import annotations

import json

import httpx

from shared.protocol import DATASTORE_KEY_HEADER, HEARTBEAT_PATH, VALIDATE_ACCESS_PATH
from shared.tokens import sign_request

from .services import Services


def _post(
    services: Services, path: str, body: bytes, extra: dict[str, str]
) -> httpx.Response:
    headers = {
        DATASTORE_KEY_HEADER: services.datastore_key,
        "Content-Type": "application/json",
    } | extra
    with httpx.Client(base_url=services.metaserver_url, timeout=10) as client:
        return client.post(path, content=body, headers=headers)


def test_the_right_key_without_a_signature_is_401_without_details(
    services: Services,
) -> None:
    path = HEARTBEAT_PATH.format(name=services.datastore_name)
    response = _post(services, path, b"{}", {})
    assert response.status_code == 401
    assert response.json()["detail"] is None


def test_a_signature_with_a_guessed_token_is_403_without_details(
    services: Services,
) -> None:
    path = VALIDATE_ACCESS_PATH.format(name=services.datastore_name)
    body = json.dumps(
        {"token": None, "organization": "x", "dataset": None, "mode": "read"}
    ).encode()
    signature = sign_request("guessed-token-0123456789abcdef", "POST", path, body)
    response = _post(services, path, body, signature)
    assert response.status_code == 403
    assert response.json()["detail"] is None
    assert services.datastore_key not in response.text
