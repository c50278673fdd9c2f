"""/api/users/: admins manage their organizations' users, everyone else looks."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from metaserver.accounts.actions import (
    do_add_team_member,
    do_create_team,
    do_create_user,
    do_set_role,
)
from metaserver.accounts.models import Membership, Role, Team, TeamMembership, User

from .world import PASSWORD, World, assert_json_error

ROUTES = [
    ("get", "/api/users/"),
    ("post", "/api/users/"),
    ("get", "/api/users/member/"),
    ("patch", "/api/users/member/"),
    ("delete", "/api/users/member/?organization=lab"),
]
LAB_USERS = [
    "admin",
    "dataset_manager",
    "member",
    "member_without_team",
    "team_manager",
]


def keys_in(value: Any) -> set[str]:
    """Every key of every object in a JSON value, however deep."""
    if isinstance(value, dict):
        return set(value).union(*(keys_in(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(keys_in(v) for v in value))
    return set()


def assert_no_password(response: Any, *users: User) -> None:
    assert not [key for key in keys_in(response.json()) if "password" in key]
    for user in users:
        user.refresh_from_db()
        assert user.password not in response.content.decode()


def new_user(**fields: Any) -> dict[str, Any]:
    body = {"username": "newbie", "organization": "lab", "role": "member"}
    return body | fields


def usernames(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [user["username"] for user in response.json()["results"]]


def team_names(user: User, organization: str = "lab") -> dict[str, bool]:
    """The user's teams there, each with whether the user manages it."""
    return dict(
        TeamMembership.objects.filter(
            user=user, team__organization__name=organization
        ).values_list("team__name", "is_manager")
    )


def group_names(user: User) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


@pytest.fixture
def beta(world: World) -> Team:
    return do_create_team(world.lab, "beta")


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_anonymous_callers_are_asked_to_log_in(
    world: World, method: str, url: str
) -> None:
    response = getattr(world.client("anonymous"), method)(url, {})
    assert_json_error(response, 401)


# Reading


@pytest.mark.parametrize("persona", ["admin", "dataset_manager"])
def test_admins_and_dataset_managers_list_the_users_of_their_organization(
    world: World, persona: str
) -> None:
    response = world.client(persona).get("/api/users/")
    assert usernames(response) == LAB_USERS
    member = next(u for u in response.json()["results"] if u["username"] == "member")
    assert member["organizations"] == [
        {
            "name": "lab",
            "role": "member",
            "teams": [{"id": world.alpha.pk, "name": "alpha"}],
            "managed_teams": [],
        }
    ]
    assert member["is_active"] is True
    assert_no_password(response, *world.users.values())


@pytest.mark.parametrize("persona", ["member", "member_without_team", "team_manager"])
def test_members_see_only_themselves(world: World, persona: str) -> None:
    client = world.client(persona)
    assert usernames(client.get("/api/users/")) == [persona]
    assert client.get(f"/api/users/{persona}/").status_code == 200
    other = "admin"
    assert_json_error(client.get(f"/api/users/{other}/"), 404)


def test_outsider_sees_the_users_of_their_organization_only(world: World) -> None:
    client = world.client("outsider")
    assert usernames(client.get("/api/users/")) == ["outsider", "superuser"]
    assert usernames(client.get("/api/users/?organization=lab")) == []
    for method in ("get", "patch", "delete"):
        response = getattr(client, method)(
            "/api/users/member/?organization=lab", {"email": "x@example.org"}
        )
        assert_json_error(response, 404)
    assert User.objects.get(username="member").email == ""
    assert Membership.objects.filter(user__username="member").exists()


def test_missing_user_is_404_like_a_hidden_one(world: World) -> None:
    body = assert_json_error(world.client("admin").get("/api/users/ghost/"), 404)
    assert "ghost" in body["detail"]


