"""Listing 2,000 datasets costs the queries of listing 20 (RELIABILITY 23).

The library: team alpha is allowed on `grand`; below it 9 branch folders with 10
leaf folders each (100 folders with `grand`). Datasets go round-robin into the
leaves, except every 20th, which goes to a folder outside `grand` that alpha does
not reach. The member and the team manager of alpha see the rest only through a
grandparent folder (no dataset is allowed to a team directly); every 10th dataset
is public, every 5th tagged `scale`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from metaserver.datasets.folder_actions import do_create_folder
from metaserver.datasets.models import Dataset, Folder, FolderClosure, Status, Tag

from .world import World, datasource

SMALL, LARGE = 20, 2_000
BRANCHES, LEAVES_PER_BRANCH = 9, 10
PAGE_SIZE = 1000


@dataclass
class Library:
    grand: Folder
    branches: list[Folder]
    leaves: list[Folder]
    outside: Folder
    tag: Tag


def _library(world: World) -> Library:
    root = Folder.objects.root_of(world.lab.pk)
    grand = do_create_folder(root, "grand", allowed_teams=[world.alpha])
    branches = [do_create_folder(grand, f"branch{b}") for b in range(BRANCHES)]
    leaves = [
        do_create_folder(branch, f"leaf{leaf}")
        for branch in branches
        for leaf in range(LEAVES_PER_BRANCH)
    ]
    assert FolderClosure.objects.filter(ancestor=grand).count() == 100
    outside = do_create_folder(root, "outside")
    tag = Tag.objects.create(organization=world.lab, name="scale")
    return Library(grand, branches, leaves, outside, tag)


def _add_datasets(world: World, library: Library, start: int, stop: int) -> None:
    """Datasets `scan<start>` .. `scan<stop - 1>`, placed as the docstring says."""

    def folder_of(index: int) -> Folder:
        if index % 20 == 19:
            return library.outside
        return library.leaves[index % len(library.leaves)]

    created = Dataset.objects.bulk_create(
        Dataset(
            organization=world.lab,
            datastore=world.datastore,
            folder=folder_of(index),
            name=f"scan{index:04d}",
            datasource=datasource(f"scan{index:04d}"),
            status=Status.ACTIVE,
            is_public=index % 10 == 0,
        )
        for index in range(start, stop)
    )
    library.tag.datasets.add(*(d for d in created if int(d.name[4:]) % 5 == 0))


def _query(library: Library, kind: str) -> dict[str, Any]:
    # Every filter keeps some public, tagged dataset in both sizes, so each page has
    # rows and the prefetches run for every persona.
    return {
        "all": {},
        "folder": {"folder": library.branches[0].pk, "recursive": "true"},
        "tag": {"tag": "scale"},
        "search": {"q": "scan00"},
    }[kind] | {"page_size": PAGE_SIZE}


def _listing_queries(
    world: World, persona: str, params: dict[str, Any]
) -> tuple[list[str], int]:
    client = world.client(persona)
    # The first request of a token records its `last_used`, a write done once.
    assert client.get("/api/datasets/").status_code == 200
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/api/datasets/", params)
    assert response.status_code == 200, response.content
    sql = [query["sql"] for query in captured.captured_queries]
    return sql, response.json()["count"]


# Queries of one listing request, per persona:
#  1. the API token with its user (select_related)          - not for anonymous
#  2. the page's ids, sorted, with the visibility predicate (memberships, team
#     memberships, folder permissions and the folder closure as subqueries) and
#     the filter, in SQL, and the total as a window COUNT(*) OVER ()
#  3. the page's rows by id, JOIN organization, datastore
#  4. the page's tags, one IN (...) query
#  5. the page's allowed teams, one IN (...) query
EXPECTED_QUERIES = {"member": 5, "team_manager": 5, "admin": 5, "anonymous": 4}


def _expected_count(persona: str, kind: str, size: int) -> int:
    """How many of `scan0000` .. `scan<size - 1>` the listing should count."""

    def visible(i: int) -> bool:
        if persona == "anonymous":
            return i % 10 == 0
        if persona in ("member", "team_manager"):
            return i % 20 != 19
        return True

    def matches(i: int) -> bool:
        in_branch0 = i % 20 != 19 and i % (BRANCHES * LEAVES_PER_BRANCH) < 10
        # "scan00" matches scan0000 .. scan0099.
        by_kind = {
            "all": True,
            "folder": in_branch0,
            "tag": i % 5 == 0,
            "search": i < 100,
        }
        return by_kind[kind]

    return sum(1 for i in range(size) if visible(i) and matches(i))


FILTERS = {
    "all": "lists everything",
    "folder": "lists a folder recursively",
    "tag": "filters by tag",
    "search": "searches",
}


@pytest.mark.parametrize(
    ("persona", "kind"),
    [
        pytest.param(persona, kind, id=f"{persona} {phrase}")
        for persona in EXPECTED_QUERIES
        for kind, phrase in FILTERS.items()
    ],
)
def test_listing_costs_the_same_queries_for_2000_datasets_as_for_20(
    world: World, persona: str, kind: str
) -> None:
    library = _library(world)
    params = _query(library, kind)
    _add_datasets(world, library, 0, SMALL)
    small, small_count = _listing_queries(world, persona, params)
    _add_datasets(world, library, SMALL, LARGE)
    large, large_count = _listing_queries(world, persona, params)

    assert small_count == _expected_count(persona, kind, SMALL)
    assert large_count == _expected_count(persona, kind, LARGE)
    assert 0 < small_count < large_count
    assert len(small) == len(large), "\n\n".join(large)
    assert len(large) == EXPECTED_QUERIES[persona], "\n\n".join(large)
