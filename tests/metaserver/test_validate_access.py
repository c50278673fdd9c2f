"""POST /api/datastores/{name}/validate-access: the datastore asks, the gates answer."""

from __future__ import annotations

from typing import Any

import pytest

from metaserver.accounts.actions import do_revoke_api_tokens
from metaserver.datasets.models import Dataset
from shared.protocol import MAX_ACCESS_CACHE_SECONDS, VALIDATE_ACCESS_PATH

from .world import World, assert_json_error

URL = VALIDATE_ACCESS_PATH.format(name="store1")


def ask(
    world: World,
    persona: str | None,
    dataset: str | None,
    mode: str = "read",
    *,
    organization: str = "lab",
    token: str | None = None,
) -> dict[str, Any]:
    if token is None and persona not in (None, "anonymous"):
        token = world.tokens[persona]
    response = world.datastore_client().post(
        URL,
        {
            "token": token,
            "organization": organization,
            "dataset": dataset,
            "mode": mode,
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"allowed", "cache_seconds"}
    return body


# (persona, dataset, mode) -> allowed, over the `datasets` fixture.
MATRIX = [
    ("anonymous", "public", "read", True),
    ("anonymous", "private", "read", False),
    ("anonymous", "public", "write", False),
    ("member", "private", "read", True),
    ("member", "public", "read", True),
    ("member", "hidden", "read", False),
    ("member", "broken", "read", False),
    ("member", "private", "write", False),
    ("member", "private", "administrate", False),
    ("member_without_team", "private", "read", False),
    ("member_without_team", "public", "read", True),
    ("outsider", "private", "read", False),
    ("outsider", "public", "read", True),
    ("outsider", "public", "write", False),
    ("dataset_manager", "hidden", "read", True),
    ("dataset_manager", "broken", "write", True),
    ("dataset_manager", "private", "administrate", True),
    ("admin", "hidden", "administrate", True),
    ("superuser", "hidden", "administrate", True),
    ("admin", "no_such_dataset", "read", False),
]


@pytest.mark.parametrize(("persona", "dataset", "mode", "allowed"), MATRIX)
def test_access_matrix(
    world: World,
    datasets: dict[str, Dataset],
    persona: str,
    dataset: str,
    mode: str,
    allowed: bool,
) -> None:
    body = ask(world, persona, dataset, mode)
    assert body["allowed"] is allowed
    assert body["cache_seconds"] == (MAX_ACCESS_CACHE_SECONDS if allowed else 0)


def test_a_yes_may_be_cached_ten_seconds(
    world: World, datasets: dict[str, Dataset]
) -> None:
    assert ask(world, "member", "private")["cache_seconds"] == 10


@pytest.mark.parametrize("token", ["vxh_unknown", "garbage", "x" * 1000])
def test_unknown_token_is_refused_even_for_public_data(
    world: World, datasets: dict[str, Dataset], token: str
) -> None:
    assert ask(world, None, "public", token=token)["allowed"] is False


def test_revoked_token_is_refused_at_once(
    world: World, datasets: dict[str, Dataset]
) -> None:
    assert ask(world, "member", "private")["allowed"] is True
    token = world.tokens["member"]
    do_revoke_api_tokens(world.users["member"])
    assert ask(world, None, "private", token=token)["allowed"] is False


def test_token_of_a_deactivated_user_is_refused(
    world: World, datasets: dict[str, Dataset]
) -> None:
    world.users["member"].is_active = False
    world.users["member"].save()
    assert ask(world, "member", "private")["allowed"] is False


def test_datastore_only_learns_about_its_own_datasets(world: World) -> None:
    world.dataset("elsewhere", datastore=world.other_datastore, is_public=True)
    assert ask(world, "admin", "elsewhere")["allowed"] is False
    assert ask(world, "anonymous", "elsewhere")["allowed"] is False


@pytest.mark.parametrize(
    ("persona", "mode", "allowed"),
    [
        ("admin", "administrate", True),
        ("dataset_manager", "administrate", True),
        ("superuser", "administrate", True),
        ("member", "administrate", False),
        ("outsider", "administrate", False),
        ("anonymous", "administrate", False),
        ("dataset_manager", "write", True),
        ("member", "write", False),
        ("member", "read", True),
        ("outsider", "read", False),
        ("anonymous", "read", False),
    ],
)
def test_organization_wide_questions_without_a_dataset(
    world: World, persona: str, mode: str, allowed: bool
) -> None:
    assert ask(world, persona, None, mode)["allowed"] is allowed


def test_unknown_organization_is_a_no(world: World) -> None:
    answer = ask(world, "superuser", None, "administrate", organization="x")
    assert answer["allowed"] is False


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mode": "delete"}, "mode"),
        ({"mode": None}, "mode"),
        ({"organization": None}, "organization"),
        ({"token": 5}, "token"),
        ({"dataset": ["a"]}, "dataset"),
    ],
)
def test_malformed_questions_are_400_naming_the_field(
    world: World, change: dict[str, Any], field: str
) -> None:
    body = {"token": None, "organization": "lab", "dataset": "x", "mode": "read"}
    response = world.datastore_client().post(URL, {**body, **change}, format="json")
    assert field in assert_json_error(response, 400)["detail"]


def test_using_a_token_records_when_it_was_last_used(
    world: World, datasets: dict[str, Dataset]
) -> None:
    from metaserver.accounts.models import ApiToken

    ApiToken.objects.update(last_used=None)
    ask(world, "member", "private")
    assert ApiToken.objects.get(user=world.users["member"]).last_used is not None
