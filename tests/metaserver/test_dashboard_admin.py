"""The dashboard's admin pages: teams, users, datastores; who opens and changes what."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from metaserver.accounts.actions import (
    do_add_team_member,
    do_create_team,
    do_create_user,
)
from metaserver.accounts.models import Membership, Role, Team, TeamMembership, User

from .world import PASSWORD, World


def client_for(world: World, persona: str) -> Client:
    client = Client()
    if persona != "anonymous":
        client.force_login(world.users[persona])
    return client


def text(response: Any) -> str:
    """The page's text with entities decoded (apostrophes come as &#x27;)."""
    return html.unescape(response.content.decode())


def team_members(team: Team) -> dict[str, bool]:
    return dict(
        TeamMembership.objects.filter(team=team).values_list(
            "user__username", "is_manager"
        )
    )


def group_members(team: Team) -> set[str]:
    return set(
        Group.objects.get(pk=team.group_id).user_set.values_list("username", flat=True)
    )


def role(world: World, username: str) -> str | None:
    return (
        Membership.objects.filter(user__username=username, organization=world.lab)
        .values_list("role", flat=True)
        .first()
    )


def pages(world: World) -> dict[str, str]:
    alpha = world.alpha.pk
    return {
        "teams": "/admin-pages/teams/",
        "team": f"/admin-pages/teams/{alpha}/",
        "users": "/admin-pages/users/",
        "user": "/admin-pages/users/member/",
        "new_user": "/admin-pages/new-user/",
        "datastores": "/admin-pages/datastores/",
    }


# Who opens what. Outsiders administrate `other`: lab's team and users are missing
# to them (404), their own organization's pages open.
EXPECTED = {
    "superuser": dict.fromkeys(
        ("teams", "team", "users", "user", "new_user", "datastores"), 200
    ),
    "admin": dict.fromkeys(
        ("teams", "team", "users", "user", "new_user", "datastores"), 200
    ),
    "dataset_manager": {
        "teams": 403,
        "team": 403,
        "users": 200,
        "user": 200,
        "new_user": 403,
        "datastores": 403,
    },
    "member": dict.fromkeys(
        ("teams", "team", "users", "user", "new_user", "datastores"), 403
    ),
    "member_without_team": dict.fromkeys(
        ("teams", "team", "users", "user", "new_user", "datastores"), 403
    ),
    "team_manager": dict.fromkeys(
        ("teams", "team", "users", "user", "new_user", "datastores"), 403
    ),
    "outsider": {
        "teams": 200,
        "team": 404,
        "users": 200,
        "user": 404,
        "new_user": 200,
        "datastores": 200,
    },
}


@pytest.mark.parametrize("persona", sorted(EXPECTED))
def test_every_admin_page_opens_only_for_whom_it_is_meant(
    world: World, persona: str
) -> None:
    client = client_for(world, persona)
    for page, url in pages(world).items():
        response = client.get(url)
        assert response.status_code == EXPECTED[persona][page], (page, response)
        assert response["Content-Type"].startswith("text/html")


def test_anonymous_visitors_are_sent_to_the_login(world: World) -> None:
    for url in [*pages(world).values(), "/admin-pages/"]:
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")


@pytest.mark.parametrize(
    ("persona", "landing"),
    [
        ("admin", "/admin-pages/teams/"),
        ("superuser", "/admin-pages/teams/"),
        ("dataset_manager", "/admin-pages/users/"),
        ("outsider", "/admin-pages/teams/"),
    ],
)
def test_the_admin_link_leads_to_the_first_page_one_may_open(
    world: World, persona: str, landing: str
) -> None:
    response = client_for(world, persona).get("/admin-pages/")
    assert response.status_code == 302
    assert response["Location"] == landing


@pytest.mark.parametrize(
    ("persona", "shown"),
    [
        ("admin", True),
        ("superuser", True),
        ("dataset_manager", True),
        ("member", False),
        ("team_manager", False),
    ],
)
def test_the_top_bar_has_jobs_for_everyone_and_admin_for_admins_and_managers(
    world: World, persona: str, shown: bool
) -> None:
    page = client_for(world, persona).get("/").content.decode()
    assert '<a href="/jobs/"' in page
    assert ('<a href="/admin-pages/"' in page) is shown
    if persona == "member":
        assert client_for(world, persona).get("/admin-pages/").status_code == 403


