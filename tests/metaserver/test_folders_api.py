"""Folders: the tree, cumulative team access, create/rename/move/delete rules."""

from __future__ import annotations

from typing import Any

import pytest

from metaserver.datasets.access import datasets_visible_to, folders_visible_to
from metaserver.datasets.folder_actions import do_create_folder, do_move_folder
from metaserver.datasets.models import Folder, FolderClosure

from .world import World, assert_json_error


@pytest.fixture
def tree(world: World) -> dict[str, Folder]:
    """root > grand (team alpha) > parent > child; root > elsewhere."""
    root = Folder.objects.root_of(world.lab.pk)
    grand = do_create_folder(root, "grand", allowed_teams=[world.alpha])
    parent = do_create_folder(grand, "parent")
    child = do_create_folder(parent, "child")
    elsewhere = do_create_folder(root, "elsewhere")
    return {
        "root": root,
        "grand": grand,
        "parent": parent,
        "child": child,
        "elsewhere": elsewhere,
    }


def _closure(folder: Folder) -> dict[str, int]:
    return dict(
        FolderClosure.objects.filter(descendant=folder).values_list(
            "ancestor__name", "depth"
        )
    )


def _names(response: Any) -> set[str]:
    assert response.status_code == 200, response.content
    return {item["name"] for item in response.json()}


def test_every_organization_has_one_root_folder(world: World) -> None:
    first = Folder.objects.root_of(world.lab.pk)
    assert Folder.objects.root_of(world.lab.pk) == first
    assert first.is_root
    assert first.name == "The Lab"
    assert _closure(first) == {"The Lab": 0}


def test_closure_lists_every_ancestor_with_its_distance(
    tree: dict[str, Folder],
) -> None:
    assert _closure(tree["child"]) == {
        "child": 0,
        "parent": 1,
        "grand": 2,
        "The Lab": 3,
    }


def test_member_sees_dataset_through_grandparent_folder(
    world: World, tree: dict[str, Folder]
) -> None:
    world.dataset("deep", folder=tree["child"])
    names = _names_of_datasets(world, "member")
    assert "deep" in names
    assert "deep" not in _names_of_datasets(world, "member_without_team")
    assert "deep" not in _names_of_datasets(world, "outsider")
    assert "deep" not in _names_of_datasets(world, "anonymous")


def _names_of_datasets(world: World, persona: str) -> set[str]:
    response = world.client(persona).get("/api/datasets/")
    assert response.status_code == 200, response.content
    return {item["name"] for item in response.json()["results"]}


