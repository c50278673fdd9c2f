"""/api/organizations/: members read, admins rename, superusers create."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from metaserver.accounts.actions import do_create_organization, do_set_role
from metaserver.accounts.models import Organization

from .world import World, assert_json_error

ROUTES = [
    ("get", "/api/organizations/"),
    ("post", "/api/organizations/"),
    ("get", "/api/organizations/lab/"),
    ("patch", "/api/organizations/lab/"),
]


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_anonymous_callers_are_asked_to_log_in(
    world: World, method: str, url: str
) -> None:
    response = getattr(world.client("anonymous"), method)(url, {})
    assert_json_error(response, 401)


def test_member_lists_their_organizations_with_their_role(world: World) -> None:
    body = world.client("member").get("/api/organizations/").json()
    assert body["count"] == 1
    assert [(o["name"], o["display_name"], o["role"]) for o in body["results"]] == [
        ("lab", "The Lab", "member")
    ]


def test_outsider_lists_only_their_own_organization(world: World) -> None:
    body = world.client("outsider").get("/api/organizations/").json()
    assert [(o["name"], o["role"]) for o in body["results"]] == [("other", "admin")]


def test_superuser_lists_every_organization_with_no_role_where_not_a_member(
    world: World,
) -> None:
    body = world.client("superuser").get("/api/organizations/").json()
    assert [(o["name"], o["role"]) for o in body["results"]] == [
        ("lab", None),
        ("other", "member"),
    ]


def test_user_in_two_organizations_sees_both_with_each_role(world: World) -> None:
    do_set_role(world.users["member"], world.other, "dataset_manager")
    body = world.client("member").get("/api/organizations/").json()
    assert [(o["name"], o["role"]) for o in body["results"]] == [
        ("lab", "member"),
        ("other", "dataset_manager"),
    ]


def test_member_reads_their_organization(world: World) -> None:
    response = world.client("member").get("/api/organizations/lab/")
    assert response.status_code == 200
    assert response.json()["role"] == "member"


@pytest.mark.parametrize("method", ["get", "patch"])
def test_outsider_cannot_tell_a_foreign_organization_from_a_missing_one(
    world: World, method: str
) -> None:
    client = world.client("outsider")
    foreign = getattr(client, method)("/api/organizations/lab/", {"display_name": "x"})
    missing = getattr(client, method)("/api/organizations/nope/", {"display_name": "x"})
    assert_json_error(foreign, 404)
    assert_json_error(missing, 404)
    assert Organization.objects.get(name="lab").display_name == "The Lab"


@pytest.mark.parametrize("persona", ["member", "dataset_manager"])
def test_only_admins_rename_their_organization(world: World, persona: str) -> None:
    response = world.client(persona).patch(
        "/api/organizations/lab/", {"display_name": "Mine"}
    )
    assert "admins of lab" in assert_json_error(response, 403)["detail"]
    assert Organization.objects.get(name="lab").display_name == "The Lab"


@pytest.mark.parametrize("persona", ["admin", "superuser"])
def test_admin_and_superuser_change_the_display_name(
    world: World, persona: str
) -> None:
    response = world.client(persona).patch(
        "/api/organizations/lab", {"display_name": "  Neuro Lab "}
    )
    assert response.status_code == 200, response.content
    assert response.json()["display_name"] == "Neuro Lab"
    assert Organization.objects.get(name="lab").display_name == "Neuro Lab"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"display_name": "x" * 256}, "display_name"),
        ({"display_name": 5}, "display_name"),
        ({}, "display_name"),
        ({"display_name": "ok", "name": "renamed"}, "name"),
    ],
)
def test_bad_organization_changes_are_400_naming_the_field(
    world: World, body: dict[str, Any], field: str
) -> None:
    response = world.client("admin").patch("/api/organizations/lab/", body)
    assert field in assert_json_error(response, 400)["detail"]
    assert Organization.objects.get(name="lab").name == "lab"


@pytest.mark.parametrize("persona", ["admin", "outsider", "member"])
def test_only_superusers_create_organizations(world: World, persona: str) -> None:
    response = world.client(persona).post("/api/organizations/", {"name": "new"})
    assert "superusers" in assert_json_error(response, 403)["detail"]
    assert not Organization.objects.filter(name="new").exists()


def test_superuser_creates_an_organization(world: World) -> None:
    response = world.client("superuser").post(
        "/api/organizations/", {"name": "new-lab", "display_name": "New Lab"}
    )
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "new-lab"
    assert response.json()["display_name"] == "New Lab"
    assert response.json()["role"] is None
    assert Organization.objects.filter(name="new-lab").exists()


@pytest.mark.parametrize(
    "name", ["a/b", "../x", ".hidden", "-x", "a b", "", "x" * 129, 42, None]
)
def test_organization_names_must_be_technical_names(world: World, name: Any) -> None:
    response = world.client("superuser").post("/api/organizations/", {"name": name})
    assert "name" in assert_json_error(response, 400)["detail"]
    assert Organization.objects.count() == 2


def test_taken_organization_name_is_a_conflict(world: World) -> None:
    response = world.client("superuser").post("/api/organizations/", {"name": "lab"})
    assert "already exists" in assert_json_error(response, 409)["detail"]


@pytest.mark.parametrize("body", [[{"name": "x"}], "name", 5])
def test_organization_body_must_be_a_json_object(world: World, body: Any) -> None:
    response = world.client("superuser").post("/api/organizations/", body)
    assert_json_error(response, 400)
    assert Organization.objects.count() == 2


def test_organization_list_takes_the_same_queries_for_many_organizations(
    world: World,
) -> None:
    client = world.client("superuser")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/organizations/").status_code == 200
        return len(captured)

    queries()  # the first request also records the token's last use
    # The token's user, the count of the page, the page with the caller's roles.
    assert queries() == 3
    for index in range(30):
        do_create_organization(f"org{index}")
    assert queries() == 3


def test_schema_describes_the_organization_user_and_team_routes(db: None) -> None:
    paths = APIClient().get("/api/schema/", {"format": "json"}).json()["paths"]
    expected = {
        "/api/organizations/": {"get", "post"},
        "/api/organizations/{name}/": {"get", "patch"},
        "/api/users/": {"get", "post"},
        "/api/users/{username}/": {"get", "patch", "delete"},
        "/api/teams/": {"get", "post"},
        "/api/teams/{id}/": {"get", "patch", "delete"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) - {"parameters"} == methods, path