def test_the_admin_sidebar_offers_dataset_managers_only_the_users(
    world: World,
) -> None:
    page = client_for(world, "dataset_manager").get("/admin-pages/users/")
    content = page.content.decode()
    assert 'href="/admin-pages/users/"' in content
    assert 'href="/admin-pages/teams/"' not in content
    assert "New user" not in content
    admin = client_for(world, "admin").get("/admin-pages/datastores/").content.decode()
    for link in ("/admin-pages/teams/", "/admin-pages/users/"):
        assert f'href="{link}"' in admin


# Mutating views


def mutations(world: World) -> list[tuple[str, dict[str, str]]]:
    alpha = world.alpha.pk
    member = world.users["member"].pk
    return [
        ("/admin-pages/teams/", {"name": "sneaky"}),
        (f"/admin-pages/teams/{alpha}/rename/", {"name": "sneaky"}),
        (f"/admin-pages/teams/{alpha}/delete/", {"confirmed": "yes"}),
        (f"/admin-pages/teams/{alpha}/members/", {"username": "member_without_team"}),
        (f"/admin-pages/teams/{alpha}/members/{member}/", {"action": "manager"}),
        ("/admin-pages/new-user/", {"username": "sneaky", "role": "member"}),
        ("/admin-pages/users/member/", {"role": "admin", "is_active": "on"}),
        ("/admin-pages/users/member/remove/", {"confirmed": "yes"}),
    ]


def _state(world: World) -> tuple[Any, ...]:
    return (
        sorted(Team.objects.values_list("name", flat=True)),
        team_members(world.alpha),
        sorted(User.objects.values_list("username", "is_active")),
        sorted(Membership.objects.values_list("user__username", "role")),
    )


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("dataset_manager", 403),
        ("member", 403),
        ("team_manager", 403),
        ("member_without_team", 403),
        ("outsider", 404),
    ],
)
def test_only_admins_change_teams_and_users(
    world: World, persona: str, status: int
) -> None:
    before = _state(world)
    client = client_for(world, persona)
    for url, data in mutations(world):
        response = client.post(url, data)
        # The outsider administrates `other`: creating there is theirs to do.
        if persona == "outsider" and url in (
            "/admin-pages/teams/",
            "/admin-pages/new-user/",
        ):
            continue
        assert response.status_code == status, (url, response)
    if persona != "outsider":
        assert _state(world) == before


def test_anonymous_posts_change_nothing(world: World) -> None:
    before = _state(world)
    for url, data in mutations(world):
        assert Client().post(url, data).status_code == 302
    assert _state(world) == before


def test_changes_need_the_csrf_token(world: World) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users["admin"])
    before = _state(world)
    for url, data in mutations(world):
        assert client.post(url, data).status_code == 403, url
    assert _state(world) == before


def test_admin_pages_refuse_other_methods(world: World) -> None:
    client = client_for(world, "admin")
    assert client.delete("/admin-pages/teams/").status_code == 405
    assert client.get(f"/admin-pages/teams/{world.alpha.pk}/delete/").status_code == 405
    assert client.get("/admin-pages/users/member/remove/").status_code == 405


# Teams


def test_teams_list_shows_member_and_manager_counts(world: World) -> None:
    do_create_team(world.lab, "empty team")
    page = text(client_for(world, "admin").get("/admin-pages/teams/"))
    alpha = page.split(">alpha</a>")[1].split("</tr>")[0]
    assert re.findall(r'col-number">(\d+)<', alpha) == ["2", "1"]
    empty = page.split(">empty team</a>")[1].split("</tr>")[0]
    assert re.findall(r'col-number">(\d+)<', empty) == ["0", "0"]
    assert "2 teams" in page


def test_outsiders_see_only_their_organizations_teams(world: World) -> None:
    do_create_team(world.other, "theirs")
    page = text(client_for(world, "outsider").get("/admin-pages/teams/"))
    assert ">theirs</a>" in page
    assert ">alpha</a>" not in page


def test_an_admin_creates_a_team_and_lands_on_its_page(world: World) -> None:
    client = client_for(world, "admin")
    response = client.post("/admin-pages/teams/", {"name": "  beta "})
    beta = Team.objects.get(organization=world.lab, name="beta")
    assert response.status_code == 302
    assert response["Location"] == f"/admin-pages/teams/{beta.pk}/"
    page = text(client.get(response["Location"]))
    assert "Team beta created." in page
    assert Group.objects.filter(pk=beta.group_id).exists()