def test_moving_a_dataset_out_of_the_allowed_folder_removes_access(
    world: World, tree: dict[str, Folder]
) -> None:
    world.dataset("deep", folder=tree["child"])
    response = world.client("admin").patch(
        "/api/datasets/lab/deep/", {"folder": tree["elsewhere"].pk}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["folder"] == tree["elsewhere"].pk
    assert "deep" not in _names_of_datasets(world, "member")


def test_moving_a_folder_out_of_the_allowed_folder_removes_access(
    world: World, tree: dict[str, Folder]
) -> None:
    world.dataset("deep", folder=tree["child"])
    response = world.client("admin").patch(
        f"/api/folders/{tree['parent'].pk}/",
        {"parent": tree["elsewhere"].pk},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert [p["name"] for p in response.json()["path"]] == [
        "The Lab",
        "elsewhere",
        "parent",
    ]
    assert _closure(tree["child"]) == {
        "child": 0,
        "parent": 1,
        "elsewhere": 2,
        "The Lab": 3,
    }
    assert "deep" not in _names_of_datasets(world, "member")


def test_member_sees_allowed_subtree_and_only_the_names_of_ancestors(
    world: World, tree: dict[str, Folder]
) -> None:
    response = world.client("member").get("/api/folders/")
    folders = {item["name"]: item for item in response.json()}
    assert set(folders) == {"The Lab", "grand", "parent", "child"}
    assert folders["The Lab"]["is_accessible"] is False
    assert folders["grand"]["is_accessible"] is True
    assert folders["child"]["is_accessible"] is True
    assert not any(item["is_editable"] for item in folders.values())


def test_admin_sees_and_edits_every_folder(
    world: World, tree: dict[str, Folder]
) -> None:
    folders = world.client("admin").get("/api/folders/?organization=lab").json()
    assert {f["name"] for f in folders} == {
        "The Lab",
        "grand",
        "parent",
        "child",
        "elsewhere",
    }
    assert all(f["is_editable"] and f["is_accessible"] for f in folders)
    grand = next(f for f in folders if f["name"] == "grand")
    assert grand["allowed_teams"] == [{"id": world.alpha.pk, "name": "alpha"}]


def test_team_manager_edits_folders_below_their_team_only(
    world: World, tree: dict[str, Folder]
) -> None:
    client = world.client("team_manager")
    created = client.post(
        "/api/folders/", {"name": "new", "parent": tree["parent"].pk}, format="json"
    )
    assert created.status_code == 201, created.content
    refused = client.post(
        "/api/folders/", {"name": "new", "parent": tree["root"].pk}, format="json"
    )
    assert_json_error(refused, 403)
    hidden = client.post(
        "/api/folders/", {"name": "x", "parent": tree["elsewhere"].pk}, format="json"
    )
    assert_json_error(hidden, 404)


def test_outsider_and_anonymous_see_no_folders_of_the_lab(
    world: World, tree: dict[str, Folder]
) -> None:
    assert "grand" not in _names(world.client("outsider").get("/api/folders/"))
    assert_json_error(
        world.client("outsider").get(f"/api/folders/{tree['grand'].pk}/"), 404
    )
    assert world.client("anonymous").get("/api/folders/").status_code in (401, 403)


@pytest.mark.parametrize("persona", ["member", "member_without_team", "outsider"])
def test_members_and_outsiders_cannot_change_folders(
    world: World, tree: dict[str, Folder], persona: str
) -> None:
    client = world.client(persona)
    status = 403 if persona == "member" else 404
    assert_json_error(
        client.patch(f"/api/folders/{tree['grand'].pk}/", {"name": "x"}, format="json"),
        status,
    )
    assert_json_error(client.delete(f"/api/folders/{tree['child'].pk}/"), status)
    assert Folder.objects.filter(pk=tree["child"].pk).exists()


def test_moving_a_folder_into_its_own_descendant_is_400(
    world: World, tree: dict[str, Folder]
) -> None:
    client = world.client("admin")
    for target in ("child", "grand"):
        response = client.patch(
            f"/api/folders/{tree['grand'].pk}/",
            {"parent": tree[target].pk},
            format="json",
        )
        body = assert_json_error(response, 400)
        assert "into itself or its subfolders" in str(body["detail"])
    assert _closure(tree["child"])["grand"] == 2


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a/b", "'/'"),
        ("a\\b", "'/'"),
        ("", "1 to 255"),
        ("   ", "1 to 255"),
        ("x" * 256, "1 to 255"),
        ("..", "'.' and '..'"),
        ("tab\there", "control characters"),
    ],
)
def test_bad_folder_names_are_400_naming_the_problem(
    world: World, tree: dict[str, Folder], name: str, message: str
) -> None:
    client = world.client("admin")
    response = client.post(
        "/api/folders/", {"name": name, "parent": tree["root"].pk}, format="json"
    )
    assert message in str(assert_json_error(response, 400)["detail"])
    response = client.patch(
        f"/api/folders/{tree['child'].pk}/", {"name": name}, format="json"
    )
    assert message in str(assert_json_error(response, 400)["detail"])


def test_sibling_names_are_unique(world: World, tree: dict[str, Folder]) -> None:
    response = world.client("admin").post(
        "/api/folders/", {"name": "grand", "parent": tree["root"].pk}, format="json"
    )
    assert "already exists" in str(assert_json_error(response, 400)["detail"])
    moved = world.client("admin").patch(
        f"/api/folders/{tree['elsewhere'].pk}/",
        {"parent": tree["parent"].pk, "name": "child"},
        format="json",
    )
    assert_json_error(moved, 400)
    assert Folder.objects.get(pk=tree["elsewhere"].pk).parent_id == tree["root"].pk


def test_deleting_a_non_empty_folder_is_409(
    world: World, tree: dict[str, Folder]
) -> None:
    client = world.client("admin")
    body = assert_json_error(client.delete(f"/api/folders/{tree['parent'].pk}/"), 409)
    assert "1 subfolder(s)" in body["detail"]
    world.dataset("inside", folder=tree["child"])
    body = assert_json_error(client.delete(f"/api/folders/{tree['child'].pk}/"), 409)
    assert "1 dataset(s)" in body["detail"]
    assert client.delete(f"/api/folders/{tree['elsewhere'].pk}/").status_code == 204
    assert not Folder.objects.filter(pk=tree["elsewhere"].pk).exists()
    assert not FolderClosure.objects.filter(descendant_id=tree["elsewhere"].pk)


