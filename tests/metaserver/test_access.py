"""The gates themselves: dataset visibility, single datasets, organization roles."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from rest_framework.exceptions import NotFound

from metaserver.accounts.actions import do_add_team_member, do_create_team, do_set_role
from metaserver.accounts.models import Role
from metaserver.datasets.access import (
    datasets_visible_to,
    get_dataset_for_user,
    user_can_administrate_organization,
    user_can_manage_datasets,
)
from metaserver.datasets.api.views import DatasetViewSet
from metaserver.datasets.models import Dataset, Status
from shared.protocol import AccessMode

from .world import World


def test_visibility_is_one_query_without_python_loops(
    world: World, datasets: dict[str, Dataset], django_assert_num_queries: object
) -> None:
    queryset = datasets_visible_to(world.users["member"])
    with django_assert_num_queries(1):  # type: ignore[operator]
        names = sorted(queryset.values_list("name", flat=True))
    assert names == ["private", "public"]


def test_anonymous_and_none_see_only_public_active_datasets(
    world: World, datasets: dict[str, Dataset]
) -> None:
    Dataset.objects.filter(name="broken").update(is_public=True)
    for user in (None, AnonymousUser()):
        assert list(datasets_visible_to(user).values_list("name", flat=True)) == [
            "public"
        ]


def test_public_but_unusable_dataset_is_hidden_from_members(
    world: World, datasets: dict[str, Dataset]
) -> None:
    Dataset.objects.filter(name="public").update(status=Status.UNUSABLE)
    assert not datasets_visible_to(world.users["member"]).filter(name="public")
    assert datasets_visible_to(world.users["admin"]).filter(name="public")


def test_team_of_another_organization_grants_nothing(
    world: World, datasets: dict[str, Dataset]
) -> None:
    foreign = do_create_team(world.other, "foreign")
    do_add_team_member(foreign, world.users["outsider"])
    datasets["hidden"].allowed_teams.add(foreign)
    assert not datasets_visible_to(world.users["outsider"]).filter(name="hidden")


def test_leaving_the_organization_removes_team_access(
    world: World, datasets: dict[str, Dataset]
) -> None:
    world.users["member"].memberships.all().delete()
    assert not datasets_visible_to(world.users["member"]).filter(name="private")


def test_deactivated_user_sees_only_public(
    world: World, datasets: dict[str, Dataset]
) -> None:
    user = world.users["admin"]
    user.is_active = False
    names = set(datasets_visible_to(user).values_list("name", flat=True))
    assert names == {"public"}


@pytest.mark.parametrize(
    ("persona", "mode", "found"),
    [
        ("member", AccessMode.READ, True),
        ("member", AccessMode.WRITE, False),
        ("member", AccessMode.ADMINISTRATE, False),
        ("dataset_manager", AccessMode.WRITE, True),
        ("admin", AccessMode.ADMINISTRATE, True),
        ("outsider", AccessMode.READ, False),
        ("superuser", AccessMode.ADMINISTRATE, True),
    ],
)
def test_get_dataset_for_user_by_mode(
    world: World,
    datasets: dict[str, Dataset],
    persona: str,
    mode: AccessMode,
    found: bool,
) -> None:
    user = world.users[persona]
    if found:
        assert get_dataset_for_user(user, "lab", "private", mode).name == "private"
    else:
        with pytest.raises(NotFound):
            get_dataset_for_user(user, "lab", "private", mode)


def test_organization_roles(world: World) -> None:
    lab = world.lab
    assert user_can_administrate_organization(world.users["admin"], lab)
    assert not user_can_administrate_organization(world.users["dataset_manager"], lab)
    assert user_can_manage_datasets(world.users["dataset_manager"], lab)
    assert not user_can_manage_datasets(world.users["member"], lab)
    assert not user_can_manage_datasets(world.users["outsider"], lab)
    assert not user_can_manage_datasets(AnonymousUser(), lab)
    assert user_can_administrate_organization(world.users["superuser"], lab)
    do_set_role(world.users["member"], lab, Role.ADMIN)
    assert user_can_administrate_organization(world.users["member"], lab)


def test_every_dataset_view_action_has_an_access_mode() -> None:
    routed = {"list", "retrieve"}
    assert routed <= set(DatasetViewSet.access_modes)
    viewset = DatasetViewSet()
    viewset.action = "some_new_action"
    with pytest.raises(Exception, match="no access mode"):
        viewset.access_mode()
