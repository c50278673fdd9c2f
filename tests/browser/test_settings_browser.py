"""Dataset settings and the import screen in a real Chromium, against real services.

An organization of its own (`settings_lab`, admin `sam`) keeps these datasets out
of the other browser tests' lists. The datasets are real folders in the
datastore's binaryData: sample datasets with properties, and one written by the
webknossos library without properties (to import).
"""

from __future__ import annotations

import importlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect

from shared.samples import write_sample_dataset
from tests.e2e.services import Services

from .conftest import VIEWPORT, BrowserWorld, ConsoleWatch, screenshot

pytestmark = pytest.mark.browser

ORG = "settings_lab"
USER = "sam"
PASSWORD = "vx-settings-browser-passphrase"
SHAPE = (64, 64, 32)
SAMPLES = ("cortex", "voxels", "changing", "doomed")
PROPERTIES = "datasource-properties.json"

_SETUP = """
import sys
from metaserver.accounts.actions import (
    do_create_api_token, do_create_organization, do_create_team, do_create_user,
)
organization, username, password = sys.argv[1:4]
org = do_create_organization(organization, "Settings Lab")
user = do_create_user(username, password, organization=org, role="admin")
do_create_team(org, "imaging")
do_create_team(org, "analysis")
print(do_create_api_token(user, "browser-tests"))
"""


