"""Who may do what, cell by cell, through the real HTTP APIs of both services.

`EXPECTED` spells out ARCHITECTURE.md's "Who may do what" for one small world and
every cell of persona x dataset x action is its own test:

- organization `e2e_org` with teams A and B; folders root > grand > parent > child,
  team A allowed on `grand`;
- datasets `direct` (team A on the dataset), `nested` (in `child`, reached through
  `grand`), `public`, `shared` (only its sharing token reaches it), `revoked` (its
  first sharing token was revoked), and `foreign` in another organization whose
  admin is the outsider.

Deleting is real: a persona allowed to delete gets a copy of the dataset made for
that one cell (same folder, teams and flags), so the originals survive; a refused
delete is tried on the original, which must still be there afterwards.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from shared.datasource import (
    Category,
    DataFormat,
    DatasourceProperties,
    ElementClass,
    LayerProperties,
    MagProperties,
    VoxelSize,
    save_datasource,
)
from shared.formats import create_mag
from shared.geometry import BoundingBox, Mag, Vec3
from shared.protocol import MAX_ACCESS_CACHE_SECONDS, USER_TOKEN_HEADER

from .services import ORG, Services

pytestmark = pytest.mark.e2e

OTHER_ORG = "pm_other"
EDGE = 32
# How late after the documented cache time a datastore may still say yes.
CACHE_MARGIN_SECONDS = 2.0

DATASETS = ("direct", "nested", "public", "shared", "revoked", "foreign")
ACTIONS = "LORED"
# One string per persona, one column per dataset. Letters, in this order:
#   L  listed by GET /api/datasets/
#   O  opened by GET /api/datasets/{org}/{name}/
#   R  voxels read from the datastore's data route
#   E  edited by PATCH display_name
#   D  deleted by DELETE /api/datasets/{org}/{name}/
# and "-" where the persona is refused. The token holder holds the sharing token of
# `shared` and the revoked first token of `revoked`, and tries the `shared` token
# everywhere else. It lists and opens `public` as anyone may (the metaserver ignores
# a sharing token that is not the dataset's), but the datastore refuses a sharing
# token on any other dataset, public ones included (`token_may_access`).
EXPECTED: dict[str, dict[str, str]] = {
    persona: dict(zip(DATASETS, row.split(), strict=True))
    for persona, row in {
        #                      direct nested public shared revoked foreign
        "admin":              "LORED  LORED  LORED  LORED  LORED   -----",
        "dataset_manager":    "LORED  LORED  LORED  LORED  LORED   -----",
        "team_manager_of_a":  "LORE-  LORE-  LOR--  -----  -----   -----",
        "member_of_a":        "LOR--  LOR--  LOR--  -----  -----   -----",
        "member_of_b":        "-----  -----  LOR--  -----  -----   -----",
        "outsider":           "-----  -----  LOR--  -----  -----   LORED",
        "anonymous":          "-----  -----  LOR--  -----  -----   -----",
        "token_holder":       "-----  -----  LO---  -OR--  -----   -----",
    }.items()
}  # fmt: skip
PERSONAS = tuple(EXPECTED)
# Role in which organization, and teams (member of, manager of); None: no account.
ACCOUNTS: dict[str, tuple[str, str, list[str], list[str]]] = {
    "admin": (ORG, "admin", [], []),
    "dataset_manager": (ORG, "dataset_manager", [], []),
    "team_manager_of_a": (ORG, "member", [], ["A"]),
    "member_of_a": (ORG, "member", ["A"], []),
    "member_of_b": (ORG, "member", ["B"], []),
    "outsider": (OTHER_ORG, "admin", [], []),
}
VERBS = {
    "L": ("does not see {} in the list", "sees {} in the list"),
    "O": ("cannot open {}", "opens {}"),
    "R": ("cannot read voxels of {}", "reads voxels of {}"),
    "E": ("cannot rename {}", "renames {}"),
    "D": ("cannot delete {}", "deletes {}"),
}
# A refused write: logged-in personas get the gate's 404 (missing and forbidden
# look the same), callers without a login 401, sharing-token holders 403.
UNAUTHENTICATED = ("anonymous", "token_holder")

SETUP = """
import json, sys
from metaserver.accounts.actions import (
    do_create_api_token, do_create_organization, do_create_team, do_create_user,
)
from metaserver.accounts.models import Organization
spec = json.loads(sys.argv[1])
lab = Organization.objects.get(name=spec["org"])
other = do_create_organization(spec["other"], "Other lab")
teams = {key: do_create_team(lab, "pm_team_" + key) for key in ("A", "B")}
tokens = {}
for persona, (org, role, member_of, manager_of) in spec["accounts"].items():
    user = do_create_user(
        "pm_" + persona, None,
        organization=lab if org == spec["org"] else other, role=role,
        teams=[teams[t] for t in member_of],
        managed_teams=[teams[t] for t in manager_of],
    )
    tokens[persona] = do_create_api_token(user, "permission-matrix")
