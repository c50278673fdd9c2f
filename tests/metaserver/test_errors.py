"""Every API error is JSON `{"error", "detail"}` with its status, never a trace."""

from __future__ import annotations

import logging

import pytest
from django.test import Client
from rest_framework.test import APIClient

from metaserver.logging_filters import RedactSecretsFilter, redact

from .world import World, assert_json_error


@pytest.mark.parametrize(
    "url", ["/api/", "/api/nothing/", "/api/datasets/a/b/c/d/", "/api/datastores/x/y/z"]
)
def test_unknown_api_routes_are_json_404(db: None, url: str) -> None:
    body = assert_json_error(APIClient().get(url), 404)
    assert url in body["detail"]


def test_unknown_routes_outside_the_api_stay_html(db: None) -> None:
    response = Client().get("/nothing/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.urls("tests.metaserver.crash_urls")
@pytest.mark.parametrize("url", ["/api/crash/drf/", "/api/crash/django/"])
def test_crashes_under_the_api_are_json_500_without_details(
    db: None, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.CRITICAL, logger="django.request"):
        response = Client(raise_request_exception=False).get(url)
    body = assert_json_error(response, 500)
    assert body == {"error": "internal server error", "detail": None}
    assert "secret internal detail" not in response.content.decode()


@pytest.mark.urls("tests.metaserver.crash_urls")
def test_crashes_outside_the_api_use_the_html_page(
    db: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.CRITICAL, logger="django.request"):
        response = Client(raise_request_exception=False).get("/crash/")
    assert response.status_code == 500
    assert "secret internal detail" not in response.content.decode()


def test_disallowed_host_is_a_json_400(db: None) -> None:
    response = APIClient().get("/api/datasets/", HTTP_HOST="evil.example.com")
    assert_json_error(response, 400)


def test_malformed_json_is_400_naming_the_problem(world: World) -> None:
    response = world.client("admin").generic(
        "POST", "/api/auth/token/", b'{"username": ', content_type="application/json"
    )
    body = assert_json_error(response, 400)
    assert body["error"] == "malformed request body"
    assert "invalid JSON" in body["detail"]


def test_ordinary_bodies_are_capped(world: World, settings: object) -> None:
    big = b'{"username": "' + b"a" * (3 * 1024 * 1024) + b'"}'
    response = APIClient().generic(
        "POST", "/api/auth/token/", big, content_type="application/json"
    )
    assert_json_error(response, 413)


def test_unsupported_charset_is_400(world: World) -> None:
    response = APIClient().generic(
        "POST",
        "/api/auth/token/",
        b"BZh9",
        content_type="application/json; charset=bz2_codec",
    )
    assert_json_error(response, 400)


def test_validation_errors_name_each_field(world: World) -> None:
    body = assert_json_error(APIClient().post("/api/auth/token/", {}), 400)
    assert body["error"] == "invalid input"
    assert set(body["detail"]) == {"username", "password"}


def test_method_not_allowed_is_json(world: World) -> None:
    assert_json_error(world.client("admin").delete("/api/user/"), 405)


def test_log_filter_redacts_tokens_and_keys() -> None:
    text = (
        "GET /data?token=abc123&x=1 Authorization: Token vxh_SECRETsecret "
        "Bearer eyJhbGciOi key=supersecret"
    )
    cleaned = redact(text)
    for secret in ("abc123", "vxh_SECRETsecret", "eyJhbGciOi", "supersecret"):
        assert secret not in cleaned
    assert "x=1" in cleaned


def test_log_filter_rewrites_formatted_records() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "token %s used", ("vxh_abcdef",), None
    )
    assert RedactSecretsFilter().filter(record)
    assert "vxh_abcdef" not in record.getMessage()