@dataclass
class SettingsWorld:
    services: Services
    token: str

    @property
    def url(self) -> str:
        return self.services.metaserver_url

    def folder(self, name: str) -> Path:
        return self.services.binary_data / ORG / name

    def properties(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads((self.folder(name) / PROPERTIES).read_text())
        return found

    def record(self, name: str) -> dict[str, Any]:
        return self.services.dataset(name, organization=ORG, token=self.token)

    def wait_for(self, name: str, check: Any, what: str) -> dict[str, Any]:
        """The dataset's record once `check(record)` holds (reports are async)."""
        deadline = time.monotonic() + 20
        while True:
            record = self.record(name)
            if check(record):
                return record
            assert time.monotonic() < deadline, f"{name}: never {what}: {record}"
            time.sleep(0.2)


def _write_raw_wkw(folder: Path) -> None:
    """A WKW dataset as the webknossos library writes it, minus its properties."""
    # Imported here: it is slow to load and only this fixture needs it.
    wk: Any = importlib.import_module("webknossos")

    dataset = wk.Dataset(folder, voxel_size=(11.24, 11.24, 28))
    box = wk.BoundingBox((0, 0, 0), SHAPE)
    color = (np.arange(np.prod(SHAPE)) % 251).astype(np.uint8).reshape(SHAPE)
    layers: tuple[tuple[str, str, np.ndarray, dict[str, Any]], ...] = (
        ("color", wk.COLOR_CATEGORY, color, {}),
        (
            "segmentation",
            wk.SEGMENTATION_CATEGORY,
            (color % 10).astype(np.uint32),
            {"largest_segment_id": 9},
        ),
    )
    for name, category, data, extra in layers:
        layer = dataset.add_layer(
            name,
            category,
            dtype=data.dtype,
            data_format="wkw",
            bounding_box=box,
            **extra,
        )
        mag = layer.add_mag(1, chunk_shape=32, shard_shape=64)
        mag.write(data, absolute_offset=(0, 0, 0))
    (folder / PROPERTIES).unlink()


@pytest.fixture(scope="module")
def world(browser_world: BrowserWorld) -> SettingsWorld:
    services = browser_world.services
    token = services.django(_SETUP, ORG, USER, PASSWORD).strip().splitlines()[-1]
    (services.binary_data / ORG).mkdir(exist_ok=True)
    for name in SAMPLES:
        write_sample_dataset(services.binary_data, ORG, name, shape=SHAPE)
    _write_raw_wkw(services.binary_data / ORG / "raw_em")
    services.scan(ORG, token=token)
    for name in SAMPLES:
        services.dataset(name, "active", organization=ORG, token=token)
    services.dataset("raw_em", "needs_review", organization=ORG, token=token)
    return SettingsWorld(services, token)


def sign_in(page: Page, world: SettingsWorld) -> None:
    page.goto(world.url + "/login/")
    page.get_by_label("Username").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(world.url + "/")


def settings(page: Page, world: SettingsWorld, name: str, tab: str = "data") -> None:
    page.goto(f"{world.url}/datasets/{ORG}/{name}/settings/?tab={tab}")


def assert_fits_sideways(page: Page) -> None:
    widths = page.evaluate(
        """() => {
            const main = document.querySelector("main");
            return [document.documentElement.scrollWidth, window.innerWidth,
                    main.scrollWidth, main.clientWidth];
        }"""
    )
    assert widths[0] <= widths[1], widths
    assert widths[2] <= widths[3], widths


def toast(page: Page, text: str) -> None:
    expect(page.locator(".toast", has_text=text)).to_be_visible()


def test_every_tab_by_mouse_and_keyboard(page: Page, world: SettingsWorld) -> None:
    sign_in(page, world)
    page.locator("tr.dataset-row", has_text="cortex").locator(".col-size").click()
    page.locator("#details").get_by_role("link", name="Settings").click()
    expect(page).to_have_url(re.compile(rf"/datasets/{ORG}/cortex/settings/$"))
    tabs = page.get_by_role("tablist", name="Dataset settings")
    expect(tabs.get_by_role("tab")).to_have_text(
        ["Data", "Sharing & Permissions", "Metadata", "View Configuration", "Delete"]
    )
    data_tab = page.get_by_role("tab", name="Data", exact=True)
    expect(data_tab).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("tabpanel")).to_contain_text("Voxel size")
    expect(page.get_by_label("Voxel size x")).to_have_value("11.24")
    expect(page.get_by_label("Unit")).to_have_value("nanometer")
    expect(page.get_by_label("Layer segmentation Largest segment id")).to_be_visible()
    screenshot(page, "settings-01-data")
    assert_fits_sideways(page)
    # Keyboard: one tab stop, arrows move and open the next tab, focus follows.
    data_tab.focus()
    page.keyboard.press("ArrowRight")
    sharing = page.get_by_role("tab", name="Sharing & Permissions")
    expect(sharing).to_have_attribute("aria-selected", "true")
    expect(sharing).to_be_focused()
    expect(page).to_have_url(re.compile(r"\?tab=sharing$"))
    expect(page).to_have_title(re.compile("^Sharing & Permissions · Settings of"))
    expect(page.get_by_role("tabpanel")).to_contain_text("Teams allowed")
    screenshot(page, "settings-02-sharing")
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Metadata")).to_be_focused()
    expect(page.get_by_label("Display name")).to_be_visible()
    screenshot(page, "settings-03-metadata")
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="View Configuration")).to_be_focused()
    expect(page.get_by_label("Zoom")).to_be_visible()
    screenshot(page, "settings-04-view")
    page.keyboard.press("End")
    expect(page.get_by_role("tab", name="Delete")).to_be_focused()
    expect(page.get_by_role("button", name="Delete this dataset")).to_be_disabled()
    screenshot(page, "settings-05-delete")
    page.keyboard.press("Home")
    expect(data_tab).to_be_focused()
    page.get_by_role("link", name="Advanced").click()
    expect(page.get_by_label(PROPERTIES)).to_have_value(re.compile('"dataLayers"'))
    screenshot(page, "settings-06-data-advanced")
    assert_fits_sideways(page)
    # Back and forward restore whole pages.
    page.go_back()
    expect(page.get_by_label("Voxel size x")).to_be_visible()
    page.set_viewport_size({"width": 1440, "height": 900})
    for tab in ("data", "sharing", "metadata", "view", "delete"):
        settings(page, world, "cortex", tab)
        expect(page.get_by_role("tab", selected=True)).to_be_visible()
        assert_fits_sideways(page)
    screenshot(page, "settings-07-delete-1440x900")
    page.set_viewport_size(VIEWPORT)  # type: ignore[arg-type]


