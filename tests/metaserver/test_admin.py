"""The Django admin opens for superusers and never shows secrets."""

from __future__ import annotations

import pytest
from django.test import Client

from metaserver.accounts.models import Team
from metaserver.datasets.models import Dataset

from .world import World

PAGES = [
    "/admin/",
    "/admin/accounts/user/",
    "/admin/accounts/organization/",
    "/admin/accounts/team/",
    "/admin/accounts/teammembership/",
    "/admin/accounts/apitoken/",
    "/admin/datastores/datastore/",
    "/admin/datasets/dataset/",
]


@pytest.mark.parametrize("url", PAGES)
def test_superuser_opens_every_admin_list(
    world: World, datasets: dict[str, Dataset], url: str
) -> None:
    client = Client()
    client.force_login(world.users["superuser"])
    assert client.get(url).status_code == 200


def test_admin_pages_show_no_key_hashes(world: World) -> None:
    client = Client()
    client.force_login(world.users["superuser"])
    pages = [
        f"/admin/datastores/datastore/{world.datastore.pk}/change/",
        "/admin/accounts/apitoken/",
    ]
    for url in pages:
        text = client.get(url).content.decode()
        assert world.datastore.key_hash not in text
    token = world.users["admin"].api_tokens.get()
    page = client.get(f"/admin/accounts/apitoken/{token.pk}/change/")
    assert token.key_hash not in page.content.decode()


def test_dataset_change_page_opens(world: World, datasets: dict[str, Dataset]) -> None:
    client = Client()
    client.force_login(world.users["superuser"])
    url = f"/admin/datasets/dataset/{datasets['private'].pk}/change/"
    assert client.get(url).status_code == 200


def test_non_staff_users_are_sent_to_the_login(world: World) -> None:
    client = Client()
    client.force_login(world.users["admin"])
    assert client.get("/admin/datasets/dataset/").status_code == 302


def test_team_added_in_the_admin_gets_its_group(world: World) -> None:
    client = Client()
    client.force_login(world.users["superuser"])
    response = client.post(
        "/admin/accounts/team/add/", {"organization": world.lab.pk, "name": "beta"}
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    team = Team.objects.get(name="beta")
    assert team.group.name == f"team:{world.lab.pk}:beta"
    duplicate = client.post(
        "/admin/accounts/team/add/", {"organization": world.lab.pk, "name": "beta"}
    )
    assert duplicate.status_code == 200  # the form shows the error
    assert Team.objects.filter(name="beta").count() == 1
