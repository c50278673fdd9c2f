"""Sharing tokens and viewer tokens: what they open, and that revoking works."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import signing
from rest_framework.test import APIClient

from metaserver.accounts.actions import do_set_password
from metaserver.accounts.viewer_tokens import (
    VIEWER_TOKEN_MAX_AGE_SECONDS,
    make_viewer_token,
)
from metaserver.datasets.models import Dataset

from .test_validate_access import ask
from .world import World, assert_json_error

TOKEN_URL = "/api/datasets/lab/{}/sharing-token/"


@pytest.fixture
def shared(world: World) -> Dataset:
    return world.dataset("shared")


def sharing_token(world: World, name: str = "shared") -> str:
    response = world.client("admin").get(TOKEN_URL.format(name))
    assert response.status_code == 200, response.content
    token: str = response.json()["token"]
    return token


def test_sharing_token_is_random_prefixed_and_stable_until_revoked(
    world: World, shared: Dataset
) -> None:
    token = sharing_token(world)
    assert token.startswith("vxs_")
    assert len(token) >= 4 + 43  # 32 random bytes in base64
    assert sharing_token(world) == token
    other = world.dataset("other_one")
    assert sharing_token(world, other.name) != token


def test_sharing_token_opens_its_dataset_without_login(
    world: World, shared: Dataset
) -> None:
    token = sharing_token(world)
    anonymous = APIClient()
    assert anonymous.get("/api/datasets/lab/shared/").status_code == 404
    response = anonymous.get("/api/datasets/lab/shared/", {"token": token})
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "shared"
    header = anonymous.get("/api/datasets/lab/shared/", HTTP_X_AUTH_TOKEN=token)
    assert header.status_code == 200
    # Never in a listing, never for another dataset, never for a write.
    listing = anonymous.get("/api/datasets/", {"token": token}).json()
    assert listing["results"] == []
    world.dataset("neighbour")
    assert_json_error(
        anonymous.get("/api/datasets/lab/neighbour/", {"token": token}), 404
    )
    patch = anonymous.patch(
        f"/api/datasets/lab/shared/?token={token}", {"is_public": True}, format="json"
    )
    assert patch.status_code == 403, patch.content
    assert "read-only" in patch.json()["detail"]


def test_sharing_token_in_validate_access_reads_only_its_dataset(
    world: World, shared: Dataset
) -> None:
    token = sharing_token(world)
    world.dataset("neighbour")
    assert ask(world, None, "shared", token=token)["allowed"] is True
    assert ask(world, None, "neighbour", token=token)["allowed"] is False
    assert ask(world, None, "shared", "write", token=token)["allowed"] is False
    assert ask(world, None, "shared", "administrate", token=token)["allowed"] is False
    assert ask(world, None, None, token=token)["allowed"] is False


def test_revoking_replaces_the_token_and_the_old_one_stops_working(
    world: World, shared: Dataset
) -> None:
    old = sharing_token(world)
    response = world.client("dataset_manager").post(TOKEN_URL.format("shared"))
    new = response.json()["token"]
    assert new != old
    assert new.startswith("vxs_")
    assert ask(world, None, "shared", token=old) == {
        "allowed": False,
        "cache_seconds": 0,
    }
    assert ask(world, None, "shared", token=new)["allowed"] is True
    assert APIClient().get(f"/api/datasets/lab/shared/?token={old}").status_code == 404


@pytest.mark.parametrize(
    ("persona", "status"),
    [("member", 404), ("outsider", 404), ("anonymous", 401)],
)
def test_only_editors_see_or_revoke_sharing_tokens(
    world: World, shared: Dataset, persona: str, status: int
) -> None:
    shared.allowed_teams.add(world.alpha)
    client = world.client(persona)
    for method in ("get", "post"):
        response = getattr(client, method)(TOKEN_URL.format("shared"))
        assert response.status_code in (status, 403), response.content
    shared.refresh_from_db()
    assert shared.sharing_token is None


def test_team_manager_may_share_their_teams_datasets(
    world: World, shared: Dataset
) -> None:
    shared.allowed_teams.add(world.alpha)
    response = world.client("team_manager").get(TOKEN_URL.format("shared"))
    assert response.json()["token"].startswith("vxs_")


def test_sharing_token_of_an_unusable_dataset_opens_nothing(
    world: World, shared: Dataset
) -> None:
    token = sharing_token(world)
    Dataset.objects.filter(pk=shared.pk).update(status="unusable")
    assert ask(world, None, "shared", token=token)["allowed"] is False


@pytest.mark.parametrize(
    "token",
    ["vxs_", "vxs_" + "A" * 43, "vxs_" + "x" * 500, "VXS_abc", "vxs_a b"],
)
def test_made_up_sharing_tokens_open_nothing(
    world: World, shared: Dataset, token: str
) -> None:
    sharing_token(world)
    assert ask(world, None, "shared", token=token)["allowed"] is False


def test_sharing_tokens_are_not_in_dataset_answers(
    world: World, shared: Dataset
) -> None:
    token = sharing_token(world)
    body = world.client("admin").get("/api/datasets/lab/shared/").content.decode()
    assert token not in body
    listing = world.client("admin").get("/api/datasets/").content.decode()
    assert token not in listing


def test_viewer_token_reads_what_its_user_reads_and_nothing_more(
    world: World, datasets: dict[str, Any]
) -> None:
    response = world.client("member").post("/api/auth/viewer-token/")
    assert response.status_code == 200, response.content
    token = response.json()["token"]
    assert token.startswith("vxt_")
    assert response.json()["expires_in"] == VIEWER_TOKEN_MAX_AGE_SECONDS
    assert ask(world, None, "private", token=token)["allowed"] is True
    assert ask(world, None, "hidden", token=token)["allowed"] is False
    assert ask(world, None, "private", "write", token=token)["allowed"] is False
    assert APIClient().post("/api/auth/viewer-token/").status_code in (401, 403)


def test_viewer_token_dies_with_a_password_change_or_deactivation(
    world: World, datasets: dict[str, Any]
) -> None:
    user = world.users["member"]
    token = make_viewer_token(user)
    do_set_password(user, "another horse battery staple")
    assert ask(world, None, "private", token=token)["allowed"] is False
    token = make_viewer_token(user)
    user.is_active = False
    user.save()
    assert ask(world, None, "private", token=token)["allowed"] is False


def test_expired_or_forged_viewer_tokens_are_refused(
    world: World, datasets: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    user = world.users["member"]
    forged = "vxt_" + signing.dumps({"u": user.pk, "h": "x"}, salt="other")
    assert ask(world, None, "private", token=forged)["allowed"] is False
    token = make_viewer_token(user)
    later = signing.time.time() + VIEWER_TOKEN_MAX_AGE_SECONDS + 5
    monkeypatch.setattr(signing.time, "time", lambda: later)
    assert ask(world, None, "private", token=token)["allowed"] is False
