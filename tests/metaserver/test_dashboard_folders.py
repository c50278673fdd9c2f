"""The datasets home's folder tree, filters, moves, tags and who may do what.

Every new view is tried by every persona; edits answer JSON (`Accept:
application/json`, as `folders.js` asks) with the action's own message on errors.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from metaserver.accounts.actions import do_create_team
from metaserver.dashboard import tokens
from metaserver.datasets.dataset_actions import do_update_dataset
from metaserver.datasets.folder_actions import do_create_folder
from metaserver.datasets.models import Dataset, Folder, FolderGroupObjectPermission

from .test_dashboard import HTMX, TABLE, client_for, listed
from .world import World

JSON = {"Accept": "application/json"}
EDITORS = ("admin", "dataset_manager", "team_manager")
# What a POST by each persona gets on a folder allowed to team alpha.
REFUSED = {
    "member": 403,  # sees it (through alpha), may not change it
    "member_without_team": 404,
    "outsider": 404,
    "anonymous": 302,  # to the login page
}
PERSONAS = (*EDITORS, *REFUSED)


def expected_status(persona: str) -> int:
    return 200 if persona in EDITORS else REFUSED[persona]


@pytest.fixture
def folders(world: World) -> dict[str, Folder]:
    """root / shared (team alpha) / {inner, a, b}; root / private_zone (no team)."""
    root = Folder.objects.root_of(world.lab.pk)
    shared = do_create_folder(root, "shared", allowed_teams=[world.alpha])
    return {
        "root": root,
        "shared": shared,
        "inner": do_create_folder(shared, "inner"),
        "a": do_create_folder(shared, "a"),
        "b": do_create_folder(shared, "b"),
        "private_zone": do_create_folder(root, "private_zone"),
        "other_root": Folder.objects.root_of(world.other.pk),
    }


def post(client: Client, url: str, data: dict[str, Any] | None = None) -> Any:
    return client.post(url, data or {}, headers=JSON)


def folder_names(html: str) -> list[str]:
    return re.findall(r'data-folder-name="([^"]*)"', html)


# ---- Who may change folders ----


@pytest.mark.parametrize("persona", PERSONAS)
def test_creating_a_folder_is_for_editors_of_the_parent(
    world: World, folders: dict[str, Folder], persona: str
) -> None:
    response = post(
        client_for(world, persona),
        "/folders/new/",
        {"parent": folders["shared"].pk, "name": "Fresh"},
    )
    assert response.status_code == expected_status(persona)
    created = Folder.objects.filter(parent=folders["shared"], name="Fresh").exists()
    assert created is (persona in EDITORS)
    if persona in EDITORS:
        body = response.json()
        assert body["message"] == "Folder “Fresh” created."
        assert "Fresh" in folder_names(body["tree"])
    elif persona == "anonymous":
        assert response["Location"].startswith("/login/")
    else:
        assert "error" in response.json()


@pytest.mark.parametrize("persona", PERSONAS)
def test_renaming_moving_and_deleting_folders_is_for_editors(
    world: World, folders: dict[str, Folder], persona: str
) -> None:
    client = client_for(world, persona)
    expected = expected_status(persona)
    renamed = post(client, f"/folders/{folders['inner'].pk}/rename/", {"name": "Z"})
    moved = post(
        client, f"/folders/{folders['a'].pk}/move/", {"parent": folders["b"].pk}
    )
    deleted = post(client, f"/folders/{folders['inner'].pk}/delete/")
    assert (renamed.status_code, moved.status_code, deleted.status_code) == (
        expected,
        expected,
        expected,
    )
    allowed = persona in EDITORS
    assert Folder.objects.filter(pk=folders["inner"].pk).exists() is not allowed
    folders["a"].refresh_from_db()
    assert (folders["a"].parent_id == folders["b"].pk) is allowed


@pytest.mark.parametrize("persona", PERSONAS)
def test_allowed_teams_dialog_and_saving_are_for_editors(
    world: World, folders: dict[str, Folder], persona: str
) -> None:
    client = client_for(world, persona)
    url = f"/folders/{folders['inner'].pk}/teams/"
    form = client.get(url)
    saved = post(client, url, {"team": [world.alpha.pk]})
    assert form.status_code == saved.status_code == expected_status(persona)
    granted = FolderGroupObjectPermission.objects.filter(
        content_object=folders["inner"], group=world.alpha.group
    ).exists()
    assert granted is (persona in EDITORS)
    if persona in EDITORS:
        html = form.content.decode()
        assert 'name="team"' in html
        assert "alpha" in html
        assert "Teams allowed on “shared” see it too." in html


@pytest.mark.parametrize("persona", PERSONAS)
def test_moving_datasets_is_for_editors_of_datasets_and_folder(
    world: World,
    datasets: dict[str, Dataset],
    folders: dict[str, Folder],
    persona: str,
) -> None:
    response = post(
        client_for(world, persona),
        "/datasets/move/",
        {"datasets": ["lab/private", "lab/broken"], "folder": folders["inner"].pk},
    )
    assert response.status_code == expected_status(persona)
    moved = set(
        Dataset.objects.filter(folder=folders["inner"]).values_list("name", flat=True)
    )
    if persona in EDITORS:
        assert moved == {"private", "broken"}
        assert response.json()["message"] == "Moved 2 datasets to “inner”."
    else:
        assert moved == set()


@pytest.mark.parametrize("persona", PERSONAS)
def test_editing_tags_is_for_editors_of_the_dataset(
    world: World, datasets: dict[str, Dataset], persona: str
) -> None:
    response = client_for(world, persona).post(
        "/datasets/lab/private/tags/", {"add": "cortex"}, headers=HTMX
    )
    if persona == "anonymous":
        # htmx requests get a full-page redirect to the login instead of a 302.
        assert response["HX-Redirect"].startswith("/login/")
    else:
        assert response.status_code == expected_status(persona)
    tags = set(datasets["private"].tags.values_list("name", flat=True))
    assert tags == ({"cortex"} if persona in EDITORS else set())
    if persona in EDITORS:
        html = response.content.decode()
        assert 'aria-label="Remove tag cortex"' in html
        assert "datasets-moved" in json.loads(response["HX-Trigger"])


@pytest.mark.parametrize(
    "url",
    [
        "/folders/new/",
        "/folders/1/rename/",
        "/folders/1/move/",
        "/folders/1/delete/",
        "/datasets/move/",
        "/datasets/lab/private/tags/",
    ],
)
def test_changes_need_post_and_the_csrf_token(world: World, url: str) -> None:
    assert client_for(world, "admin").get(url).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(world.users["admin"])
    assert strict.post(url, headers=JSON).status_code == 403


# ---- Bad input: the action's message, nothing half-saved ----


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a/b", "Name must not contain '/' or '\\'."),
        ("", "Name must have 1 to 255 characters."),
        ("x" * 256, "Name must have 1 to 255 characters."),
        ("inner", "A folder named 'inner' already exists in 'shared'."),
        ("..", "'.' and '..' are not folder names."),
    ],
)
def test_bad_folder_names_are_refused_with_the_actions_message(
    world: World, folders: dict[str, Folder], name: str, message: str
) -> None:
    client = client_for(world, "admin")
    before = Folder.objects.count()
    response = post(
        client, "/folders/new/", {"parent": folders["shared"].pk, "name": name}
    )
    assert response.status_code == 400
    assert response.json() == {"error": message, "field": "name"}
    renamed = post(client, f"/folders/{folders['a'].pk}/rename/", {"name": name})
    assert renamed.status_code == 400
    assert renamed.json()["error"] == message
    assert Folder.objects.count() == before
    folders["a"].refresh_from_db()
    assert folders["a"].name == "a"


def test_junk_and_unknown_parents_are_400_and_404(
    world: World, folders: dict[str, Folder]
) -> None:
    client = client_for(world, "admin")
    junk = post(client, "/folders/new/", {"parent": "12abc", "name": "x"})
    assert junk.status_code == 400
    assert junk.json() == {
        "error": "Parent folder must be a folder id.",
        "field": "parent",
    }
    assert post(client, "/folders/new/", {"name": "x"}).status_code == 400
    missing = post(client, "/folders/new/", {"parent": 10**9, "name": "x"})
    assert missing.status_code == 404
    foreign = post(
        client, "/folders/new/", {"parent": folders["other_root"].pk, "name": "x"}
    )
    assert foreign.status_code == 404
    assert post(client, "/folders/999999/rename/", {"name": "y"}).status_code == 404


def test_a_folder_cannot_move_into_its_own_subfolder(
    world: World, folders: dict[str, Folder]
) -> None:
    response = post(
        client_for(world, "admin"),
        f"/folders/{folders['shared'].pk}/move/",
        {"parent": folders["inner"].pk},
    )
    assert response.status_code == 400
    assert response.json()["error"] == (
        "A folder cannot be moved into itself or its subfolders."
    )
    folders["shared"].refresh_from_db()
    assert folders["shared"].parent_id == folders["root"].pk


def test_the_root_cannot_be_renamed_moved_or_deleted(
    world: World, folders: dict[str, Folder]
) -> None:
    client = client_for(world, "admin")
    root = folders["root"].pk
    assert post(client, f"/folders/{root}/rename/", {"name": "x"}).status_code == 400
    moved = post(client, f"/folders/{root}/move/", {"parent": folders["a"].pk})
    assert moved.status_code == 400
    assert post(client, f"/folders/{root}/delete/").json()["error"] == (
        "The root folder cannot be deleted."
    )


def test_deleting_a_folder_with_content_is_a_409_saying_what_is_inside(
    world: World, datasets: dict[str, Dataset], folders: dict[str, Folder]
) -> None:
    do_update_dataset(datasets["hidden"], {"folder": folders["b"]})
    client = client_for(world, "admin")
    shared = post(client, f"/folders/{folders['shared'].pk}/delete/")
    assert shared.status_code == 409
    assert shared.json()["error"] == (
        "Folder 'shared' is not empty: 3 subfolder(s), 0 dataset(s); "
        "move or delete them first."
    )
    holding = post(client, f"/folders/{folders['b'].pk}/delete/")
    assert holding.status_code == 409
    assert "1 dataset(s)" in holding.json()["error"]
    assert Folder.objects.filter(pk=folders["b"].pk).exists()


def test_teams_of_other_organizations_and_junk_are_refused(
    world: World, folders: dict[str, Folder]
) -> None:
    foreign = do_create_team(world.other, "beta")
    client = client_for(world, "admin")
    url = f"/folders/{folders['a'].pk}/teams/"
    refused = post(client, url, {"team": [world.alpha.pk, foreign.pk]})
    assert refused.status_code == 400
    assert refused.json() == {
        "error": f"No such teams: {foreign.pk}.",
        "field": "allowed_teams",
    }
    assert post(client, url, {"team": ["x"]}).status_code == 400
    assert not FolderGroupObjectPermission.objects.filter(
        content_object=folders["a"]
    ).exists()
    # An empty choice takes every team away.
    post(client, url, {"team": [world.alpha.pk]})
    cleared = post(client, url)
    assert cleared.json()["message"] == "Folder “a” is now allowed to: no team."


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ({"folder": 1}, 400),
        ({"datasets": ["noslash"], "folder": 1}, 400),
        ({"datasets": ["lab/private"], "folder": "x"}, 400),
        ({"datasets": ["lab/private", "lab/nonexistent"], "folder": None}, 404),
        ({"datasets": ["other/other_private"], "folder": None}, 404),
    ],
)
def test_moving_datasets_refuses_bad_input_and_moves_nothing(
    world: World,
    datasets: dict[str, Dataset],
    folders: dict[str, Folder],
    data: dict[str, Any],
    status: int,
) -> None:
    if data.get("folder") is None:
        data["folder"] = folders["inner"].pk
    response = post(client_for(world, "admin"), "/datasets/move/", data)
    assert response.status_code == status
    assert response.json()["error"]
    assert not Dataset.objects.filter(folder=folders["inner"]).exists()


def test_a_team_manager_cannot_move_what_only_members_see(
    world: World, datasets: dict[str, Dataset], folders: dict[str, Folder]
) -> None:
    # "public" is visible to everyone but not allowed to alpha: not theirs to move.
    response = post(
        client_for(world, "team_manager"),
        "/datasets/move/",
        {"datasets": ["lab/private", "lab/public"], "folder": folders["inner"].pk},
    )
    assert response.status_code == 403
    assert response.json()["error"] == "You may not move lab/public."
    assert not Dataset.objects.filter(folder=folders["inner"]).exists()


def test_moving_into_another_organizations_folder_is_refused(
    world: World, datasets: dict[str, Dataset], folders: dict[str, Folder]
) -> None:
    response = post(
        client_for(world, "superuser"),
        "/datasets/move/",
        {"datasets": ["lab/private"], "folder": folders["other_root"].pk},
    )
    assert response.status_code == 400
    assert response.json()["error"] == (
        "Datasets not in the folder's organization: private."
    )


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("x" * 65, "A tag has 1 to 64 characters"),
        ("bad\x01tag", "Control characters in tag"),
    ],
)
def test_bad_tags_show_the_apis_message_next_to_the_field(
    world: World, datasets: dict[str, Dataset], tag: str, message: str
) -> None:
    datasets["private"].tags.set([])
    response = client_for(world, "admin").post(
        "/datasets/lab/private/tags/", {"add": tag}, headers=HTMX
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="tag-error"' in html
    assert message in html
    assert 'aria-invalid="true"' in html
    assert not datasets["private"].tags.exists()


def test_tags_are_added_removed_and_offered_from_the_organization(
    world: World, datasets: dict[str, Dataset]
) -> None:
    do_update_dataset(datasets["public"], {"tags": ["em", "mouse"]})
    client = client_for(world, "admin")
    url = "/datasets/lab/private/tags/"
    client.post(url, {"add": "  em "}, headers=HTMX)
    client.post(url, {"add": "retina"}, headers=HTMX)
    client.post(url, {"add": "em"}, headers=HTMX)
    assert sorted(datasets["private"].tags.values_list("name", flat=True)) == [
        "em",
        "retina",
    ]
    removed = client.post(url, {"remove": "em"}, headers=HTMX)
    assert list(datasets["private"].tags.values_list("name", flat=True)) == ["retina"]
    html = removed.content.decode()
    # Suggestions: the organization's tags, except the dataset's own.
    assert '<option value="mouse">' in html
    assert '<option value="em">' in html
    assert '<option value="retina">' not in html
    # Without JavaScript: back to the dataset page.
    plain = client.post(url, {"add": "zebra"})
    assert plain.status_code == 302
    assert plain["Location"] == "/datasets/lab/private/"


def test_the_details_offer_tag_editing_to_editors_only(
    world: World, datasets: dict[str, Dataset]
) -> None:
    do_update_dataset(datasets["private"], {"tags": ["em"]})
    for persona, editable in (
        ("admin", True),
        ("team_manager", True),
        ("member", False),
    ):
        html = (
            client_for(world, persona)
            .get("/datasets/lab/private/", headers=HTMX)
            .content.decode()
        )
        assert ">em<" in html, persona
        assert ('id="tag-input"' in html) is editable, persona


# ---- The tree ----


def test_the_tree_nests_folders_by_name_and_marks_what_may_be_changed(
    world: World, folders: dict[str, Folder]
) -> None:
    html = client_for(world, "admin").get("/").content.decode()
    assert folder_names(html) == [
        "The Lab",
        "private_zone",
        "shared",
        "a",
        "b",
        "inner",
    ]
    assert html.count("data-folder-menu") == 6
    # Nested lists: "a" sits two levels below the root.
    assert 'data-folder-name="a" data-depth="2"' in html


def test_members_see_breadcrumbs_greyed_and_no_edit_controls(
    world: World, datasets: dict[str, Dataset], folders: dict[str, Folder]
) -> None:
    # Allowed to the member directly, in a folder not shared with them.
    do_update_dataset(datasets["private"], {"folder": folders["private_zone"]})
    html = client_for(world, "member").get("/").content.decode()
    assert folder_names(html) == [
        "The Lab",
        "private_zone",
        "shared",
        "a",
        "b",
        "inner",
    ]
    zone = html.split('data-folder-name="private_zone"', 1)[1].split("</li>", 1)[0]
    assert "is-breadcrumb" in zone
    assert "data-folder-link" not in zone
    assert 'href="/?folder=' + str(folders["shared"].pk) + '"' in html
    for control in (
        "data-folder-menu",
        "draggable",
        "data-editable",
        "data-move-selection",
    ):
        assert control not in html, control
    assert "Scan disk" not in html


def test_a_member_without_team_sees_the_root_only(world: World, folders: Any) -> None:
    html = client_for(world, "member_without_team").get("/").content.decode()
    assert folder_names(html) == ["The Lab"]


def test_the_tree_fragment_redraws_the_tree(world: World, folders: Any) -> None:
    response = client_for(world, "team_manager").get("/folders/")
    html = response.content.decode()
    assert html.lstrip().startswith('<nav id="folder-tree"')
    # The root is a breadcrumb for a team manager: only "shared" and below are theirs.
    assert html.count("data-folder-menu") == 4
    assert "Public datasets" in Client().get("/folders/").content.decode()


def _tree_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/folders/")
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("persona", ["admin", "member", "team_manager"])
def test_the_tree_takes_the_same_queries_for_10_and_100_folders(
    world: World, folders: dict[str, Folder], persona: str
) -> None:
    client = client_for(world, persona)

    def grow(total: int) -> None:
        while Folder.objects.filter(organization=world.lab).count() < total:
            count = Folder.objects.count()
            parent = folders["shared"] if count % 2 else folders["a"]
            do_create_folder(parent, f"f{count:03d}")

    grow(10)
    _tree_queries(client)
    few = _tree_queries(client)
    grow(100)
    many = _tree_queries(client)
    html = client.get("/folders/").content.decode()
    # All but "private_zone" (no team) for those who see through team alpha.
    assert len(folder_names(html)) == (100 if persona == "admin" else 99)
    # Session, user, organizations, and the tree with its access in one query.
    assert few == many, (few, many)
    assert many <= 4


def test_home_with_a_folder_takes_the_same_queries_for_few_and_many(
    world: World, folders: dict[str, Folder]
) -> None:
    client = client_for(world, "member")
    url = f"/?folder={folders['shared'].pk}&recursive=1&tag=em"

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    for index in range(3):
        dataset = world.dataset(f"few{index}", folder=folders["inner"])
        do_update_dataset(dataset, {"tags": ["em"]})
    queries()
    few = queries()
    for index in range(40):
        dataset = world.dataset(f"many{index:02d}", folder=folders["a"])
        do_update_dataset(dataset, {"tags": ["em", f"t{index}"]})
        do_create_folder(folders["b"], f"sub{index:02d}")
    assert few == queries()


# ---- Filters ----


def test_folder_filter_with_and_without_subfolders(
    world: World, datasets: dict[str, Dataset], folders: dict[str, Folder]
) -> None:
    do_update_dataset(datasets["private"], {"folder": folders["shared"]})
    do_update_dataset(datasets["broken"], {"folder": folders["inner"]})
    client = client_for(world, "admin")
    shared = folders["shared"].pk
    assert listed(client.get("/", {"folder": shared})) == {"private"}
    assert listed(client.get("/", {"folder": shared, "recursive": "1"})) == {
        "private",
        "broken",
    }
    assert listed(client.get("/", {"folder": folders["root"].pk})) == {
        "public",
        "hidden",
    }
    html = client.get("/", {"folder": shared}).content.decode()
    assert 'aria-current="location">shared</li>' in html
    assert "<li>The Lab</li>" in html
    # Junk and folders out of reach are ignored: all datasets.
    everything = {"private", "public", "hidden", "broken"}
    assert listed(client.get("/", {"folder": "junk"})) == everything
    assert listed(client.get("/", {"folder": folders["other_root"].pk})) == everything
    member = client_for(world, "member_without_team")
    assert listed(member.get("/", {"folder": shared})) == {"public"}


def test_tags_filter_all_of_them_together_with_search_and_folder(
    world: World, datasets: dict[str, Dataset], folders: dict[str, Folder]
) -> None:
    do_update_dataset(datasets["private"], {"tags": ["em", "mouse"]})
    do_update_dataset(datasets["public"], {"tags": ["em"]})
    do_update_dataset(datasets["hidden"], {"tags": ["mouse"], "folder": folders["a"]})
    client = client_for(world, "admin")
    assert listed(client.get("/?tag=em")) == {"private", "public"}
    assert listed(client.get("/?tag=em&tag=mouse")) == {"private"}
    assert listed(client.get("/?tag=em&q=pub")) == {"public"}
    assert listed(client.get(f"/?tag=mouse&folder={folders['a'].pk}")) == {"hidden"}
    assert listed(client.get("/?tag=&tag=%20")) == {
        "private",
        "public",
        "hidden",
        "broken",
    }
    html = client.get("/?tag=em").content.decode()
    # The chosen tag is a chip that removes itself; the others are offered.
    assert 'data-tag-remove="em"' in html
    assert '<option value="mouse">mouse (2)</option>' in html
    assert 'name="tag" value="em" form="dataset-search"' in html
    assert "No datasets with this tag" in client.get("/?tag=nothing").content.decode()


def test_table_fragments_push_folder_changes_and_replace_searches(
    world: World, datasets: dict[str, Dataset], folders: dict[str, Folder]
) -> None:
    client = client_for(world, "admin")
    shared = folders["shared"].pk
    pushed = client.get(
        "/",
        {"folder": shared},
        headers={**TABLE, "HX-Current-URL": "http://testserver/"},
    )
    assert pushed["HX-Push-Url"] == f"/?folder={shared}"
    typed = client.get(
        "/",
        {"folder": shared, "q": "pri"},
        headers={**TABLE, "HX-Current-URL": f"http://testserver/?folder={shared}"},
    )
    assert typed["HX-Replace-Url"] == f"/?q=pri&folder={shared}"
    tagged = client.get(
        "/",
        {"folder": shared, "tag": "em"},
        headers={**TABLE, "HX-Current-URL": f"http://testserver/?folder={shared}"},
    )
    assert tagged["HX-Push-Url"] == f"/?folder={shared}&tag=em"


def test_pages_keep_every_filter(world: World, folders: dict[str, Folder]) -> None:
    for index in range(55):
        dataset = world.dataset(f"ds{index:02d}", folder=folders["a"])
        do_update_dataset(dataset, {"tags": ["bulk"]})
    html = (
        client_for(world, "admin")
        .get("/", {"folder": folders["shared"].pk, "recursive": "1", "tag": "bulk"})
        .content.decode()
    )
    assert (
        f'href="/?folder={folders["shared"].pk}&amp;recursive=1&amp;tag=bulk&amp;page=2"'
        in html
    )


# ---- Who sees what ----


def test_anonymous_visitors_see_public_datasets_of_every_organization(
    world: World, datasets: dict[str, Dataset]
) -> None:
    world.dataset("other_public", organization=world.other, is_public=True)
    response = Client().get("/")
    assert response.status_code == 200
    assert listed(response) == {"public", "other_public"}
    html = response.content.decode()
    assert '<span class="technical">other/other_public</span>' in html
    assert ">Log in</a>" in html
    for control in (
        "data-folder-menu",
        "draggable",
        "data-editable",
        "Scan disk",
        "selection-bar",
    ):
        assert control not in html, control
    # Thumbnails without a token: the datastore serves public data to anyone.
    assert "token=" not in html


def test_anonymous_details_of_public_datasets_and_a_login_for_the_rest(
    world: World, datasets: dict[str, Dataset]
) -> None:
    client = Client()
    public = client.get("/datasets/lab/public/", headers=HTMX)
    assert public.status_code == 200
    assert 'id="tag-input"' not in public.content.decode()
    private = client.get("/datasets/lab/private/")
    assert private.status_code == 302
    assert private["Location"] == "/login/?next=/datasets/lab/private/"


def test_anonymous_posts_go_to_the_login_page(
    world: World, folders: dict[str, Folder]
) -> None:
    response = Client().post(
        "/folders/new/", {"parent": folders["root"].pk, "name": "x"}
    )
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert not Folder.objects.filter(name="x").exists()


def test_editors_get_an_import_button_for_datasets_to_review(
    world: World, datasets: dict[str, Dataset]
) -> None:
    world.dataset("to_review", status="needs_review", teams=(world.alpha,))
    button = 'href="/datasets/lab/to_review/import/">Import</a>'
    assert button in client_for(world, "admin").get("/").content.decode()
    assert button in client_for(world, "team_manager").get("/").content.decode()
    member = client_for(world, "member").get("/")
    assert "to_review" not in listed(member)
    assert "/import/" not in member.content.decode()


# ---- Viewer tokens ----


def test_viewer_tokens_are_kept_in_the_session_and_renewed_after_ten_minutes(
    world: World, datasets: dict[str, Dataset], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_000_000.0]
    monkeypatch.setattr(tokens.time, "time", lambda: now[0])
    client = client_for(world, "member")

    def token() -> str:
        html = client.get("/").content.decode()
        found = re.search(r"token=(vxt_[^\"&]+)", html)
        assert found, html
        return unquote(found.group(1))

    first = token()
    now[0] += 9 * 60
    assert token() == first
    now[0] += 2 * 60
    renewed = token()
    assert renewed != first
    assert client.session[tokens.SESSION_KEY]["token"] == renewed


def test_a_cached_token_of_another_user_is_not_reused(world: World) -> None:
    client = client_for(world, "admin")
    session = client.session
    session[tokens.SESSION_KEY] = {
        "user": world.users["member"].pk,
        "token": "vxt_not-yours",
        "issued": 10**12,
    }
    session.save()
    client.get("/")
    assert client.session[tokens.SESSION_KEY]["user"] == world.users["admin"].pk
    assert client.session[tokens.SESSION_KEY]["token"] != "vxt_not-yours"