def test_admin_sees_only_the_memberships_in_their_own_organizations(
    world: World,
) -> None:
    do_set_role(world.users["outsider"], world.lab, Role.MEMBER)
    body = world.client("admin").get("/api/users/outsider/").json()
    assert [o["name"] for o in body["organizations"]] == ["lab"]
    own = world.client("outsider").get("/api/users/outsider/").json()
    assert [o["name"] for o in own["organizations"]] == ["lab", "other"]


def test_superuser_filters_users_by_organization(world: World) -> None:
    client = world.client("superuser")
    assert usernames(client.get("/api/users/?organization=lab")) == LAB_USERS
    everyone = usernames(client.get("/api/users/"))
    assert everyone == sorted([*LAB_USERS, "outsider", "superuser"])


def test_bad_organization_filter_is_400(world: World) -> None:
    response = world.client("admin").get("/api/users/", {"organization": "a/b"})
    assert "organization" in assert_json_error(response, 400)["detail"]


def test_user_list_takes_the_same_queries_for_5_and_50_users(
    world: World, beta: Team
) -> None:
    client = world.client("admin")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/users/?page_size=1000").status_code == 200
        return len(captured)

    queries()  # the first request also records the token's last use
    # Token's user, page count, the page, its memberships, its team memberships.
    assert queries() == 5
    for index in range(46):
        user = do_create_user(f"u{index}", None, organization=world.lab, role="member")
        do_add_team_member(beta, user, is_manager=index % 2 == 0)
    assert User.objects.count() == len(world.users) + 46
    assert queries() == 5


# Creating