def test_display_name_and_description_with_a_live_preview(
    page: Page, world: SettingsWorld
) -> None:
    sign_in(page, world)
    settings(page, world, "cortex", "metadata")
    page.get_by_label("Display name").fill("Cortex, barrel field")
    description = page.locator("#description")
    description.fill(
        "Imaged at **11 nm**.\n\n- aligned\n- segmented\n\n"
        "<script>window.__pwned = 1</script>"
    )
    preview = page.locator("#description-preview")
    expect(preview.locator("strong")).to_have_text("11 nm")
    expect(preview.locator("li")).to_have_count(2)
    screenshot(page, "settings-08-metadata-preview")
    page.get_by_role("button", name="Save").click()
    toast(page, "Saved the name and description.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Cortex, barrel field")
    sidebar = page.locator("#details")
    expect(sidebar.locator(".description strong")).to_have_text("11 nm")
    # Home: the details sidebar renders the Markdown; the script is text, inert.
    page.goto(world.url + "/")
    page.locator("tr.dataset-row", has_text="Cortex, barrel field").locator(
        ".col-size"
    ).click()
    details = page.locator("#details")
    expect(details.get_by_role("heading", name="Cortex, barrel field")).to_be_visible()
    expect(details.locator(".description strong")).to_have_text("11 nm")
    expect(details.locator(".description li")).to_have_count(2)
    assert details.locator("script").count() == 0
    assert page.locator("script:not([src])").count() == 0
    assert page.evaluate("window.__pwned") is None
    screenshot(page, "settings-09-details-markdown")


def _fresh_page(browser: Browser, console: ConsoleWatch) -> Page:
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.on("console", console.on_console)
    tab.on("pageerror", console.on_page_error)
    return tab


def test_sharing_link_opens_without_login_until_revoked(
    page: Page, world: SettingsWorld, browser: Browser
) -> None:
    sign_in(page, world)
    page.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=world.url
    )
    settings(page, world, "cortex", "sharing")
    expect(page.get_by_text("read-only, without an account")).to_be_visible()
    page.get_by_role("button", name="Create sharing link").click()
    toast(page, "Created a sharing link.")
    link_input = page.locator("#sharing-link")
    link = link_input.input_value()
    assert re.fullmatch(
        rf"{re.escape(world.url)}/datasets/{ORG}/cortex/.*\?token=vxs_.+", link
    )
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == link
    screenshot(page, "settings-10-sharing-link")

    visitor_console = ConsoleWatch()
    visitor = _fresh_page(browser, visitor_console)
    try:
        visitor.goto(link)
        expect(visitor).not_to_have_url(re.compile("/login/"))
        expect(visitor.get_by_text("cortex").first).to_be_visible()
        screenshot(visitor, "settings-11-shared-view")
    finally:
        visitor.context.close()
    assert visitor_console.errors == [], visitor_console.errors

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke and create new").click()
    toast(page, "Revoked the old link")
    expect(link_input).not_to_have_value(link)
    new_link = link_input.input_value()
    assert "?token=vxs_" in new_link

    denied_console = ConsoleWatch()
    denied = _fresh_page(browser, denied_console)
    try:
        denied.goto(link)
        # The old token is worth nothing: a visitor without it must sign in.
        expect(denied).to_have_url(re.compile("/login/"))
        expect(denied.get_by_role("heading", name="Sign in")).to_be_visible()
        screenshot(denied, "settings-12-revoked-link")
    finally:
        denied.context.close()


def _set_factor(text: str, factor: str) -> str:
    return re.sub(r'"factor": \[[^\]]*\]', f'"factor": [{factor}]', text, count=1)


