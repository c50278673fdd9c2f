"""/api/teams/: members see their organizations' teams, admins manage them,
team managers add and remove members."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from metaserver.accounts.actions import (
    do_add_team_member,
    do_create_team,
    do_create_user,
)
from metaserver.accounts.models import Team, TeamMembership, User

from .world import World, assert_json_error


def url(team: Team | int) -> str:
    return f"/api/teams/{team if isinstance(team, int) else team.pk}/"


def members(team: Team) -> dict[str, bool]:
    """Usernames of the team's members, each with whether they manage it."""
    return dict(
        TeamMembership.objects.filter(team=team).values_list(
            "user__username", "is_manager"
        )
    )


def group_members(team: Team) -> set[str]:
    group = Group.objects.get(pk=team.group_id)
    return set(group.user_set.values_list("username", flat=True))


def assert_group_matches_team(team: Team) -> None:
    assert group_members(team) == set(members(team))
    team.refresh_from_db()
    assert team.group.name == Team.group_name_for(team.organization_id, team.name)


ALPHA_MEMBERS = [
    {"username": "member", "is_manager": False},
    {"username": "team_manager", "is_manager": True},
]


@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_callers_are_asked_to_log_in_for_the_list(
    world: World, method: str
) -> None:
    response = getattr(world.client("anonymous"), method)("/api/teams/", {})
    assert_json_error(response, 401)


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_anonymous_callers_are_asked_to_log_in_for_a_team(
    world: World, method: str
) -> None:
    response = getattr(world.client("anonymous"), method)(url(world.alpha), {})
    assert_json_error(response, 401)
    assert Team.objects.filter(pk=world.alpha.pk).exists()


# Reading


@pytest.mark.parametrize(
    "persona", ["member", "member_without_team", "dataset_manager", "admin"]
)
def test_members_of_an_organization_see_its_teams_and_their_members(
    world: World, persona: str
) -> None:
    body = world.client(persona).get("/api/teams/").json()
    assert body["count"] == 1
    (alpha,) = body["results"]
    assert alpha["id"] == world.alpha.pk
    assert alpha["name"] == "alpha"
    assert alpha["organization"] == "lab"
    assert alpha["members"] == ALPHA_MEMBERS
    detail = world.client(persona).get(url(world.alpha)).json()
    assert detail == alpha


def test_outsider_sees_no_team_of_a_foreign_organization(world: World) -> None:
    do_create_team(world.other, "theirs")
    client = world.client("outsider")
    body = client.get("/api/teams/").json()
    assert [t["name"] for t in body["results"]] == ["theirs"]
    assert client.get("/api/teams/?organization=lab").json()["results"] == []
    for method in ("get", "patch", "delete"):
        response = getattr(client, method)(url(world.alpha), {"name": "taken"})
        assert_json_error(response, 404)
    assert Team.objects.get(pk=world.alpha.pk).name == "alpha"


def test_missing_team_is_404_like_a_hidden_one(world: World) -> None:
    body = assert_json_error(world.client("admin").get(url(987654)), 404)
    assert "987654" in body["detail"]


def test_team_ids_are_numbers(world: World) -> None:
    assert_json_error(world.client("admin").get("/api/teams/alpha/"), 404)


def test_superuser_filters_teams_by_organization(world: World) -> None:
    do_create_team(world.other, "theirs")
    client = world.client("superuser")
    assert [t["name"] for t in client.get("/api/teams/").json()["results"]] == [
        "alpha",
        "theirs",
    ]
    lab = client.get("/api/teams/", {"organization": "lab"}).json()["results"]
    assert [t["name"] for t in lab] == ["alpha"]
    response = client.get("/api/teams/", {"organization": "../lab"})
    assert "organization" in assert_json_error(response, 400)["detail"]


def test_team_list_takes_the_same_queries_for_few_and_many_teams(
    world: World,
) -> None:
    client = world.client("member")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/teams/?page_size=1000").status_code == 200
        return len(captured)

    queries()  # the first request also records the token's last use
    # Token's user, page count, the page with organizations, all their members.
    assert queries() == 4
    for index in range(20):
        team = do_create_team(world.lab, f"team{index}")
        for user_index in range(3):
            user = do_create_user(
                f"u{index}-{user_index}", None, organization=world.lab, role="member"
            )
            do_add_team_member(team, user, is_manager=user_index == 0)
    assert queries() == 4


# Creating


