"""Fixtures of the metaserver tests (the world itself is in `world.py`)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from metaserver.accounts.actions import (
    do_add_team_member,
    do_create_api_token,
    do_create_organization,
    do_create_team,
    do_create_user,
)
from metaserver.accounts.models import Organization, Role
from metaserver.datasets.models import Dataset, Status
from metaserver.datastores.actions import do_create_datastore

from .world import PASSWORD, World


@pytest.fixture(autouse=True)
def _fast_settings(settings: Any, tmp_path: Path) -> None:
    # The default PBKDF2 costs ~0.3 s per password; tests make dozens.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # WhiteNoise warns about a missing STATIC_ROOT, and warnings are errors here.
    settings.STATIC_ROOT = tmp_path


@pytest.fixture
def world(db: None) -> World:
    lab = do_create_organization("lab", "The Lab")
    other = do_create_organization("other", "Other Lab")
    alpha = do_create_team(lab, "alpha")
    datastore, key = do_create_datastore("store1", "http://store1:8080")
    other_datastore, other_key = do_create_datastore(
        "store2", "http://store2:8080", public_url="https://data.example.org"
    )
    # Both registered earlier: each holds the token it signs its calls with.
    for store in (datastore, other_datastore):
        store.metaserver_token = secrets.token_urlsafe(32)
        store.save(update_fields=["metaserver_token"])
    world = World(lab, other, alpha, datastore, key, other_datastore, other_key)
    roles: dict[str, tuple[Organization, Role]] = {
        "superuser": (other, Role.MEMBER),
        "admin": (lab, Role.ADMIN),
        "dataset_manager": (lab, Role.DATASET_MANAGER),
        "member": (lab, Role.MEMBER),
        "member_without_team": (lab, Role.MEMBER),
        "team_manager": (lab, Role.MEMBER),
        "outsider": (other, Role.ADMIN),
    }
    for persona, (org, role) in roles.items():
        user = do_create_user(
            persona,
            PASSWORD,
            organization=org,
            role=role,
            is_superuser=persona == "superuser",
        )
        world.users[persona] = user
        world.tokens[persona] = do_create_api_token(user)
    do_add_team_member(alpha, world.users["member"])
    do_add_team_member(alpha, world.users["team_manager"], is_manager=True)
    return world


@pytest.fixture
def datasets(world: World) -> dict[str, Dataset]:
    """private (team alpha), public, hidden (no team), broken (unusable, alpha)."""
    return {
        "private": world.dataset("private", teams=(world.alpha,)),
        "public": world.dataset("public", is_public=True),
        "hidden": world.dataset("hidden"),
        "broken": world.dataset(
            "broken",
            teams=(world.alpha,),
            status=Status.UNUSABLE,
            status_reason="not found on disk",
        ),
        "other_private": world.dataset("other_private", organization=world.other),
    }