def test_voxel_size_in_the_advanced_json_reaches_the_disk(
    page: Page, world: SettingsWorld
) -> None:
    sign_in(page, world)
    settings(page, world, "voxels", "data")
    page.get_by_role("link", name="Advanced").click()
    editor = page.get_by_label(PROPERTIES)
    text = editor.input_value()
    editor.fill(_set_factor(text, "11.24, -4, 28"))
    page.get_by_role("button", name="Save").click()
    problems = page.locator("#json-problems")
    expect(problems).to_contain_text("scale.factor[1]")
    expect(problems).to_contain_text("must be a finite number > 0")
    expect(editor).to_have_value(re.compile(r'"factor": \[11.24, -4, 28\]'))
    screenshot(page, "settings-13-advanced-error")
    assert world.properties("voxels")["scale"]["factor"] == [11.24, 11.24, 28.0]
    # A syntax error points at its line and column.
    editor.fill(text.replace('"dataLayers"', '"dataLayers', 1))
    page.get_by_role("button", name="Save").click()
    expect(problems).to_contain_text(
        re.compile(r"invalid JSON at line \d+, column \d+")
    )
    editor.fill(_set_factor(text, "8, 8, 33"))
    page.get_by_role("button", name="Save").click()
    toast(page, "datasource-properties.json on the datastore was updated")
    expect(problems).to_have_count(0)
    expect(editor).to_have_value(re.compile(r'"factor": \[8, 8, 33\]'))
    on_disk = world.properties("voxels")
    assert on_disk["scale"]["factor"] == [8, 8, 33]
    assert on_disk["id"] == {"name": "voxels", "team": ORG}
    # The simple form shows it too, and checks its inputs at their fields.
    page.get_by_role("link", name="Simple").click()
    expect(page.get_by_label("Voxel size z")).to_have_value("33")
    page.get_by_label("Layer color bounding box width").fill("0")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#f-layer-0-width-error")).to_have_text("must be > 0")
    expect(page.get_by_label("Layer color bounding box width")).to_have_value("0")
    screenshot(page, "settings-14-simple-error")


def test_view_configuration_problems_at_the_fields_then_saved(
    page: Page, world: SettingsWorld
) -> None:
    sign_in(page, world)
    settings(page, world, "voxels", "view")
    page.get_by_label("Position x").fill("10")
    page.get_by_label("Position y").fill("20")
    page.get_by_label("Zoom").fill("-1")
    page.get_by_label("Segmentation pattern opacity").fill("101")
    page.locator("#layers-json").fill('{"color": {"alpha": 50}, "nope": {}}')
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#position-error")).to_contain_text("list of 3 numbers")
    expect(page.locator("#f-zoom-error")).to_contain_text("must be a number above 0")
    expect(page.locator("#f-opacity-error")).to_have_text(
        "must be a number from 0 to 100"
    )
    expect(page.locator("#layers-json-problems")).to_contain_text("layers.nope")
    expect(page.get_by_label("Zoom")).to_have_value("-1")
    screenshot(page, "settings-20-view-errors")
    page.get_by_label("Position z").fill("16")
    page.get_by_label("Zoom").fill("1.5")
    page.get_by_label("Segmentation pattern opacity").fill("40")
    page.locator("#layers-json").fill('{"color": {"alpha": 50}}')
    page.get_by_label("Interpolation").check()
    page.get_by_role("button", name="Save").click()
    toast(page, "Saved the default view configuration.")
    expect(page.locator("input[type=range]")).to_have_value("40")
    screenshot(page, "settings-21-view-saved")
    assert world.record("voxels")["default_view_configuration"] == {
        "position": [10, 20, 16],
        "zoom": 1.5,
        "interpolation": True,
        "segmentationPatternOpacity": 40,
        "layers": {"color": {"alpha": 50}},
    }
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Clear").click()
    toast(page, "Cleared the default view configuration.")
    expect(page.get_by_label("Zoom")).to_have_value("")
    assert world.record("voxels")["default_view_configuration"] is None


def _change_on_disk(world: SettingsWorld, name: str, factor: list[float]) -> None:
    path = world.folder(name) / PROPERTIES
    properties = json.loads(path.read_text())
    properties["scale"] = {"factor": factor, "unit": "nanometer"}
    path.write_text(json.dumps(properties, indent=2))
    world.services.scan(ORG, token=world.token)
    world.wait_for(
        name, lambda r: r["pending_datasource"] is not None, "got a pending change"
    )