print(json.dumps({"tokens": tokens, "teams": {k: t.pk for k, t in teams.items()}}))
"""


def cells(action: str) -> list[Any]:
    """One pytest param per (persona, dataset) for `action`, its id a sentence."""
    index = ACTIONS.index(action)
    params = []
    for persona in PERSONAS:
        for dataset in DATASETS:
            allowed = EXPECTED[persona][dataset][index] == action
            sentence = VERBS[action][allowed].format(dataset)
            params.append(
                pytest.param(persona, dataset, allowed, id=f"{persona} {sentence}")
            )
    return params


def delete_copy(dataset: str, persona: str) -> str:
    return f"pm_{dataset}_deleted_by_{persona}"


def delete_copies() -> dict[str, str]:
    """Copy name -> the dataset it copies, for every cell where deleting is allowed."""
    return {
        delete_copy(dataset, persona): dataset
        for persona in PERSONAS
        for dataset in DATASETS
        if "D" in EXPECTED[persona][dataset]
    }


def voxels_of(name: str) -> np.ndarray:
    """The dataset's content, different per name so a mix-up would show."""
    seed = sum(name.encode())
    return np.random.default_rng(seed).integers(0, 255, (EDGE,) * 3, dtype=np.uint8)


def write_dataset(binary_data: Path, organization: str, name: str) -> None:
    """A 32³ uint8 Zarr3 dataset with one mag, as the datastore finds it on disk."""
    target = binary_data / organization / name
    array = create_mag(
        target / "color" / "1", DataFormat.ZARR3, np.uint8, chunk_shape=32
    )
    array.write(Vec3(0, 0, 0), voxels_of(name)[None])
    array.close()
    layer = LayerProperties(
        name="color",
        category=Category.COLOR,
        bounding_box=BoundingBox.of(0, (EDGE,) * 3),
        element_class=ElementClass.UINT8,
        data_format=DataFormat.ZARR3,
        mags=(MagProperties(mag=Mag(1, 1, 1), path="./color/1"),),
        num_channels=1,
    )
    props = DatasourceProperties(
        name=name,
        team=organization,
        voxel_size=VoxelSize((11.0, 11.0, 24.0)),
        layers=(layer,),
    )
    save_datasource(target / "datasource-properties.json", props)