def test_admin_creates_a_user_with_a_role_and_teams(world: World, beta: Team) -> None:
    response = world.client("admin").post(
        "/api/users/",
        new_user(
            password="a long and fine passphrase",
            email="newbie@example.org",
            first_name="New",
            role="dataset_manager",
            teams=["alpha"],
            managed_teams=[beta.pk],
        ),
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["username"] == "newbie"
    assert body["first_name"] == "New"
    assert body["organizations"] == [
        {
            "name": "lab",
            "role": "dataset_manager",
            "teams": [
                {"id": world.alpha.pk, "name": "alpha"},
                {"id": beta.pk, "name": "beta"},
            ],
            "managed_teams": [{"id": beta.pk, "name": "beta"}],
        }
    ]
    user = User.objects.get(username="newbie")
    assert_no_password(response, user)
    assert team_names(user) == {"alpha": False, "beta": True}
    assert group_names(user) == {world.alpha.group.name, beta.group.name}
    login = APIClient().post(
        "/api/auth/token/",
        {"username": "newbie", "password": "a long and fine passphrase"},
    )
    assert login.status_code == 200


def test_invited_user_has_an_email_and_no_usable_password(world: World) -> None:
    response = world.client("admin").post(
        "/api/users/", new_user(email="invitee@example.org")
    )
    assert response.status_code == 201, response.content
    user = User.objects.get(username="newbie")
    assert user.email == "invitee@example.org"
    assert not user.has_usable_password()
    assert_no_password(response, user)


def test_superuser_creates_users_in_any_organization(world: World) -> None:
    response = world.client("superuser").post("/api/users/", new_user())
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("persona", ["dataset_manager", "team_manager", "member"])
def test_only_admins_create_users(world: World, persona: str) -> None:
    response = world.client(persona).post("/api/users/", new_user())
    assert "admins of lab" in assert_json_error(response, 403)["detail"]
    assert not User.objects.filter(username="newbie").exists()


def test_outsider_cannot_create_users_in_a_foreign_organization(world: World) -> None:
    response = world.client("outsider").post("/api/users/", new_user())
    assert_json_error(response, 404)
    assert not User.objects.filter(username="newbie").exists()


@pytest.mark.parametrize(
    ("fields", "field", "text"),
    [
        ({"role": "king"}, "role", "unknown role"),
        ({"teams": ["ghost"]}, "teams", "ghost"),
        ({"teams": [999999]}, "teams", "999999"),
        ({"managed_teams": ["foreign"]}, "managed_teams", "foreign"),
        ({"teams": [True]}, "teams", "team id"),
        ({"teams": "alpha"}, "teams", ""),
        ({"username": "a/b"}, "username", ""),
        ({"username": "a b"}, "username", ""),
        ({"username": ""}, "username", ""),
        ({"username": "x" * 151}, "username", ""),
        ({"username": 7}, "username", ""),
        ({"password": "123"}, "password", ""),
        ({"password": "password"}, "password", "common"),
        ({"password": "x" * 5000}, "password", ""),
        ({"email": "not an email"}, "email", ""),
        ({"email": "a@" + "b" * 300 + ".org"}, "email", ""),
        ({"first_name": "x" * 151}, "first_name", ""),
        ({"organization": "../lab"}, "organization", ""),
        ({"is_superuser": True}, "is_superuser", "unknown field"),
        ({"x" * 1000: 1}, "x" * 100, "unknown field"),
    ],
)
def test_bad_new_users_are_400_naming_the_problem(
    world: World, fields: dict[str, Any], field: str, text: str
) -> None:
    do_create_team(world.other, "foreign")
    response = world.client("admin").post("/api/users/", new_user(**fields))
    detail = assert_json_error(response, 400)["detail"]
    assert field in detail, detail
    assert text in str(detail[field])
    assert User.objects.count() == len(world.users)


@pytest.mark.parametrize("body", [["newbie"], "newbie", None])
def test_user_body_must_be_a_json_object(world: World, body: Any) -> None:
    response = world.client("admin").post("/api/users/", body)
    assert_json_error(response, 400)


@pytest.mark.parametrize("username", ["member", "Member", "OUTSIDER"])
def test_taken_usernames_are_a_conflict_in_any_letter_case(
    world: World, username: str
) -> None:
    response = world.client("admin").post("/api/users/", new_user(username=username))
    assert "already exists" in assert_json_error(response, 409)["detail"]
    assert User.objects.count() == len(world.users)


# Changing


def test_admin_changes_role_teams_and_managed_teams(world: World, beta: Team) -> None:
    member = world.users["member"]
    response = world.client("admin").patch(
        "/api/users/member/",
        {
            "organization": "lab",
            "role": "dataset_manager",
            "teams": [beta.pk],
            "managed_teams": ["beta"],
        },
    )
    assert response.status_code == 200, response.content
    assert response.json()["organizations"][0]["role"] == "dataset_manager"
    assert response.json()["organizations"][0]["managed_teams"] == [
        {"id": beta.pk, "name": "beta"}
    ]
    assert team_names(member) == {"beta": True}
    assert group_names(member) == {beta.group.name}
    assert_no_password(response, member)


def test_managed_teams_alone_adds_teams_and_keeps_the_others(
    world: World, beta: Team
) -> None:
    member = world.users["member"]
    response = world.client("admin").patch(
        "/api/users/member/", {"organization": "lab", "managed_teams": ["beta"]}
    )
    assert response.status_code == 200, response.content
    assert team_names(member) == {"alpha": False, "beta": True}
    assert group_names(member) == {world.alpha.group.name, beta.group.name}


def test_teams_alone_keeps_manager_flags_of_teams_that_stay(
    world: World, beta: Team
) -> None:
    member = world.users["member"]
    do_add_team_member(world.alpha, member, is_manager=True)
    response = world.client("admin").patch(
        "/api/users/member/", {"organization": "lab", "teams": ["alpha", "beta"]}
    )
    assert response.status_code == 200, response.content
    assert team_names(member) == {"alpha": True, "beta": False}


def test_empty_team_list_takes_the_user_out_of_every_team(world: World) -> None:
    member = world.users["member"]
    response = world.client("admin").patch(
        "/api/users/member/", {"organization": "lab", "teams": []}
    )
    assert response.status_code == 200, response.content
    assert team_names(member) == {}
    assert group_names(member) == set()


@pytest.mark.parametrize("persona", ["member", "admin"])
def test_users_change_their_own_email_and_names(world: World, persona: str) -> None:
    response = world.client(persona).patch(
        f"/api/users/{persona}/",
        {"email": "me@example.org", "first_name": "Ada", "last_name": "L"},
    )
    assert response.status_code == 200, response.content
    user = User.objects.get(username=persona)
    assert (user.email, user.first_name, user.last_name) == (
        "me@example.org",
        "Ada",
        "L",
    )


def test_member_cannot_change_their_own_role(world: World) -> None:
    response = world.client("member").patch(
        "/api/users/member/", {"organization": "lab", "role": "admin"}
    )
    assert_json_error(response, 403)
    assert Membership.objects.get(user=world.users["member"]).role == "member"


def test_dataset_manager_cannot_change_roles_or_emails(world: World) -> None:
    client = world.client("dataset_manager")
    response = client.patch(
        "/api/users/member/", {"organization": "lab", "role": "admin"}
    )
    assert_json_error(response, 403)
    response = client.patch("/api/users/member/", {"email": "x@example.org"})
    assert_json_error(response, 403)
    assert User.objects.get(username="member").email == ""


def test_admin_changes_the_email_of_a_user_only_in_their_organizations(
    world: World,
) -> None:
    client = world.client("admin")
    response = client.patch("/api/users/member/", {"email": "m@example.org"})
    assert response.status_code == 200
    do_set_role(world.users["member"], world.other, Role.MEMBER)
    response = client.patch("/api/users/member/", {"email": "taken@example.org"})
    assert "all of member's organizations" in assert_json_error(response, 403)["detail"]
    assert User.objects.get(username="member").email == "m@example.org"


def test_deactivated_user_can_no_longer_use_their_token(world: World) -> None:
    response = world.client("admin").patch("/api/users/member/", {"is_active": False})
    assert response.status_code == 200, response.content
    assert response.json()["is_active"] is False
    assert_json_error(world.client("member").get("/api/user/"), 401)
    response = world.client("admin").patch("/api/users/member/", {"is_active": True})
    assert world.client("member").get("/api/user/").status_code == 200


def test_nobody_deactivates_themselves(world: World) -> None:
    response = world.client("admin").patch("/api/users/admin/", {"is_active": False})
    assert "yourself" in assert_json_error(response, 403)["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "admin"}, "organization"),
        ({"teams": ["alpha"]}, "organization"),
        ({"organization": "lab", "role": "king"}, "role"),
        ({"organization": "lab", "teams": ["foreign"]}, "teams"),
        ({"organization": "lab", "managed_teams": [12345678]}, "managed_teams"),
        ({"is_active": "no"}, "is_active"),
        ({"email": "nope"}, "email"),
        ({"username": "renamed"}, "username"),
        ({"password": PASSWORD}, "password"),
        ({"is_superuser": True}, "is_superuser"),
    ],
)
def test_bad_user_changes_are_400_naming_the_field(
    world: World, body: dict[str, Any], field: str
) -> None:
    do_create_team(world.other, "foreign")
    response = world.client("admin").patch("/api/users/member/", body)
    assert field in assert_json_error(response, 400)["detail"]
    member = User.objects.get(username="member")
    assert member.username == "member"
    assert member.is_active
    assert team_names(member) == {"alpha": False}