def test_a_changed_properties_file_waits_until_applied_or_kept(
    page: Page, world: SettingsWorld
) -> None:
    _change_on_disk(world, "changing", [5, 5, 50])
    sign_in(page, world)
    settings(page, world, "changing", "data")
    banner = page.locator(".pending")
    expect(banner).to_contain_text("datasource-properties.json on disk changed")
    expect(banner.locator("td.diff-removed")).to_contain_text(["11.24, 11.24, 28"])
    expect(banner.locator("td.diff-added")).to_contain_text(["[5, 5, 50]"])
    screenshot(page, "settings-15-pending-diff")
    banner.get_by_role("button", name="Apply the version from disk").click()
    toast(page, "Applied the datasource-properties.json from disk.")
    expect(banner).to_have_count(0)
    expect(page.get_by_label("Voxel size z")).to_have_value("50")

    _change_on_disk(world, "changing", [6, 6, 60])
    page.reload()
    expect(banner.locator("td.diff-added")).to_contain_text(["[6, 6, 60]"])
    banner.get_by_role("button", name="Keep the current version").click()
    toast(page, "Kept the current version")
    expect(banner).to_have_count(0)
    assert world.properties("changing")["scale"]["factor"] == [5, 5, 50]
    record = world.record("changing")
    assert record["pending_datasource"] is None
    assert record["datasource"]["scale"]["factor"] == [5, 5, 50]


def test_import_a_dataset_found_without_properties(
    page: Page, world: SettingsWorld
) -> None:
    sign_in(page, world)
    row = page.locator("tr.dataset-row", has_text="raw_em")
    expect(row.locator(".badge")).to_have_text("Needs review")
    row.get_by_role("link", name="Import").click()
    expect(page).to_have_url(re.compile(rf"/datasets/{ORG}/raw_em/import/$"))
    expect(page.get_by_role("heading", name="Found on disk")).to_be_visible()
    inferred = page.locator("table.inferred")
    expect(inferred.locator("tbody tr")).to_have_count(2)
    expect(inferred).to_contain_text("wkw")
    expect(page.get_by_label("Voxel size x")).to_have_value("")
    screenshot(page, "settings-16-import")
    assert_fits_sideways(page)
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#f-scale_x-error")).to_have_text("required")
    screenshot(page, "settings-17-import-error")
    for axis, value in zip("xyz", ("11.24", "11.24", "28"), strict=True):
        page.get_by_label(f"Voxel size {axis}").fill(value)
    page.get_by_label("Layer segmentation Largest segment id").fill("9")
    page.get_by_label("Display name").fill("Raw EM stack")
    page.get_by_role("button", name="Import").click()
    expect(page).to_have_url(
        re.compile(rf"/datasets/{ORG}/raw_em/settings/\?tab=sharing$")
    )
    toast(page, "Imported Raw EM stack: it is active now.")
    expect(page.locator(".settings-status .badge")).to_have_text("Active")
    on_disk = world.properties("raw_em")
    assert on_disk["scale"]["factor"] == [11.24, 11.24, 28]
    assert on_disk["dataLayers"][1]["largestSegmentId"] == 9
    world.wait_for("raw_em", lambda r: r["status"] == "active", "became active")


def test_delete_needs_the_typed_name_and_moves_the_folder_to_the_trash(
    page: Page, world: SettingsWorld
) -> None:
    sign_in(page, world)
    settings(page, world, "doomed", "delete")
    panel = page.get_by_role("tabpanel")
    expect(panel).to_contain_text(f"binaryData/{ORG}/.trash/")
    expect(panel).to_contain_text("cannot be undone from the dashboard")
    button = page.get_by_role("button", name="Delete this dataset")
    confirm = page.get_by_label("Type doomed to confirm")
    expect(button).to_be_disabled()
    confirm.fill("doome")
    expect(button).to_be_disabled()
    confirm.fill("doomed")
    expect(button).to_be_enabled()
    screenshot(page, "settings-18-delete-confirm")
    button.click()
    expect(page).to_have_url(world.url + "/")
    toast(page, "Deleted doomed; its folder was moved to the datastore's trash.")
    expect(page.locator("tr.dataset-row", has_text="doomed")).to_have_count(0)
    assert not world.folder("doomed").exists()
    trashed = list((world.services.binary_data / ORG / ".trash").glob("doomed-*"))
    assert len(trashed) == 1
    assert (trashed[0] / PROPERTIES).is_file()
    screenshot(page, "settings-19-deleted-toast")
