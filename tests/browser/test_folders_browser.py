"""Folders, multi-selection, moving, tags and who sees what, in a real Chromium.

An organization of its own (`folders_lab`) on the session's services keeps these
changes away from the other browser tests: an admin, a member of team `imaging`
(allowed on two datasets), six datasets (one public, one waiting for review).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from shared.samples import write_sample_dataset
from tests.e2e.services import Services

from .conftest import VIEWPORT, BrowserWorld, ConsoleWatch, screenshot

pytestmark = pytest.mark.browser

ORGANIZATION = "folders_lab"
ADMIN = "fiona"
MEMBER = "mark"
PASSWORD = "vx-folders-test-passphrase"
DATASETS = ("brain_a", "brain_b", "brain_c", "kidney_e", "liver_d")
NEEDS_REVIEW = "raw_scan"
SHAPE = (48, 48, 16)

_SETUP = """
import sys
from metaserver.accounts.actions import (
    do_add_team_member, do_create_api_token, do_create_organization,
    do_create_team, do_create_user,
)
organization, admin, member, password = sys.argv[1:5]
org = do_create_organization(organization, "Folders Lab")
fiona = do_create_user(admin, password, organization=org, role="admin")
mark = do_create_user(member, password, organization=org, role="member")
team = do_create_team(org, "imaging")
do_create_team(org, "histology")
do_add_team_member(team, mark)
print(team.pk)
print(do_create_api_token(fiona, "folder-tests"))
"""


@dataclass
class FoldersWorld:
    services: Services
    token: str
    team: int
    root: int

    @property
    def url(self) -> str:
        return self.services.metaserver_url

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        with self.services.api(self.token) as client:
            response = client.request(method, path, **kwargs)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def folder(self, name: str, parent: int | None = None) -> int:
        """A folder made through the API (setup only); its id."""
        body = {"name": name, "parent": parent or self.root}
        return int(self.api("POST", "/api/folders/", json=body)["id"])


def set_up_folders_world(services: Services) -> FoldersWorld:
    out = services.django(_SETUP, ORGANIZATION, ADMIN, MEMBER, PASSWORD)
    team, token = out.strip().splitlines()[-2:]
    for name in (*DATASETS, NEEDS_REVIEW):
        write_sample_dataset(services.binary_data, ORGANIZATION, name, shape=SHAPE)
    # Without its properties file the scan infers one and asks for a review.
    (
        services.binary_data
        / ORGANIZATION
        / NEEDS_REVIEW
        / "datasource-properties.json"
    ).unlink()
    services.scan(ORGANIZATION, token=token)
    for name in DATASETS:
        services.dataset(name, "active", organization=ORGANIZATION, token=token)
    services.dataset(
        NEEDS_REVIEW, "needs_review", organization=ORGANIZATION, token=token
    )
    world = FoldersWorld(services, token, int(team), root=0)
    folders = world.api("GET", "/api/folders/", params={"organization": ORGANIZATION})
    world.root = next(f["id"] for f in folders if f["parent"] is None)
    for name in ("brain_a", "brain_b"):
        world.api(
            "PATCH",
            f"/api/datasets/{ORGANIZATION}/{name}/",
            json={"allowed_teams": [world.team]},
        )
    world.api(
        "PATCH", f"/api/datasets/{ORGANIZATION}/kidney_e/", json={"is_public": True}
    )
    return world


@pytest.fixture(scope="module")
def folders_world(browser_world: BrowserWorld) -> FoldersWorld:
    return set_up_folders_world(browser_world.services)


def sign_in(page: Page, world: FoldersWorld, username: str = ADMIN) -> None:
    page.goto(world.url + "/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Datasets")).to_be_visible()


def names(page: Page) -> list[str]:
    return [
        text.strip()
        for text in page.locator("tr.dataset-row .dataset-link").all_inner_texts()
    ]


def row(page: Page, name: str) -> Locator:
    return page.locator(f'tr.dataset-row[data-dataset="{ORGANIZATION}/{name}"]')


def tree_row(page: Page, name: str) -> Locator:
    return page.locator(
        ".folder-tree .tree-row", has=page.locator(f'.folder-name:text-is("{name}")')
    )


def wait_for_thumbnails(page: Page) -> None:
    # Thumbnails load lazily: only those in the window are asked for.
    page.wait_for_function(
        "() => [...document.querySelectorAll('img.thumb')]"
        ".filter(img => img.getBoundingClientRect().top < window.innerHeight)"
        ".every(img => img.complete && img.naturalWidth > 0)",
        timeout=30_000,  # each one is rendered by the datastore; CI has 2 cores
    )


def test_new_folder_from_the_context_menu_then_drag_a_dataset_into_it(
    page: Page, folders_world: FoldersWorld, console: ConsoleWatch
) -> None:
    sign_in(page, folders_world)
    wait_for_thumbnails(page)  # private ones too: the viewer token works
    tree_row(page, "Folders Lab").click(button="right")
    menu = page.get_by_role("menu")
    expect(menu.get_by_role("menuitem")).to_have_text(
        ["New folder", "Edit allowed teams"]
    )
    screenshot(page, "folders-01-context-menu")
    menu.get_by_role("menuitem", name="New folder").click()
    name = page.get_by_label("Name of the new folder in Folders Lab")
    expect(name).to_be_focused()
    name.fill("EM/2024")
    name.press("Enter")
    expect(page.locator(".folder-editor .field-error")).to_have_text(
        "Name must not contain '/' or '\\'."
    )
    screenshot(page, "folders-02-new-folder-error")
    name.fill("Cortex")
    name.press("Enter")
    expect(page.locator(".toast")).to_contain_text("Folder “Cortex” created.")
    cortex = tree_row(page, "Cortex")
    expect(cortex).to_be_visible()
    expect(cortex.locator(".folder-link")).to_be_focused()

    row(page, "brain_c").drag_to(cortex)
    expect(page.locator(".toast", has_text="Moved 1 dataset")).to_contain_text(
        "Moved 1 dataset to “Cortex”."
    )
    cortex.locator(".folder-link").click()
    expect(page).to_have_url(re.compile(r"/\?folder=\d+$"))
    expect(page.locator("tr.dataset-row")).to_have_count(1)
    assert names(page) == ["brain_c"]
    expect(cortex.locator(".folder-link")).to_have_attribute("aria-current", "page")
    expect(page.locator(".folder-path")).to_contain_text("Cortex")
    # Back goes to all datasets again.
    page.go_back()
    expect(page).to_have_url(folders_world.url + "/")
    expect(page.locator("tr.dataset-row")).to_have_count(6)
    # Chromium logs every refused request; these were expected.
    console.expect(r"status of 400 .*/folders/new/")


def test_rename_move_and_delete_folders_show_the_servers_answers(
    page: Page, folders_world: FoldersWorld, console: ConsoleWatch
) -> None:
    outer = folders_world.folder("Outer")
    folders_world.folder("Inner", parent=outer)
    folders_world.folder("Spare")
    sign_in(page, folders_world)
    # Keyboard: the "⋯" button opens the same menu.
    tree_row(page, "Spare").locator(".folder-link").focus()
    page.keyboard.press("Tab")
    expect(tree_row(page, "Spare").locator(".folder-more")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("menuitem", name="New folder")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("menuitem", name="Rename")).to_be_focused()
    page.keyboard.press("Enter")
    rename = page.get_by_label("New name of folder Spare")
    rename.fill("Outer")
    rename.press("Enter")
    expect(page.locator(".folder-editor .field-error")).to_contain_text(
        "already exists"
    )
    rename.fill("Archive")
    rename.press("Enter")
    expect(tree_row(page, "Archive")).to_be_visible()
    # A folder into its own subfolder: the server's 400 as a toast.
    tree_row(page, "Outer").drag_to(tree_row(page, "Inner"))
    expect(page.locator(".toast-error")).to_contain_text(
        "cannot be moved into itself or its subfolders"
    )
    tree_row(page, "Outer").drag_to(tree_row(page, "Archive"))
    expect(page.locator(".toast-success", has_text="moved into")).to_be_visible()
    archive = page.locator('.tree-item[data-folder-name="Archive"]')
    expect(archive.locator(".tree-group .folder-name")).to_have_text(["Outer", "Inner"])
    # Collapsing is remembered across reloads.
    archive.get_by_role("button", name="Collapse Archive").click()
    expect(tree_row(page, "Outer")).to_be_hidden()
    page.reload()
    expect(tree_row(page, "Outer")).to_be_hidden()
    archive.get_by_role("button", name="Expand Archive").click()
    # Deleting a folder that is not empty: the 409 message in the dialog.
    tree_row(page, "Outer").click(button="right")
    page.get_by_role("menuitem", name="Delete").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Delete folder “Outer”?")
    dialog.get_by_role("button", name="Delete folder").click()
    expect(dialog.get_by_role("alert")).to_contain_text("is not empty: 1 subfolder(s)")
    dialog.get_by_role("button", name="Cancel").click()
    tree_row(page, "Inner").click(button="right")
    page.get_by_role("menuitem", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete folder").click()
    expect(page.locator(".toast-success", has_text="Inner")).to_be_visible()
    expect(tree_row(page, "Inner")).to_have_count(0)
    # Allowed teams: a dialog with the organization's teams.
    tree_row(page, "Archive").click(button="right")
    page.get_by_role("menuitem", name="Edit allowed teams").click()
    teams = page.get_by_role("dialog")
    teams.get_by_label("histology").check()
    screenshot(page, "folders-03-teams-dialog")
    teams.get_by_role("button", name="Save teams").click()
    expect(page.locator(".toast-success", has_text="histology")).to_be_visible()
    console.expect(r"status of 400 .*/rename/")
    console.expect(r"status of 400 .*/move/")
    console.expect(r"status of 409 .*/delete/")


def test_ctrl_and_shift_click_select_three_datasets_and_move_them_at_once(
    page: Page, folders_world: FoldersWorld
) -> None:
    folders_world.folder("Batch")
    sign_in(page, folders_world)
    row(page, "brain_a").locator(".col-size").click()
    expect(page.locator("#details h2")).to_have_text("brain_a")
    row(page, "brain_c").locator(".col-size").click(modifiers=["Shift"])
    bar = page.get_by_role("toolbar", name="Selected datasets")
    expect(bar).to_contain_text("3 selected")
    row(page, "brain_b").locator(".col-size").click(modifiers=["Control"])
    row(page, "liver_d").locator(".col-size").click(modifiers=["Control"])
    expect(bar).to_contain_text("3 selected")
    expect(page.locator("tr.dataset-row.is-selected")).to_have_count(3)
    expect(row(page, "brain_b")).not_to_have_class(re.compile("is-selected"))
    screenshot(page, "folders-04-selection-bar")
    # Keyboard: Space toggles the focused row, Escape clears.
    row(page, "kidney_e").focus()
    page.keyboard.press("Space")
    expect(bar).to_contain_text("4 selected")
    page.keyboard.press("Space")
    expect(bar).to_contain_text("3 selected")
    bar.get_by_role("button", name="Move to folder…").click()
    picker = page.get_by_role("dialog")
    expect(picker.get_by_role("heading")).to_have_text("Move 3 datasets to…")
    picker.get_by_label("Batch").check()
    screenshot(page, "folders-05-folder-picker")
    picker.get_by_role("button", name="Move here").click()
    expect(page.locator(".toast-success", has_text="Moved 3")).to_contain_text(
        "Moved 3 datasets to “Batch”."
    )
    expect(bar).to_be_hidden()
    tree_row(page, "Batch").locator(".folder-link").click()
    expect(page.locator("tr.dataset-row")).to_have_count(3)
    assert names(page) == ["brain_a", "brain_c", "liver_d"]
    # Shift+Arrow extends from the focused row, Escape clears.
    row(page, "brain_a").locator(".col-size").click()
    page.keyboard.press("Shift+ArrowDown")
    page.keyboard.press("Shift+ArrowDown")
    expect(bar).to_contain_text("3 selected")
    page.keyboard.press("Escape")
    expect(bar).to_be_hidden()
    expect(page.locator("tr.dataset-row.is-selected")).to_have_count(0)


def test_tags_added_in_the_details_filter_the_table(
    page: Page, folders_world: FoldersWorld, console: ConsoleWatch
) -> None:
    sign_in(page, folders_world)
    row(page, "kidney_e").locator(".col-size").click()
    details = page.locator("#details")
    expect(details.get_by_role("heading", name="kidney_e")).to_be_visible()
    tag_input = details.get_by_label("Add a tag")
    tag_input.fill("renal")
    tag_input.press("Enter")
    expect(details.get_by_role("button", name="Remove tag renal")).to_be_visible()
    expect(details.get_by_label("Add a tag")).to_be_focused()
    details.get_by_label("Add a tag").fill("EM")
    details.get_by_label("Add a tag").press("Enter")
    expect(row(page, "kidney_e").locator(".col-tags .chip")).to_have_text(
        ["EM", "renal"]
    )
    details.get_by_role("button", name="Remove tag EM").click()
    expect(row(page, "kidney_e").locator(".col-tags .chip")).to_have_text(["renal"])
    row(page, "brain_b").locator(".col-size").click()
    expect(details.get_by_role("heading", name="brain_b")).to_be_visible()
    details.get_by_label("Add a tag").fill("x" * 70)
    details.get_by_label("Add a tag").evaluate(
        "input => input.removeAttribute('maxlength')"
    )
    details.get_by_label("Add a tag").fill("x" * 70)
    details.get_by_label("Add a tag").press("Enter")
    expect(details.get_by_role("alert")).to_contain_text("A tag has 1 to 64 characters")
    details.get_by_label("Add a tag").fill("renal")
    details.get_by_label("Add a tag").press("Enter")
    expect(row(page, "brain_b").locator(".col-tags .chip")).to_have_text(["renal"])
    # Filter: choose the tag from the list, combined with a search.
    page.get_by_label("Filter by tag").select_option("renal")
    expect(page).to_have_url(re.compile(r"\?tag=renal$"))
    expect(page.locator("tr.dataset-row")).to_have_count(2)
    page.get_by_role("searchbox", name="Search datasets").fill("kid")
    expect(page.locator("tr.dataset-row")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"\?q=kid&tag=renal$"))
    screenshot(page, "folders-06-tag-filter")
    page.get_by_role("searchbox", name="Search datasets").fill("")
    expect(page.locator("tr.dataset-row")).to_have_count(2)
    page.get_by_role("link", name="Remove the filter renal").click()
    expect(page.locator("tr.dataset-row")).to_have_count(6)
    # A tag chip in the table filters too.
    row(page, "brain_b").locator(".col-tags .chip", has_text="renal").click()
    expect(page.locator("tr.dataset-row")).to_have_count(2)
    expect(page).to_have_url(re.compile(r"\?tag=renal$"))
    console.expect(r"status of 400 .*/tags/")


def test_a_member_sees_allowed_datasets_and_no_edit_actions(
    page: Page, folders_world: FoldersWorld
) -> None:
    sign_in(page, folders_world, MEMBER)
    expect(page.locator("tr.dataset-row")).to_have_count(3)
    assert sorted(names(page)) == ["brain_a", "brain_b", "kidney_e"]
    wait_for_thumbnails(page)
    expect(page.locator(".folder-more")).to_have_count(0)
    expect(page.locator("[draggable=true]")).to_have_count(0)
    expect(page.get_by_role("button", name="Scan disk for new datasets")).to_have_count(
        0
    )
    expect(page.get_by_role("button", name="Import")).to_have_count(0)
    page.locator(".folder-tree .tree-row").nth(1).click(button="right")
    expect(page.get_by_role("menu")).to_have_count(0)
    page.keyboard.press("Escape")
    row(page, "brain_b").locator(".col-size").click()
    details = page.locator("#details")
    expect(details.get_by_role("heading", name="brain_b")).to_be_visible()
    expect(details.locator(".tag-editor")).to_be_visible()
    expect(details.get_by_label("Add a tag")).to_have_count(0)
    expect(details.get_by_role("link", name="Settings")).to_have_count(0)
    screenshot(page, "folders-07-member-view")


@pytest.fixture
def anonymous_page(browser: Browser, console: ConsoleWatch) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.on("console", console.on_console)
    tab.on("pageerror", console.on_page_error)
    try:
        yield tab
    finally:
        context.close()
    assert console.errors == [], "\n".join(console.errors)


def test_an_anonymous_visitor_sees_public_datasets_only(
    anonymous_page: Page, folders_world: FoldersWorld
) -> None:
    page = anonymous_page
    page.goto(folders_world.url + "/")
    expect(page.get_by_role("heading", name="Datasets")).to_be_visible()
    kidney = row(page, "kidney_e")
    expect(kidney).to_be_visible()
    expect(kidney).to_contain_text(f"{ORGANIZATION}/kidney_e")
    for name in (*DATASETS, NEEDS_REVIEW):
        if name != "kidney_e":
            expect(row(page, name)).to_have_count(0)
    expect(page.get_by_role("link", name="Log in").first).to_be_visible()
    expect(page.locator(".folder-more, [draggable=true]")).to_have_count(0)
    wait_for_thumbnails(page)
    kidney.locator(".col-size").click()
    expect(page.locator("#details h2")).to_have_text("kidney_e")
    expect(page.locator("#details").get_by_label("Add a tag")).to_have_count(0)
    screenshot(page, "folders-08-anonymous-view")
    page.get_by_role("link", name="Log in").first.click()
    expect(page).to_have_url(re.compile(r"/login/"))


def test_editors_get_an_import_button_for_datasets_to_review(
    page: Page, folders_world: FoldersWorld
) -> None:
    sign_in(page, folders_world)
    review = row(page, NEEDS_REVIEW)
    expect(review.locator(".badge")).to_have_text("Needs review")
    expect(review.get_by_role("link", name="Import")).to_have_attribute(
        "href", f"/datasets/{ORGANIZATION}/{NEEDS_REVIEW}/import/"
    )
    page.set_viewport_size({"width": 1440, "height": 900})
    wait_for_thumbnails(page)
    widths = page.evaluate(
        """() => [document.documentElement.scrollWidth, window.innerWidth,
                  document.querySelector("main").scrollWidth,
                  document.querySelector("main").clientWidth]"""
    )
    assert widths[0] <= widths[1], widths
    assert widths[2] <= widths[3], widths
    screenshot(page, "folders-09-admin-1440")