@dataclass
class World:
    services: Services
    api: httpx.Client
    data: httpx.Client
    tokens: dict[str, str]
    teams: dict[str, int]
    folders: dict[str, int]
    sharing: dict[str, str]

    @staticmethod
    def where(dataset: str) -> tuple[str, str]:
        """(organization, name) of `dataset`, a key of DATASETS or a copy's name."""
        name = dataset if dataset.startswith("pm_") else f"pm_{dataset}"
        return (OTHER_ORG if "foreign" in name else ORG), name

    def token(self, persona: str, dataset: str | None = None) -> str | None:
        if persona == "anonymous":
            return None
        if persona == "token_holder":
            return self.sharing["revoked_first" if dataset == "revoked" else "shared"]
        return self.tokens[persona]

    def headers(self, persona: str, dataset: str | None = None) -> dict[str, str]:
        """How `persona` calls the metaserver about `dataset`."""
        token = self.token(persona, dataset)
        if token is None:
            return {}
        if persona == "token_holder":
            return {USER_TOKEN_HEADER: token}
        return {"Authorization": f"Token {token}"}

    def owner(self, dataset: str) -> str:
        """A persona that manages `dataset`: to check things behind others' backs."""
        return "outsider" if self.where(dataset)[0] == OTHER_ORG else "admin"

    def detail_url(self, dataset: str) -> str:
        organization, name = self.where(dataset)
        return f"/api/datasets/{organization}/{name}/"

    def open(self, persona: str, dataset: str) -> httpx.Response:
        return self.api.get(
            self.detail_url(dataset), headers=self.headers(persona, dataset)
        )

    def listed(self, persona: str) -> set[tuple[str, str]]:
        """Every (organization, name) in `persona`'s dataset list, all pages."""
        names: set[tuple[str, str]] = set()
        url: str | None = "/api/datasets/?page_size=1000"
        while url:
            response = self.api.get(url, headers=self.headers(persona))
            assert response.status_code == 200, response.text
            body = response.json()
            names |= {(d["organization"], d["name"]) for d in body["results"]}
            url = body["next"]
        return names

    def read(
        self, dataset: str, token: str | None, *, in_query: bool = False
    ) -> httpx.Response:
        """The whole 32³ of `dataset`'s color layer from the datastore."""
        organization, name = self.where(dataset)
        params: dict[str, Any] = {"mag": "1-1-1", "x": 0, "y": 0, "z": 0}
        params |= {"width": EDGE, "height": EDGE, "depth": EDGE}
        headers = {}
        if token is not None and in_query:
            params["token"] = token
        elif token is not None:
            headers[USER_TOKEN_HEADER] = token
        return self.data.get(
            f"/data/datasets/{organization}/{name}/layers/color/data",
            params=params,
            headers=headers,
        )

    def as_admin(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Token {self.tokens['admin']}"}
        response = self.api.request(method, url, headers=headers, **kwargs)
        assert response.status_code in (200, 201), response.text
        return response


def _wait_until_reported(world: World, names: dict[str, str]) -> None:
    """Until every dataset of `names` (name -> organization) is listed as active."""
    deadline = time.monotonic() + 30
    for persona, organization in (("admin", ORG), ("outsider", OTHER_ORG)):
        wanted = {name for name, org in names.items() if org == organization}
        while True:
            response = world.api.get(
                "/api/datasets/",
                params={"organization": organization, "q": "pm_", "page_size": 1000},
                headers=world.headers(persona),
            )
            assert response.status_code == 200, response.text
            active = {
                d["name"] for d in response.json()["results"] if d["status"] == "active"
            }
            if wanted <= active:
                break
            assert time.monotonic() < deadline, f"not reported: {wanted - active}"
            time.sleep(0.2)


def _build(services: Services, api: httpx.Client, data: httpx.Client) -> World:
    out = services.django(
        SETUP,
        json.dumps({"org": ORG, "other": OTHER_ORG, "accounts": ACCOUNTS}),
    )
    created = json.loads(out.strip().splitlines()[-1])
    world = World(services, api, data, created["tokens"], created["teams"], {}, {})

    copies = delete_copies()
    on_disk = {World.where(d)[1]: World.where(d)[0] for d in DATASETS}
    on_disk |= {copy: World.where(original)[0] for copy, original in copies.items()}
    for name, organization in on_disk.items():
        write_dataset(services.binary_data, organization, name)
    services.scan()
    _wait_until_reported(world, on_disk)

    folders = world.as_admin("GET", "/api/folders/", params={"organization": ORG})
    parent = next(f["id"] for f in folders.json() if f["is_root"])
    world.folders["root"] = parent
    for name in ("grand", "parent", "child"):
        teams = [world.teams["A"]] if name == "grand" else []
        body = {"name": f"pm_{name}", "parent": parent, "allowed_teams": teams}
        parent = world.as_admin("POST", "/api/folders/", json=body).json()["id"]
        world.folders[name] = parent

    settings: dict[str, dict[str, Any]] = {
        "direct": {"allowed_teams": [world.teams["A"]]},
        "nested": {"folder": world.folders["child"]},
        "public": {"is_public": True},
    }
    targets = [(d, d) for d in settings] + [(c, o) for c, o in copies.items()]
    for dataset, original in targets:
        if original in settings:
            world.as_admin("PATCH", world.detail_url(dataset), json=settings[original])

    token_url = world.detail_url("shared") + "sharing-token/"
    world.sharing["shared"] = world.as_admin("GET", token_url).json()["token"]
    token_url = world.detail_url("revoked") + "sharing-token/"
    world.sharing["revoked_first"] = world.as_admin("GET", token_url).json()["token"]
    world.as_admin("POST", token_url)
    return world


@pytest.fixture(scope="module")
def world(services: Services) -> Iterator[World]:
    with (
        httpx.Client(base_url=services.metaserver_url, timeout=30) as api,
        httpx.Client(base_url=services.datastore_url, timeout=30) as data,
    ):
        yield _build(services, api, data)


def _assert_refused_write(response: httpx.Response, persona: str) -> None:
    # A sharing token is read-only (403); no login at all asks for one (401).
    expected = {"anonymous": 401, "token_holder": 403}.get(persona, 404)
    assert response.status_code == expected, response.text
    assert "error" in response.json()


@pytest.mark.parametrize(("persona", "dataset", "allowed"), cells("L"))
def test_listing(world: World, persona: str, dataset: str, allowed: bool) -> None:
    assert (world.where(dataset) in world.listed(persona)) is allowed


@pytest.mark.parametrize(("persona", "dataset", "allowed"), cells("O"))
def test_opening(world: World, persona: str, dataset: str, allowed: bool) -> None:
    response = world.open(persona, dataset)
    if allowed:
        assert response.status_code == 200, response.text
        assert response.json()["name"] == world.where(dataset)[1]
    else:
        assert response.status_code == 404, response.text


@pytest.mark.parametrize(("persona", "dataset", "allowed"), cells("R"))
def test_reading_voxels(
    world: World, persona: str, dataset: str, allowed: bool
) -> None:
    response = world.read(dataset, world.token(persona, dataset))
    if allowed:
        assert response.status_code == 200, response.text
        got = np.frombuffer(response.content, np.uint8).reshape((EDGE,) * 3, order="F")
        np.testing.assert_array_equal(got, voxels_of(world.where(dataset)[1]))
    else:
        assert response.status_code == 403, response.text
        assert "error" in response.json()


@pytest.mark.parametrize(("persona", "dataset", "allowed"), cells("E"))
def test_editing(world: World, persona: str, dataset: str, allowed: bool) -> None:
    display_name = f"{dataset} renamed by {persona}"
    response = world.api.patch(
        world.detail_url(dataset),
        json={"display_name": display_name},
        headers=world.headers(persona, dataset),
    )
    if allowed:
        assert response.status_code == 200, response.text
        assert response.json()["display_name"] == display_name
    else:
        _assert_refused_write(response, persona)
        seen_by_owner = world.open(world.owner(dataset), dataset).json()
        assert seen_by_owner["display_name"] != display_name


@pytest.mark.parametrize(("persona", "dataset", "allowed"), cells("D"))
def test_deleting(world: World, persona: str, dataset: str, allowed: bool) -> None:
    target = delete_copy(dataset, persona) if allowed else dataset
    organization, name = world.where(target)
    on_disk = world.services.binary_data / organization / name
    response = world.api.delete(
        world.detail_url(target), headers=world.headers(persona, dataset)
    )
    if allowed:
        assert response.status_code == 200, response.text
        assert response.json()["deleted"] == f"{organization}/{name}"
        assert world.open(persona, target).status_code == 404
        assert not on_disk.exists()
        assert (on_disk.parent / ".trash").is_dir()
    else:
        _assert_refused_write(response, persona)
        assert world.open(world.owner(dataset), dataset).status_code == 200
        assert on_disk.is_dir()


@pytest.mark.parametrize("dataset", DATASETS)
def test_viewer_token_of_a_member_reads_what_the_member_reads(
    world: World, dataset: str
) -> None:
    response = world.api.post(
        "/api/auth/viewer-token/", headers=world.headers("member_of_a")
    )
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    assert token.startswith("vxt_")
    allowed = "R" in EXPECTED["member_of_a"][dataset]
    assert world.read(dataset, token).status_code == (200 if allowed else 403)


def test_sharing_token_in_the_query_string_opens_its_dataset_and_no_other(
    world: World,
) -> None:
    token = world.sharing["shared"]
    response = world.api.get(world.detail_url("shared"), params={"token": token})
    assert response.status_code == 200, response.text
    assert world.read("shared", token, in_query=True).status_code == 200
    for other in ("direct", "nested", "revoked", "foreign"):
        response = world.api.get(world.detail_url(other), params={"token": token})
        assert response.status_code == 404, (other, response.text)
        assert world.read(other, token, in_query=True).status_code == 403, other


def test_sharing_token_cannot_edit_or_revoke_its_own_dataset(world: World) -> None:
    token = world.sharing["shared"]
    url = world.detail_url("shared")
    for headers, params in (({USER_TOKEN_HEADER: token}, {}), ({}, {"token": token})):
        response = world.api.patch(
            url, json={"display_name": "hijacked"}, headers=headers, params=params
        )
        assert response.status_code == 403, response.text
        for method in ("GET", "POST"):
            response = world.api.request(
                method, url + "sharing-token/", headers=headers, params=params
            )
            assert response.status_code in (401, 403, 404), response.text
    assert world.open("admin", "shared").json()["display_name"] != "hijacked"
    # Still the same token: nobody revoked it on the way.
    assert world.read("shared", token).status_code == 200


def _denied_after(world: World, dataset: str, token: str, started: float) -> float:
    """Poll the datastore until it refuses `token`; seconds since `started`."""
    deadline = started + MAX_ACCESS_CACHE_SECONDS + CACHE_MARGIN_SECONDS
    while True:
        status = world.read(dataset, token).status_code
        elapsed = time.monotonic() - started
        if status == 403:
            return elapsed
        assert status == 200, status
        assert time.monotonic() < deadline, f"still allowed after {elapsed:.1f} s"
        time.sleep(0.25)


def test_revoked_sharing_token_is_refused_by_the_datastore_within_the_cache_time(
    world: World,
) -> None:
    url = world.detail_url("revoked") + "sharing-token/"
    token = world.as_admin("GET", url).json()["token"]
    # A yes is cached now: the worst case for revocation.
    assert world.read("revoked", token).status_code == 200
    started = time.monotonic()
    new_token = world.as_admin("POST", url).json()["token"]
    assert new_token != token
    response = world.api.get(world.detail_url("revoked"), params={"token": token})
    assert response.status_code == 404, "the metaserver must refuse at once"
    elapsed = _denied_after(world, "revoked", token, started)
    assert elapsed <= MAX_ACCESS_CACHE_SECONDS + CACHE_MARGIN_SECONDS
    assert world.read("revoked", token).status_code == 403
    assert world.read("revoked", new_token).status_code == 200


def test_moving_a_folder_out_from_under_the_allowed_one_ends_member_access(
    world: World,
) -> None:
    child = f"/api/folders/{world.folders['child']}/"
    member = world.tokens["member_of_a"]
    # A yes is cached now: the worst case for the datastore.
    assert world.read("nested", member).status_code == 200
    started = time.monotonic()
    world.as_admin("PATCH", child, json={"parent": world.folders["root"]})
    try:
        assert world.open("member_of_a", "nested").status_code == 404
        assert world.where("nested") not in world.listed("member_of_a")
        elapsed = _denied_after(world, "nested", member, started)
        assert elapsed <= MAX_ACCESS_CACHE_SECONDS + CACHE_MARGIN_SECONDS
        # The team manager of A loses it too; the admin keeps it.
        assert world.open("team_manager_of_a", "nested").status_code == 404
        assert world.open("admin", "nested").status_code == 200
    finally:
        world.as_admin("PATCH", child, json={"parent": world.folders["parent"]})
    # Moved back: access returns at once (a no is never cached).
    assert world.open("member_of_a", "nested").status_code == 200
    assert world.read("nested", member).status_code == 200