@pytest.mark.parametrize(
    ("name", "status", "message"),
    [
        ("", 400, "This field may not be blank."),
        ("a/b", 400, "team names cannot contain '/' or control characters"),
        ("x" * 101, 400, "Ensure this field has no more than 100 characters."),
        ("alpha", 409, "team 'alpha' already exists in lab"),
    ],
)
def test_bad_team_names_are_refused_with_the_apis_message(
    world: World, name: str, status: int, message: str
) -> None:
    response = client_for(world, "admin").post("/admin-pages/teams/", {"name": name})
    assert response.status_code == status
    page = text(response)
    assert f'<p class="field-error" id="name-error">{message}</p>' in page
    assert 'aria-invalid="true" aria-describedby="name-error"' in page
    assert Team.objects.filter(organization=world.lab).count() == 1


def test_the_team_page_lists_members_roles_and_who_may_be_added(
    world: World,
) -> None:
    page = text(client_for(world, "admin").get(f"/admin-pages/teams/{world.alpha.pk}/"))
    members = page.split('id="members-title"')[1].split('class="add-member"')[0]
    assert re.findall(r'id="member-(\w+)"', members) == ["member", "team_manager"]
    assert 'aria-checked="true" aria-label="team_manager manages alpha"' in members
    assert 'aria-checked="false" aria-label="member manages alpha"' in members
    candidates = page.split('id="add-username"')[1].split("</select>")[0]
    assert re.findall(r'<option value="(\w+)"', candidates) == [
        "admin",
        "dataset_manager",
        "member_without_team",
    ]
    assert "outsider" not in candidates


def test_an_admin_adds_a_member_as_manager(world: World) -> None:
    client = client_for(world, "admin")
    url = f"/admin-pages/teams/{world.alpha.pk}/members/"
    response = client.post(url, {"username": "dataset_manager", "is_manager": "yes"})
    assert response.status_code == 302
    assert team_members(world.alpha)["dataset_manager"] is True
    assert group_members(world.alpha) == set(team_members(world.alpha))
    assert "dataset_manager added to alpha as manager." in text(
        client.get(response["Location"])
    )


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("outsider", "not members of lab: outsider"),
        ("member", "listed twice: member"),
        ("", "Choose a member of the organization."),
    ],
)
def test_adding_someone_who_cannot_join_says_why(
    world: World, username: str, message: str
) -> None:
    before = team_members(world.alpha)
    response = client_for(world, "admin").post(
        f"/admin-pages/teams/{world.alpha.pk}/members/", {"username": username}
    )
    assert response.status_code == 400
    assert f'id="username-error">{message}</p>' in text(response)
    assert team_members(world.alpha) == before


def test_an_admin_makes_a_member_manager_and_back_and_removes_them(
    world: World,
) -> None:
    client = client_for(world, "admin")
    url = f"/admin-pages/teams/{world.alpha.pk}/members/{world.users['member'].pk}/"
    assert client.post(url, {"action": "manager"}).status_code == 302
    assert team_members(world.alpha)["member"] is True
    assert client.post(url, {"action": "member"}).status_code == 302
    assert team_members(world.alpha)["member"] is False
    assert client.post(url, {"action": "remove"}).status_code == 302
    assert "member" not in team_members(world.alpha)
    assert group_members(world.alpha) == {"team_manager"}
    # Gone from the team: nothing left to change.
    assert client.post(url, {"action": "manager"}).status_code == 404


def test_an_unknown_member_action_is_400(world: World) -> None:
    url = f"/admin-pages/teams/{world.alpha.pk}/members/{world.users['member'].pk}/"
    response = client_for(world, "admin").post(url, {"action": "promote"})
    assert response.status_code == 400
    assert "unknown action 'promote'" in text(response)


def test_an_admin_renames_a_team(world: World) -> None:
    client = client_for(world, "admin")
    url = f"/admin-pages/teams/{world.alpha.pk}/rename/"
    response = client.post(url, {"name": "gamma"})
    assert response.status_code == 302
    world.alpha.refresh_from_db()
    assert world.alpha.name == "gamma"
    assert Group.objects.get(pk=world.alpha.group_id).name.endswith(":gamma")


