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

from rest_framework.test import APIClient

from metaserver.accounts.models import Organization, Team, User
from metaserver.datasets.models import Dataset
from metaserver.datastores.models import DataStore
from shared.protocol import DATASTORE_KEY_HEADER

PASSWORD = "correct horse battery staple"
KEY_META = "HTTP_" + DATASTORE_KEY_HEADER.upper().replace("-", "_")

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

    def datastore_client(self, key: str | None = None) -> APIClient:
        client = APIClient()
        client.credentials(**{KEY_META: key or self.datastore_key})
        return client

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
