"""POST /api/auth/token/, GET /api/user/ and token authentication."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from metaserver.accounts.models import ApiToken

from .world import PASSWORD, World, assert_json_error


def test_username_and_password_give_a_working_token(world: World) -> None:
    response = APIClient().post(
        "/api/auth/token/", {"username": "member", "password": PASSWORD}
    )
    assert response.status_code == 200, response.content
    token = response.json()["token"]
    assert token.startswith("vxh_")
    assert len(token) > 40
    stored = ApiToken.objects.get(user=world.users["member"], name="api")
    assert stored.prefix == token[:8]
    assert token not in stored.key_hash  # stored hashed
    me = APIClient().get("/api/user/", HTTP_AUTHORIZATION=f"Token {token}")
    assert me.json()["username"] == "member"


def test_token_endpoint_works_without_trailing_slash(world: World) -> None:
    response = APIClient().post(
        "/api/auth/token", {"username": "member", "password": PASSWORD}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "credentials",
    [
        {"username": "member", "password": "wrong"},
        {"username": "nobody", "password": PASSWORD},
    ],
)
def test_wrong_credentials_give_401_and_no_token(
    world: World, credentials: dict[str, str]
) -> None:
    before = ApiToken.objects.count()
    body = assert_json_error(APIClient().post("/api/auth/token/", credentials), 401)
    assert "token" not in body
    assert ApiToken.objects.count() == before


def test_inactive_user_gets_no_token(world: World) -> None:
    world.users["member"].is_active = False
    world.users["member"].save()
    response = APIClient().post(
        "/api/auth/token/", {"username": "member", "password": PASSWORD}
    )
    assert_json_error(response, 401)


@pytest.mark.parametrize(
    ("body", "field"),
    [({"username": "member"}, "password"), ({"password": "x"}, "username")],
)
def test_incomplete_token_request_is_400_naming_the_field(
    world: World, body: dict[str, str], field: str
) -> None:
    response = APIClient().post("/api/auth/token/", body)
    assert field in assert_json_error(response, 400)["detail"]


def test_me_lists_organizations_roles_and_teams(world: World) -> None:
    body = world.client("member").get("/api/user/").json()
    assert body["username"] == "member"
    assert body["is_superuser"] is False
    assert body["organizations"] == [
        {"name": "lab", "display_name": "The Lab", "role": "member"}
    ]
    assert body["teams"] == [
        {
            "id": world.alpha.pk,
            "name": "alpha",
            "organization": "lab",
            "is_manager": False,
        }
    ]
    assert "password" not in body


def test_me_requires_authentication(world: World) -> None:
    response = APIClient().get("/api/user/")
    assert_json_error(response, 401)
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "token", "bearer"])
def test_token_and_bearer_schemes_are_both_accepted(world: World, scheme: str) -> None:
    response = APIClient().get(
        "/api/user/", HTTP_AUTHORIZATION=f"{scheme} {world.tokens['admin']}"
    )
    assert response.status_code == 200
    assert response.json()["username"] == "admin"


@pytest.mark.parametrize(
    "header",
    [
        "Token",
        "Token vxh_wrong",
        "Token a b",
        "Bearer not-ours",
        "Token vxh_\u00e9\u00e9",
    ],
)
def test_bad_authorization_headers_are_401(world: World, header: str) -> None:
    response = APIClient().get("/api/user/", HTTP_AUTHORIZATION=header)
    assert_json_error(response, 401)


def test_token_in_query_string_is_not_accepted(world: World) -> None:
    response = APIClient().get("/api/user/", {"token": world.tokens["admin"]})
    assert_json_error(response, 401)


def test_last_used_is_written_at_most_once_a_minute(world: World) -> None:
    client = world.client("member")
    token = ApiToken.objects.get(user=world.users["member"])
    assert token.last_used is None
    client.get("/api/user/")
    first = ApiToken.objects.get(pk=token.pk).last_used
    assert first is not None
    client.get("/api/user/")
    assert ApiToken.objects.get(pk=token.pk).last_used == first
    ApiToken.objects.filter(pk=token.pk).update(last_used=first - timedelta(minutes=2))
    client.get("/api/user/")
    assert ApiToken.objects.get(pk=token.pk).last_used > first - timedelta(seconds=1)


def test_session_login_works_for_the_browsable_api(world: World) -> None:
    client = APIClient()
    client.force_login(world.users["admin"])
    assert client.get("/api/user/").json()["username"] == "admin"


def test_session_writes_need_a_csrf_token(world: World) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(world.users["superuser"])
    response = client.post(
        "/api/datastores/",
        {"name": "new", "url": "http://new:1"},
        format="json",
    )
    body = assert_json_error(response, 403)
    assert "CSRF" in body["detail"]


def test_changing_the_password_ends_other_sessions(world: World) -> None:
    client = APIClient()
    client.force_login(world.users["admin"])
    world.users["admin"].set_password("a new and different password")
    world.users["admin"].save()
    assert_json_error(client.get("/api/user/"), 401)