def test_renaming_to_a_taken_name_is_409_and_keeps_the_old_one(world: World) -> None:
    do_create_team(world.lab, "beta")
    response = client_for(world, "admin").post(
        f"/admin-pages/teams/{world.alpha.pk}/rename/", {"name": "beta"}
    )
    assert response.status_code == 409
    page = text(response)
    assert "team 'beta' already exists in lab" in page
    # The heading keeps the real name; the field keeps what was typed.
    assert "<h1>alpha</h1>" in page
    assert 'name="name" type="text" value="beta"' in page
    world.alpha.refresh_from_db()
    assert world.alpha.name == "alpha"


def test_deleting_a_team_asks_first_then_deletes_it_with_its_group(
    world: World,
) -> None:
    client = client_for(world, "admin")
    url = f"/admin-pages/teams/{world.alpha.pk}/delete/"
    asked = client.post(url)
    assert asked.status_code == 200
    assert "Delete team alpha?" in text(asked)
    assert 'name="confirmed" value="yes"' in text(asked)
    assert Team.objects.filter(pk=world.alpha.pk).exists()
    response = client.post(url, {"confirmed": "yes"})
    assert response.status_code == 302
    assert response["Location"] == "/admin-pages/teams/"
    assert not Team.objects.filter(pk=world.alpha.pk).exists()
    assert not Group.objects.filter(pk=world.alpha.group_id).exists()
    assert client.get(f"/admin-pages/teams/{world.alpha.pk}/").status_code == 404


# Users


def test_the_users_list_shows_roles_teams_status_and_invitations(
    world: World,
) -> None:
    invited = do_create_user(
        "invited", None, organization=world.lab, role=Role.MEMBER, email="i@lab.org"
    )
    do_add_team_member(world.alpha, invited)
    User.objects.filter(username="member_without_team").update(is_active=False)
    page = text(client_for(world, "admin").get("/admin-pages/users/"))
    rows = dict(re.findall(r'<tr id="user-(\w+)">(.*?)</tr>', page, re.S))
    assert sorted(rows) == [
        "admin",
        "dataset_manager",
        "invited",
        "member",
        "member_without_team",
        "team_manager",
    ]
    assert "Administrator" in rows["admin"]
    assert "Dataset manager" in rows["dataset_manager"]
    assert 'alpha<span class="chip-note"> · manager</span>' in rows["team_manager"]
    assert ">alpha</span>" in rows["member"]
    assert "No password yet" in rows["invited"]
    assert "i@lab.org" in rows["invited"]
    assert "No password yet" not in rows["member"]
    assert "Inactive" in rows["member_without_team"]
    assert "never" in rows["member"]


def test_the_users_list_searches_names_and_emails(world: World) -> None:
    do_create_user(
        "jdoe", None, organization=world.lab, role=Role.MEMBER, email="jane@x.org"
    )
    page = text(client_for(world, "admin").get("/admin-pages/users/", {"q": "JANE"}))
    assert re.findall(r'<tr id="user-(\w+)">', page) == ["jdoe"]
    none = text(client_for(world, "admin").get("/admin-pages/users/", {"q": "zzz"}))
    assert "No users match" in none


def test_an_admin_creates_an_invited_user_in_a_team(world: World) -> None:
    client = client_for(world, "admin")
    response = client.post(
        "/admin-pages/new-user/",
        {
            "username": "bob",
            "email": "bob@lab.org",
            "role": "member",
            "password": "",
            "teams": [str(world.alpha.pk)],
            "managed_teams": [str(world.alpha.pk)],
        },
    )
    assert response.status_code == 302, text(response)
    bob = User.objects.get(username="bob")
    assert not bob.has_usable_password()
    assert role(world, "bob") == "member"
    assert team_members(world.alpha)["bob"] is True
    page = text(client.get(response["Location"]))
    assert "User bob created. The account has no password yet" in page


def test_an_admin_creates_a_user_with_a_password_who_can_sign_in(
    world: World,
) -> None:
    response = client_for(world, "admin").post(
        "/admin-pages/new-user/",
        {"username": "carol", "role": "dataset_manager", "password": PASSWORD},
    )
    assert response.status_code == 302
    assert role(world, "carol") == "dataset_manager"
    assert Client().login(username="carol", password=PASSWORD)