def test_the_root_folder_cannot_be_renamed_moved_or_deleted(
    world: World, tree: dict[str, Folder]
) -> None:
    client = world.client("admin")
    root = tree["root"].pk
    assert_json_error(
        client.patch(f"/api/folders/{root}/", {"name": "x"}, format="json"), 400
    )
    assert_json_error(
        client.patch(
            f"/api/folders/{root}/", {"parent": tree["child"].pk}, format="json"
        ),
        400,
    )
    assert_json_error(client.delete(f"/api/folders/{root}/"), 400)


def test_allowed_teams_of_a_folder_are_replaced_and_checked(
    world: World, tree: dict[str, Folder]
) -> None:
    client = world.client("admin")
    url = f"/api/folders/{tree['elsewhere'].pk}/"
    response = client.patch(url, {"allowed_teams": [world.alpha.pk]}, format="json")
    assert response.json()["allowed_teams"] == [{"id": world.alpha.pk, "name": "alpha"}]
    world.dataset("there", folder=tree["elsewhere"])
    assert "there" in _names_of_datasets(world, "member")
    client.patch(url, {"allowed_teams": []}, format="json")
    assert "there" not in _names_of_datasets(world, "member")
    from metaserver.accounts.actions import do_create_team

    foreign = do_create_team(world.other, "foreign")
    response = client.patch(url, {"allowed_teams": [foreign.pk]}, format="json")
    assert "no such teams" in str(assert_json_error(response, 400)["detail"])


def test_listing_by_folder_with_and_without_subfolders(
    world: World, tree: dict[str, Folder]
) -> None:
    world.dataset("top", folder=tree["grand"])
    world.dataset("deep", folder=tree["child"])
    client = world.client("member")
    flat = client.get("/api/datasets/", {"folder": tree["grand"].pk}).json()
    assert [d["name"] for d in flat["results"]] == ["top"]
    deep = client.get(
        "/api/datasets/", {"folder": tree["grand"].pk, "recursive": "true"}
    ).json()
    assert [d["name"] for d in deep["results"]] == ["deep", "top"]
    assert_json_error(client.get("/api/datasets/", {"recursive": "true"}), 400)


def test_moving_several_datasets_at_once(world: World, tree: dict[str, Folder]) -> None:
    for name in ("a", "b", "c"):
        world.dataset(name)
    client = world.client("admin")
    response = client.post(
        "/api/datasets/move/",
        {"datasets": ["lab/a", "lab/b"], "folder": tree["child"].pk},
        format="json",
    )
    assert response.json() == {"moved": 2}
    names = set(
        datasets_visible_to(world.users["member"]).values_list("name", flat=True)
    )
    assert {"a", "b"} <= names
    assert "c" not in names
    missing = client.post(
        "/api/datasets/move/",
        {"datasets": ["lab/a", "lab/nope"], "folder": tree["root"].pk},
        format="json",
    )
    assert "lab/nope" in assert_json_error(missing, 404)["detail"]
    member = world.client("member").post(
        "/api/datasets/move/",
        {"datasets": ["lab/a"], "folder": tree["child"].pk},
        format="json",
    )
    assert_json_error(member, 403)


def test_concurrent_style_moves_never_make_a_cycle(
    world: World, tree: dict[str, Folder]
) -> None:
    # The second move sees the first's result (the tree lock) and refuses.
    do_move_folder(tree["elsewhere"], tree["child"])
    from rest_framework.exceptions import ValidationError

    with pytest.raises(ValidationError):
        do_move_folder(tree["grand"], tree["elsewhere"])
    assert set(folders_visible_to(world.users["admin"])) == set(tree.values())


def test_folder_ids_that_are_not_numbers_are_404(world: World) -> None:
    assert_json_error(world.client("admin").get("/api/folders/abc/"), 404)
    assert_json_error(world.client("admin").get("/api/folders/0/"), 404)
    assert_json_error(world.client("admin").get("/api/folders/99999999/"), 404)