def test_user_outside_the_organization_cannot_get_a_role_from_an_admin(
    world: World,
) -> None:
    do_set_role(world.users["admin"], world.other, Role.ADMIN)
    response = world.client("admin").patch(
        "/api/users/member/", {"organization": "other", "role": "member"}
    )
    assert "not a member" in str(assert_json_error(response, 400)["detail"])
    assert not Membership.objects.filter(
        user=world.users["member"], organization=world.other
    ).exists()


def test_superuser_adds_an_existing_account_to_an_organization(world: World) -> None:
    response = world.client("superuser").patch(
        "/api/users/member/", {"organization": "other", "role": "member"}
    )
    assert response.status_code == 200, response.content
    names = [o["name"] for o in response.json()["organizations"]]
    assert names == ["lab", "other"]


# The last admin


def test_the_last_admin_cannot_step_down(world: World) -> None:
    response = world.client("admin").patch(
        "/api/users/admin/", {"organization": "lab", "role": "member"}
    )
    assert "last admin of lab" in assert_json_error(response, 409)["detail"]
    assert Membership.objects.get(user=world.users["admin"]).role == "admin"


def test_an_admin_steps_down_once_there_is_another(world: World) -> None:
    client = world.client("admin")
    response = client.patch(
        "/api/users/dataset_manager/", {"organization": "lab", "role": "admin"}
    )
    assert response.status_code == 200
    response = client.patch(
        "/api/users/admin/", {"organization": "lab", "role": "member"}
    )
    assert response.status_code == 200, response.content
    assert Membership.objects.get(user=world.users["admin"]).role == "member"