@pytest.mark.parametrize("persona", ["admin", "superuser"])
def test_admin_creates_a_team_with_its_group(world: World, persona: str) -> None:
    response = world.client(persona).post(
        "/api/teams/", {"name": " Imaging core ", "organization": "lab"}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["organization"], body["members"]) == (
        "Imaging core",
        "lab",
        [],
    )
    team = Team.objects.get(pk=body["id"])
    assert team.group.name == Team.group_name_for(world.lab.pk, "Imaging core")


@pytest.mark.parametrize("persona", ["dataset_manager", "team_manager", "member"])
def test_only_admins_create_teams(world: World, persona: str) -> None:
    response = world.client(persona).post(
        "/api/teams/", {"name": "mine", "organization": "lab"}
    )
    assert "admins of lab" in assert_json_error(response, 403)["detail"]
    assert not Team.objects.filter(name="mine").exists()


def test_outsider_cannot_create_teams_in_a_foreign_organization(world: World) -> None:
    response = world.client("outsider").post(
        "/api/teams/", {"name": "mine", "organization": "lab"}
    )
    assert_json_error(response, 404)
    assert not Team.objects.filter(name="mine").exists()


def test_taken_team_name_is_a_conflict(world: World) -> None:
    response = world.client("admin").post(
        "/api/teams/", {"name": "alpha", "organization": "lab"}
    )
    assert "already exists" in assert_json_error(response, 409)["detail"]
    assert Team.objects.count() == 1


def test_the_same_team_name_is_fine_in_another_organization(world: World) -> None:
    response = world.client("outsider").post(
        "/api/teams/", {"name": "alpha", "organization": "other"}
    )
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "a/b", "organization": "lab"}, "name"),
        ({"name": "tab\there", "organization": "lab"}, "name"),
        ({"name": "   ", "organization": "lab"}, "name"),
        ({"name": "x" * 101, "organization": "lab"}, "name"),
        ({"name": 5, "organization": "lab"}, "name"),
        ({"organization": "lab"}, "name"),
        ({"name": "ok"}, "organization"),
        ({"name": "ok", "organization": "a/b"}, "organization"),
        ({"name": "ok", "organization": "lab", "members": []}, "members"),
    ],
)
def test_bad_new_teams_are_400_naming_the_field(
    world: World, body: dict[str, Any], field: str
) -> None:
    response = world.client("admin").post("/api/teams/", body)
    assert field in assert_json_error(response, 400)["detail"]
    assert Team.objects.count() == 1


@pytest.mark.parametrize("body", [["alpha"], "alpha", 1])
def test_team_body_must_be_a_json_object(world: World, body: Any) -> None:
    assert_json_error(world.client("admin").post("/api/teams/", body), 400)
    assert_json_error(world.client("admin").patch(url(world.alpha), body), 400)


# Renaming and deleting


def test_admin_renames_a_team_and_its_group(world: World) -> None:
    response = world.client("admin").patch(url(world.alpha), {"name": "alpha-2"})
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "alpha-2"
    assert_group_matches_team(world.alpha)
    assert members(world.alpha) == {"member": False, "team_manager": True}


def test_renaming_to_a_taken_name_is_a_conflict(world: World) -> None:
    do_create_team(world.lab, "beta")
    response = world.client("admin").patch(url(world.alpha), {"name": "beta"})
    assert_json_error(response, 409)
    assert_group_matches_team(world.alpha)


@pytest.mark.parametrize("persona", ["team_manager", "member", "dataset_manager"])
def test_only_admins_rename_or_delete_teams(world: World, persona: str) -> None:
    client = world.client(persona)
    assert_json_error(client.patch(url(world.alpha), {"name": "mine"}), 403)
    assert_json_error(client.delete(url(world.alpha)), 403)
    assert Team.objects.get(pk=world.alpha.pk).name == "alpha"


def test_admin_deletes_a_team_with_its_group(world: World) -> None:
    group_id = world.alpha.group_id
    response = world.client("admin").delete(url(world.alpha))
    assert response.status_code == 204
    assert not Team.objects.filter(pk=world.alpha.pk).exists()
    assert not Group.objects.filter(pk=group_id).exists()
    assert not world.users["member"].groups.exists()
    assert_json_error(world.client("admin").get(url(world.alpha)), 404)


def test_deleting_a_team_that_datasets_are_shared_with_unshares_them(
    world: World,
) -> None:
    dataset = world.dataset("shared", teams=(world.alpha,))
    response = world.client("admin").delete(url(world.alpha))
    assert response.status_code == 204, response.content
    assert not dataset.allowed_teams.exists()