@pytest.mark.parametrize(
    ("data", "field", "status", "message"),
    [
        ({"username": "member"}, "username", 409, "user 'member' already exists"),
        ({"username": "MEMBER"}, "username", 409, "user 'MEMBER' already exists"),
        ({"username": "a b"}, "username", 400, "Enter a valid username."),
        ({"username": ""}, "username", 400, "This field may not be blank."),
        ({"email": "nope"}, "email", 400, "Enter a valid email address."),
        (
            {"role": "boss"},
            "role",
            400,
            "unknown role 'boss'; use one of admin, dataset_manager, member",
        ),
        ({"password": "short"}, "password", 400, "This password is too short."),
        ({"teams": ["987654"]}, "teams", 400, "no such teams in lab: 987654"),
        ({"managed_teams": ["x"]}, "managed_teams", 400, "no such teams in lab: 'x'"),
    ],
)
def test_bad_new_users_are_refused_with_the_apis_messages(
    world: World, data: dict[str, Any], field: str, status: int, message: str
) -> None:
    form = {"username": "dave", "role": "member", **data}
    response = client_for(world, "admin").post("/admin-pages/new-user/", form)
    assert response.status_code == status
    page = text(response)
    assert f'id="{field}-error">{message}' in page, page
    assert not User.objects.filter(username="dave").exists()
    # What was typed stays (never the password).
    if field == "email":
        assert 'value="nope"' in page


def test_a_team_of_another_organization_cannot_be_given(world: World) -> None:
    theirs = do_create_team(world.other, "theirs")
    response = client_for(world, "admin").post(
        "/admin-pages/new-user/",
        {"username": "eve", "role": "member", "teams": [str(theirs.pk)]},
    )
    assert response.status_code == 400
    assert f"no such teams in lab: {theirs.pk}" in text(response)
    assert not User.objects.filter(username="eve").exists()


def test_the_user_page_shows_role_teams_and_for_managers_no_form(
    world: World,
) -> None:
    admin_page = text(
        client_for(world, "admin").get("/admin-pages/users/team_manager/")
    )
    assert '<option value="member" selected>' in admin_page
    alpha = world.alpha.pk
    assert re.search(rf'name="teams" value="{alpha}"[^>]*checked', admin_page)
    assert re.search(rf'name="managed_teams" value="{alpha}"[^>]*checked', admin_page)
    assert "Save changes" in admin_page
    manager_page = text(
        client_for(world, "dataset_manager").get("/admin-pages/users/team_manager/")
    )
    assert "Save changes" not in manager_page
    assert "Remove from organization" not in manager_page
    assert re.search(r'<select id="role" name="role" disabled', manager_page)


def test_invited_users_pages_say_they_have_no_password(world: World) -> None:
    do_create_user("invited", None, organization=world.lab, role=Role.MEMBER)
    page = text(client_for(world, "admin").get("/admin-pages/users/invited/"))
    assert "This account has no password yet" in page


def test_an_admin_changes_role_teams_and_active_flag_at_once(world: World) -> None:
    alpha = str(world.alpha.pk)
    beta = do_create_team(world.lab, "beta")
    client = client_for(world, "admin")
    response = client.post(
        "/admin-pages/users/member/",
        {"role": "dataset_manager", "teams": [str(beta.pk)], "managed_teams": [alpha]},
    )
    assert response.status_code == 302, text(response)
    member = User.objects.get(username="member")
    assert role(world, "member") == "dataset_manager"
    assert team_members(world.alpha)["member"] is True
    assert team_members(beta) == {"member": False}
    assert not member.is_active
    assert "Changes to member saved." in text(client.get(response["Location"]))


def test_the_last_admin_cannot_step_down_and_is_told_why(world: World) -> None:
    response = client_for(world, "admin").post(
        "/admin-pages/users/admin/", {"role": "member", "is_active": "on"}
    )
    assert response.status_code == 409
    page = text(response)
    assert "admin is the last admin of lab; make someone else admin first" in page
    assert 'role="alert"' in page
    assert role(world, "admin") == "admin"


def test_the_last_admin_cannot_be_removed_and_is_told_why(world: World) -> None:
    response = client_for(world, "superuser").post(
        "/admin-pages/users/admin/remove/", {"confirmed": "yes"}
    )
    assert response.status_code == 409
    assert "admin is the last admin of lab" in text(response)
    assert role(world, "admin") == "admin"