def test_the_last_admin_cannot_be_deactivated_or_removed(world: World) -> None:
    client = world.client("superuser")
    response = client.patch("/api/users/admin/", {"is_active": False})
    assert_json_error(response, 409)
    response = client.delete("/api/users/admin/?organization=lab")
    assert_json_error(response, 409)
    assert User.objects.get(username="admin").is_active
    assert Membership.objects.filter(user__username="admin").exists()


def test_an_inactive_admin_does_not_count_as_another_admin(world: World) -> None:
    client = world.client("superuser")
    client.patch("/api/users/member/", {"organization": "lab", "role": "admin"})
    client.patch("/api/users/member/", {"is_active": False})
    response = client.delete("/api/users/admin/?organization=lab")
    assert_json_error(response, 409)


# Removing


def test_admin_removes_a_user_from_the_organization_and_its_teams(
    world: World,
) -> None:
    member = world.users["member"]
    response = world.client("admin").delete("/api/users/member/?organization=lab")
    assert response.status_code == 204, response.content
    assert not Membership.objects.filter(user=member).exists()
    assert team_names(member) == {}
    assert group_names(member) == set()
    assert User.objects.filter(username="member").exists()
    assert_json_error(world.client("admin").get("/api/users/member/"), 404)


def test_removal_keeps_the_memberships_in_other_organizations(world: World) -> None:
    member = world.users["member"]
    do_set_role(member, world.other, Role.MEMBER)
    foreign = do_create_team(world.other, "foreign")
    do_add_team_member(foreign, member)
    response = world.client("admin").delete("/api/users/member/?organization=lab")
    assert response.status_code == 204
    assert team_names(member, "other") == {"foreign": False}
    assert group_names(member) == {foreign.group.name}
    assert Group.objects.filter(pk=world.alpha.group_id).exists()


def test_removal_needs_an_organization(world: World) -> None:
    response = world.client("admin").delete("/api/users/member/")
    assert "organization" in assert_json_error(response, 400)["detail"]


@pytest.mark.parametrize("persona", ["dataset_manager", "member"])
def test_only_admins_remove_users(world: World, persona: str) -> None:
    response = world.client(persona).delete("/api/users/member/?organization=lab")
    assert response.status_code in (403, 404)
    assert_json_error(response, response.status_code)
    assert Membership.objects.filter(user__username="member").exists()


def test_removing_a_user_from_an_organization_they_are_not_in_is_404(
    world: World,
) -> None:
    do_set_role(world.users["admin"], world.other, Role.ADMIN)
    response = world.client("admin").delete("/api/users/member/?organization=other")
    assert "not a member" in assert_json_error(response, 404)["detail"]
