"""The do_* actions refuse bad input with a ValidationError and change nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError

from metaserver.accounts.actions import (
    do_add_team_member,
    do_create_api_token,
    do_create_organization,
    do_create_team,
    do_create_user,
    do_revoke_api_tokens,
)
from metaserver.accounts.models import ApiToken, Organization, User
from metaserver.datastores.actions import (
    do_create_datastore,
    do_register_datastore,
    do_rotate_datastore_key,
)
from metaserver.datastores.models import DataStore, http_url_validator

from .world import PASSWORD, World


@pytest.mark.parametrize("name", ["", "a b", "../x", ".hidden", "-x", "x" * 129])
def test_organization_names_must_be_directory_names(db: None, name: str) -> None:
    with pytest.raises(ValidationError):
        do_create_organization(name)
    assert not Organization.objects.exists()


def test_organization_names_are_unique(world: World) -> None:
    with pytest.raises(ValidationError, match="already exists"):
        do_create_organization("lab")


def test_user_needs_a_known_organization_and_role(world: World) -> None:
    with pytest.raises(ValidationError, match="unknown organization"):
        do_create_user("u", PASSWORD, organization="ghost", role="member")
    with pytest.raises(ValidationError, match="unknown role"):
        do_create_user("u", PASSWORD, organization="lab", role="king")
    with pytest.raises(ValidationError):
        do_create_user("u", "123", organization="lab", role="member")
    with pytest.raises(ValidationError):
        do_create_user("admin", PASSWORD, organization="lab", role="member")
    assert not User.objects.filter(username="u").exists()


def test_user_without_password_cannot_log_in(world: World) -> None:
    user = do_create_user("robot", None, organization=world.lab, role="member")
    assert not user.has_usable_password()


def test_team_members_must_belong_to_the_organization(world: World) -> None:
    with pytest.raises(ValidationError, match="not a member"):
        do_add_team_member(world.alpha, world.users["outsider"])


def test_team_names_are_unique_per_organization_and_backed_by_a_group(
    world: World,
) -> None:
    with pytest.raises(ValidationError, match="already exists"):
        do_create_team(world.lab, "alpha")
    twin = do_create_team(world.other, "alpha")
    assert twin.group != world.alpha.group
    assert Group.objects.filter(team__isnull=False).count() == 2
    assert world.alpha.group in world.users["member"].groups.all()


def test_tokens_are_stored_hashed_and_can_be_revoked(world: World) -> None:
    user = world.users["member"]
    token = do_create_api_token(user, "laptop")
    assert not ApiToken.objects.filter(key_hash__contains=token[4:]).exists()
    assert do_revoke_api_tokens(user, "laptop") == 1
    assert ApiToken.objects.filter(user=user).count() == 1


@pytest.mark.parametrize("key", ["short", "x" * 31, "x" * 20 + " " + "x" * 20])
def test_datastore_keys_must_be_long_and_plain(world: World, key: str) -> None:
    with pytest.raises(ValidationError):
        do_create_datastore("store3", "http://store3", key=key)
    with pytest.raises(ValidationError):
        do_rotate_datastore_key(world.datastore, key)


@pytest.mark.parametrize(
    "url",
    ["http://datastore:8080", "https://data.lab.org/prefix", "http://[::1]:9000"],
)
def test_cluster_and_ipv6_urls_are_fine(url: str) -> None:
    http_url_validator(url)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x",
        "http://",
        "http://user:pw@host",
        "http://host:0",
        "http://host:99999",
        "http://host/a b",
        "http://host/?q=1",
    ],
)
def test_bad_datastore_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        http_url_validator(url)


def test_registration_with_a_bad_url_changes_nothing(world: World) -> None:
    token = DataStore.objects.get(pk=world.datastore.pk).metaserver_token
    with pytest.raises(ValidationError):
        do_register_datastore(world.datastore, "nope", None, True)
    stored = DataStore.objects.get(pk=world.datastore.pk)
    assert stored.url == "http://store1:8080"
    assert stored.metaserver_token == token