# Members


def test_admin_replaces_the_members_and_the_group_follows(world: World) -> None:
    response = world.client("admin").patch(
        url(world.alpha),
        {
            "members": [
                {"username": "member_without_team", "is_manager": True},
                {"username": "member"},
            ]
        },
    )
    assert response.status_code == 200, response.content
    assert response.json()["members"] == [
        {"username": "member", "is_manager": False},
        {"username": "member_without_team", "is_manager": True},
    ]
    assert members(world.alpha) == {"member": False, "member_without_team": True}
    assert_group_matches_team(world.alpha)


def test_admin_renames_and_sets_members_in_one_request(world: World) -> None:
    response = world.client("admin").patch(
        url(world.alpha), {"name": "renamed", "members": []}
    )
    assert response.status_code == 200, response.content
    assert members(world.alpha) == {}
    assert_group_matches_team(world.alpha)


def test_a_failed_member_change_leaves_the_name_alone(world: World) -> None:
    response = world.client("admin").patch(
        url(world.alpha), {"name": "renamed", "members": [{"username": "outsider"}]}
    )
    assert_json_error(response, 400)
    assert Team.objects.get(pk=world.alpha.pk).name == "alpha"


def test_team_manager_adds_and_removes_plain_members(world: World) -> None:
    response = world.client("team_manager").patch(
        url(world.alpha),
        {
            "members": [
                {"username": "team_manager", "is_manager": True},
                {"username": "member_without_team"},
            ]
        },
    )
    assert response.status_code == 200, response.content
    assert members(world.alpha) == {"team_manager": True, "member_without_team": False}
    assert_group_matches_team(world.alpha)


@pytest.mark.parametrize(
    "listed",
    [
        [
            {"username": "team_manager", "is_manager": True},
            {"username": "member", "is_manager": True},
        ],
        [{"username": "member"}],
        [{"username": "team_manager", "is_manager": False}, {"username": "member"}],
    ],
    ids=["promote", "remove-manager", "step-down"],
)
def test_team_manager_cannot_change_managers(
    world: World, listed: list[dict[str, Any]]
) -> None:
    response = world.client("team_manager").patch(url(world.alpha), {"members": listed})
    assert "team managers" in assert_json_error(response, 403)["detail"]
    assert members(world.alpha) == {"member": False, "team_manager": True}


def test_team_manager_of_one_team_cannot_edit_another(world: World) -> None:
    beta = do_create_team(world.lab, "beta")
    response = world.client("team_manager").patch(
        url(beta), {"members": [{"username": "member"}]}
    )
    assert_json_error(response, 403)
    assert members(beta) == {}


@pytest.mark.parametrize("persona", ["member", "dataset_manager"])
def test_plain_members_cannot_edit_members(world: World, persona: str) -> None:
    response = world.client(persona).patch(url(world.alpha), {"members": []})
    assert_json_error(response, 403)
    assert members(world.alpha) == {"member": False, "team_manager": True}


@pytest.mark.parametrize(
    ("listed", "text"),
    [
        ([{"username": "outsider"}, {"username": "ghost"}], "outsider, ghost"),
        ([{"username": "member"}, {"username": "member"}], "twice: member"),
        ([{"username": "member", "is_manager": "yes"}], "is_manager"),
        ([{"username": "member", "role": "admin"}], "role"),
        (["member"], "dictionary"),
        ({"username": "member"}, "list"),
        ([{"username": "x" * 151}], "username"),
    ],
)
def test_bad_member_lists_are_400_naming_the_problem(
    world: World, listed: Any, text: str
) -> None:
    response = world.client("admin").patch(url(world.alpha), {"members": listed})
    detail = assert_json_error(response, 400)["detail"]
    assert text in str(detail), detail
    assert members(world.alpha) == {"member": False, "team_manager": True}
    assert_group_matches_team(world.alpha)


def test_members_of_the_organization_only_even_for_superusers(world: World) -> None:
    response = world.client("superuser").patch(
        url(world.alpha), {"members": [{"username": "superuser"}]}
    )
    assert "not members of lab: superuser" in str(
        assert_json_error(response, 400)["detail"]
    )


def test_removing_someone_from_the_organization_removes_them_from_its_teams(
    world: World,
) -> None:
    world.client("admin").delete("/api/users/team_manager/?organization=lab")
    assert members(world.alpha) == {"member": False}
    assert_group_matches_team(world.alpha)
    assert User.objects.filter(username="team_manager").exists()