def test_a_change_that_fails_saves_nothing(world: World) -> None:
    """Role, teams and active flag go together: a bad team keeps the role."""
    response = client_for(world, "admin").post(
        "/admin-pages/users/member/",
        {"role": "admin", "teams": ["987654"], "is_active": "on"},
    )
    assert response.status_code == 400
    assert "no such teams in lab: 987654" in text(response)
    assert role(world, "member") == "member"
    assert team_members(world.alpha)["member"] is False


def test_admins_cannot_deactivate_themselves(world: World) -> None:
    response = client_for(world, "admin").post(
        "/admin-pages/users/admin/", {"role": "admin"}
    )
    assert response.status_code == 403
    assert 'id="is_active-error">you cannot deactivate yourself' in text(response)
    assert User.objects.get(username="admin").is_active


def test_accounts_in_organizations_the_admin_does_not_run_keep_their_active_flag(
    world: World,
) -> None:
    # member is also in `other`, where lab's admin has no say over the account.
    Membership.objects.create(
        user=world.users["member"], organization=world.other, role=Role.MEMBER
    )
    response = client_for(world, "admin").post(
        "/admin-pages/users/member/", {"role": "member", "teams": []}
    )
    assert response.status_code == 403
    assert "only a superuser or the admins of all of member's organizations" in text(
        response
    )
    assert User.objects.get(username="member").is_active


def test_removing_a_user_asks_first_then_keeps_the_account(world: World) -> None:
    client = client_for(world, "admin")
    url = "/admin-pages/users/member/remove/"
    asked = client.post(url)
    assert asked.status_code == 200
    assert "Remove member from lab?" in text(asked)
    assert role(world, "member") == "member"
    response = client.post(url, {"confirmed": "yes"})
    assert response.status_code == 302
    assert response["Location"] == "/admin-pages/users/"
    assert role(world, "member") is None
    assert "member" not in team_members(world.alpha)
    assert User.objects.filter(username="member").exists()
    assert client.get("/admin-pages/users/member/").status_code == 404


def test_users_of_other_organizations_look_missing(world: World) -> None:
    client = client_for(world, "admin")
    assert client.get("/admin-pages/users/outsider/").status_code == 404
    assert client.get("/admin-pages/users/nobody/").status_code == 404
    response = client.post("/admin-pages/users/outsider/", {"role": "member"})
    assert response.status_code == 404


# Datastores


def test_the_datastores_page_sits_under_admin(world: World) -> None:
    page = text(client_for(world, "admin").get("/admin-pages/datastores/"))
    assert '<a href="/admin-pages/" aria-current="page">Admin</a>' in page
    assert 'href="/admin-pages/datastores/" aria-current="page"' in page
    assert '<th scope="row">store1</th>' in page


# Query counts


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries)


def test_the_teams_list_runs_a_constant_number_of_queries(world: World) -> None:
    client = client_for(world, "admin")
    few = _queries(client, "/admin-pages/teams/")
    for index in range(20):
        team = do_create_team(world.lab, f"team{index}")
        do_add_team_member(team, world.users["member"])
    many = _queries(client, "/admin-pages/teams/")
    # Session, user, organizations, role checks (layout, page, sidebar), teams
    # with both counts: nothing per team.
    assert few == many, (few, many)
    assert many <= 10


def test_the_team_page_runs_a_constant_number_of_queries(world: World) -> None:
    client = client_for(world, "admin")
    url = f"/admin-pages/teams/{world.alpha.pk}/"
    few = _queries(client, url)
    for index in range(20):
        user = do_create_user(f"u{index}", None, organization=world.lab, role="member")
        do_add_team_member(world.alpha, user, is_manager=index % 2 == 0)
        do_create_user(f"c{index}", None, organization=world.lab, role="member")
    many = _queries(client, url)
    # ... plus the team, its members with users, the organization's members.
    assert few == many, (few, many)
    assert many <= 12


@pytest.mark.parametrize("persona", ["admin", "dataset_manager"])
def test_the_users_list_runs_a_constant_number_of_queries(
    world: World, persona: str
) -> None:
    client = client_for(world, persona)
    few = _queries(client, "/admin-pages/users/")
    for index in range(30):
        user = do_create_user(
            f"u{index:02d}", None, organization=world.lab, role="member"
        )
        do_add_team_member(world.alpha, user)
    many = _queries(client, "/admin-pages/users/")
    # ... plus count, one page of users, their memberships and team memberships.
    assert few == many, (few, many)
    assert many <= 12
