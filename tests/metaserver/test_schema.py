"""GET /api/schema/ is a valid OpenAPI 3 document that describes our API."""

from __future__ import annotations

from pathlib import Path

from django.core.management import call_command
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient


def test_schema_is_a_valid_openapi_document(db: None) -> None:
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)
    paths = schema["paths"]
    for path in (
        "/api/auth/token/",
        "/api/user/",
        "/api/datasets/",
        "/api/datasets/{organization}/{name}/",
        "/api/datastores/",
        "/api/datastores/{name}/",
        "/api/datastores/{name}/register",
        "/api/datastores/{name}/heartbeat",
        "/api/datastores/{name}/datasets",
        "/api/datastores/{name}/validate-access",
    ):
        assert path in paths, sorted(paths)
    schemes = schema["components"]["securitySchemes"]
    assert {"apiToken", "datastoreKey"} <= set(schemes)


def test_schema_generation_has_no_warnings(db: None, tmp_path: Path) -> None:
    call_command(
        "spectacular",
        "--validate",
        "--fail-on-warn",
        "--file",
        str(tmp_path / "schema.yaml"),
    )
