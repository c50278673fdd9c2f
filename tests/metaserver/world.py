"""The test world: personas, datastores, datasets, and helpers.

The world: organization `lab` with an admin, a dataset manager, a member of team
`alpha` and a member of no team; organization `other` whose admin is the outsider;
a superuser; two datastores. Every persona talks through real HTTP with a real
API token. The settings module needs no secret under pytest (see its docstring).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.encoding import force_bytes
from rest_framework.test import APIClient

from metaserver.accounts.models import Organization, Team, User
from metaserver.datasets.models import Dataset
from metaserver.datastores.models import DataStore
from shared.protocol import DATASTORE_KEY_HEADER
from shared.tokens import sign_request

PASSWORD = "correct horse battery staple"
KEY_META = "HTTP_" + DATASTORE_KEY_HEADER.upper().replace("-", "_")


def meta_name(header: str) -> str:
    """The request.META key of an HTTP header."""
    return "HTTP_" + header.upper().replace("-", "_")


class SignedDatastoreClient(APIClient):
    """Sends the datastore key and signs every request as a datastore node does.

    The signature covers the exact bytes sent, so `post(..., format="json")` and
    `generic(...)` with raw bytes are signed alike. `secret=None` sends no signature.
    """

    def __init__(self, key: str, secret: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.secret = secret
        self.credentials(**{KEY_META: key})

    def generic(
        self,
        method: str,
        path: str,
        data: Any = "",
        content_type: str | None = "application/octet-stream",
        secure: bool = False,
        **extra: Any,
    ) -> Any:
        if self.secret is not None:
            body = force_bytes(data, settings.DEFAULT_CHARSET)
            query = extra.get("QUERY_STRING") or urlsplit(path).query
            signed_path = urlsplit(path).path + (f"?{query}" if query else "")
            headers = sign_request(self.secret, method, signed_path, body)
            extra.update({meta_name(name): value for name, value in headers.items()})
        return super().generic(method, path, data, content_type, secure, **extra)


PERSONAS = (
    "superuser",
    "admin",
    "dataset_manager",
    "member",
    "member_without_team",
    "outsider",
    "anonymous",
)

DATASOURCE: dict[str, Any] = {
    "id": {"name": "ds", "team": "lab"},
    "scale": {"factor": [11.24, 11.24, 28.0], "unit": "nanometer"},
    "dataLayers": [
        {
            "name": "color",
            "category": "color",
            "boundingBox": {
                "topLeft": [0, 0, 0],
                "width": 64,
                "height": 64,
                "depth": 32,
            },
            "elementClass": "uint8",
            "dataFormat": "zarr3",
            "mags": [{"mag": [1, 1, 1], "path": "./color/1"}],
            "someFutureKey": {"kept": True},
        }
    ],
}


def datasource(name: str = "ds") -> dict[str, Any]:
    """A valid datasource-properties dict (a fresh copy)."""
    result = copy.deepcopy(DATASOURCE)
    result["id"]["name"] = name
    return result


@dataclass
class World:
    lab: Organization
    other: Organization
    alpha: Team
    datastore: DataStore
    datastore_key: str
    other_datastore: DataStore
    other_datastore_key: str
    users: dict[str, User] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, persona: str) -> APIClient:
        """An API client authenticated as `persona` with its API token."""
        client = APIClient()
        if persona != "anonymous":
            client.credentials(HTTP_AUTHORIZATION=f"Token {self.tokens[persona]}")
        return client

    def datastore_client(
        self, key: str | None = None, *, secret: str | None = None
    ) -> SignedDatastoreClient:
        """A client that acts as the datastore `store1`: its key (or `key`) and a
        signature with its metaserver token (or `secret`) on every request."""
        return SignedDatastoreClient(
            key or self.datastore_key, secret or self.datastore.metaserver_token
        )

    def dataset(
        self,
        name: str,
        *,
        organization: Organization | None = None,
        datastore: DataStore | None = None,
        teams: tuple[Team, ...] = (),
        **fields: Any,
    ) -> Dataset:
        fields.setdefault("datasource", datasource(name))
        dataset = Dataset.objects.create(
            organization=organization or self.lab,
            datastore=datastore or self.datastore,
            name=name,
            **fields,
        )
        if teams:
            dataset.allowed_teams.set(teams)
        return dataset


def assert_json_error(response: Any, status: int) -> dict[str, Any]:
    """The response has `status` and the API's error shape; returns the body."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response.content
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["error"], str)
    assert body["error"]
    assert "Traceback" not in response.content.decode()
    return body
