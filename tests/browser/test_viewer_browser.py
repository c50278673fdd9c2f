"""The slice viewer in a real Chromium, reading real voxels from a real datastore.

An organization of its own (so the dashboard tests' listings stay as they are)
with an admin (vera) and a member (max) of the team the private sample dataset
`cells` is allowed to. The sample is EM-like cells with a segmentation, large
enough that zoomed in, a pan reveals new tiles.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, Request, expect

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
from shared.samples import generate_cells, write_sample_dataset

from .conftest import VIEWPORT, BrowserWorld, ConsoleWatch, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

ORGANIZATION = "viewer_lab"
PASSWORD = "vx-viewer-test-passphrase"
SHAPE = (384, 384, 24)
VOXEL_SIZE = (11.24, 11.24, 28.0)
TILE = 128

_SETUP = """
import sys
from metaserver.accounts.actions import (
    do_add_team_member, do_create_api_token, do_create_organization,
    do_create_team, do_create_user,
)
organization, password = sys.argv[1:3]
org = do_create_organization(organization, "Viewer Lab")
vera = do_create_user("vera", password, organization=org, role="admin")
max_ = do_create_user("max", password, organization=org, role="member")
team = do_create_team(org, "imaging")
do_add_team_member(team, max_)
print(team.pk)
print(do_create_api_token(vera, "viewer-tests"))
"""


@dataclass
class ViewerWorld:
    url: str
    datastore_url: str
    sharing_token: str

    def view(self, name: str = "cells") -> str:
        return f"{self.url}/datasets/{ORGANIZATION}/{name}/view/"


def write_typed_dataset(target: Path) -> None:
    """The sample's cells as a uint16 layer and a float32 layer (values 0..1)."""
    color, _ = generate_cells((64, 64, 16), cells=12)
    arrays = {
        "em16": color.astype(np.uint16) * 200,
        "emfloat": color.astype(np.float32) / 255,
    }
    layers = []
    for name, data in arrays.items():
        array = create_mag(target / name / "1", DataFormat.WKW, data.dtype, 1)
        array.write(Vec3(0, 0, 0), data[None])
        array.close()
        layers.append(
            LayerProperties(
                name=name,
                category=Category.COLOR,
                bounding_box=BoundingBox.of((0, 0, 0), data.shape),
                element_class=ElementClass.from_dtype(data.dtype),
                data_format=DataFormat.WKW,
                mags=(MagProperties(mag=Mag(1, 1, 1), path=f"./{name}/1"),),
                num_channels=1,
            )
        )
    save_datasource(
        target / "datasource-properties.json",
        DatasourceProperties(
            name="typed",
            team=ORGANIZATION,
            voxel_size=VoxelSize((10.0, 10.0, 10.0)),
            layers=tuple(layers),
        ),
    )


@pytest.fixture(scope="module")
def viewer_world(browser_world: BrowserWorld) -> ViewerWorld:
    services = browser_world.services
    team_id, token = services.django(_SETUP, ORGANIZATION, PASSWORD).split()[-2:]
    write_sample_dataset(
        services.binary_data, ORGANIZATION, "cells", shape=SHAPE, voxel_size=VOXEL_SIZE
    )
    # Without mag 1: the viewer must start at the finest mag there is (2-2-1).
    coarse = write_sample_dataset(
        services.binary_data, ORGANIZATION, "coarse", shape=(96, 96, 48)
    )
    properties = json.loads((coarse / "datasource-properties.json").read_text())
    for layer in properties["dataLayers"]:
        layer["mags"] = [m for m in layer["mags"] if m["mag"] != [1, 1, 1]]
    (coarse / "datasource-properties.json").write_text(json.dumps(properties))
    write_typed_dataset(services.binary_data / ORGANIZATION / "typed")
    services.scan(ORGANIZATION, token=token)
    services.dataset("cells", "active", organization=ORGANIZATION, token=token)
    services.dataset("typed", "active", organization=ORGANIZATION, token=token)
    services.dataset("coarse", "active", organization=ORGANIZATION, token=token)
    with services.api(token) as client:
        response = client.patch(
            f"/api/datasets/{ORGANIZATION}/cells/",
            json={"display_name": "Cells (sample)", "allowed_teams": [int(team_id)]},
        )
        assert response.status_code == 200, response.text
        shared = client.get(f"/api/datasets/{ORGANIZATION}/cells/sharing-token/")
        assert shared.status_code == 200, shared.text
    return ViewerWorld(
        url=services.metaserver_url,
        datastore_url=services.datastore_url,
        sharing_token=shared.json()["token"],
    )


@pytest.fixture
def watched(browser: Browser, console: ConsoleWatch) -> Iterator[Any]:
    """A factory of fresh browser contexts (users), each page watched for errors."""
    contexts = []

    def new_page() -> Page:
        context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
        context.set_default_timeout(15_000)
        contexts.append(context)
        tab = context.new_page()
        tab.on("console", console.on_console)
        tab.on("pageerror", console.on_page_error)
        return tab

    try:
        yield new_page
    finally:
        for context in contexts:
            context.close()
    assert console.errors == [], "\n".join(console.errors)


def sign_in(page: Page, world: ViewerWorld, username: str, target: str) -> None:
    page.goto(f"{world.url}/login/?next={urlsplit(target).path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(re.escape(urlsplit(target).path)))


def wait_idle(page: Page) -> None:
    page.wait_for_function(
        "() => window.voxelhubViewer && window.voxelhubViewer.idle()"
    )
    # One more frame, so the last tiles are drawn, not just loaded.
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => done()))")


def hash_of(page: Page) -> dict[str, str]:
    fragment = urlsplit(page.url).fragment
    return {key: values[0] for key, values in parse_qs(fragment).items()}


def position_of(page: Page) -> list[int]:
    # The viewer writes the address once its configuration is applied.
    page.wait_for_function("() => location.hash.includes('position=')")
    return [int(v) for v in hash_of(page)["position"].split(",")]


# Pixels of a plane's canvas around the centre, the crosshair left out.
_PIXELS = """(plane) => {
  const canvas = document.querySelector(`[data-plane="${plane}"] canvas`);
  const context = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  const size = Math.floor(Math.min(w, h) / 3);
  const x = Math.floor(w / 2) + 8, y = Math.floor(h / 2) + 8;
  return Array.from(context.getImageData(x, y, size, size).data);
}"""


def pixels(page: Page, plane: str = "xy") -> list[int]:
    return page.evaluate(_PIXELS, plane)


def wait_for_detail(page: Page, plane: str, minimum: int = 20) -> None:
    """Until the plane shows more than `minimum` grey values (its tiles drawn):
    under load the viewer can look idle before its first tiles are asked for."""
    page.wait_for_function(
        "(plane) => { const v = (" + _PIXELS + ")(plane); const seen = new Set();"
        " for (let i = 0; i < v.length; i += 4) seen.add(v[i]);"
        f" return seen.size > {minimum}; }}",
        arg=plane,
    )


def distinct_greys(values: list[int]) -> int:
    return len({values[i] for i in range(0, len(values), 4)})


def set_layout(page: Page, layout: str) -> None:
    page.locator(f'input[name="layout"][value="{layout}"]').check(force=True)


def test_the_viewer_shows_cells_in_three_planes_and_in_xy_alone(
    watched: Any, viewer_world: ViewerWorld
) -> None:
    page = watched()
    sign_in(page, viewer_world, "vera", viewer_world.view())
    expect(page.get_by_role("heading", name="Cells (sample)")).to_be_visible()
    set_layout(page, "planes")
    wait_idle(page)
    for plane in ("xy", "yz", "xz"):
        values = pixels(page, plane)
        # EM-like cells: many grey levels, not one colour (nor black).
        assert distinct_greys(values) > 40, plane
        assert max(values[0::4]) > 100, plane
    # The datasource's default: the centre of the sample, zoom 1.
    assert position_of(page) == [SHAPE[0] // 2, SHAPE[1] // 2, SHAPE[2] // 2]
    expect(page.locator("#position-input")).to_have_value("192, 192, 12")
    expect(page.locator('[data-plane="xy"] [data-plane-info]')).to_have_text(
        "z 12 · mag 1-1-1"
    )
    screenshot(page, "40-viewer-3-planes-1280x800")
    set_layout(page, "xy")
    wait_idle(page)
    assert distinct_greys(pixels(page, "xy")) > 40
    screenshot(page, "41-viewer-xy-1280x800")
    page.set_viewport_size({"width": 1440, "height": 900})
    set_layout(page, "planes")
    wait_idle(page)
    screenshot(page, "42-viewer-3-planes-1440x900")
    # Zoomed out, voxels of mag 1 would be smaller than a pixel: mag 2-2-1.
    zoom = page.get_by_role("spinbutton", name="Zoom")
    zoom.fill("2")
    zoom.press("Tab")
    expect(page.locator('[data-plane="xy"] [data-plane-info]')).to_have_text(
        "z 12 · mag 2-2-1"
    )
    expect(page.locator('[data-plane="yz"] [data-plane-info]')).to_have_text(
        "x 192 · mag 2-2-1"
    )
    wait_idle(page)
    assert distinct_greys(pixels(page, "xy")) > 40
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert widths[0] <= widths[1]


def tiles_in_view(
    centre: tuple[float, float], size: tuple[int, int], voxels_per_pixel: float
) -> set[tuple[int, int]]:
    """Mag-1 tiles (i, j) that the XY view centred at `centre` shows."""
    ranges = []
    for axis in (0, 1):
        half = size[axis] / 2 * voxels_per_pixel
        first = max(0, math.floor(centre[axis] - half))
        last = min(SHAPE[axis] - 1, math.floor(centre[axis] + half))
        ranges.append(range(first // TILE, last // TILE + 1))
    return {(i, j) for i in ranges[0] for j in ranges[1]}


def test_pan_and_zoom_follow_the_url_and_load_each_new_tile_once(
    watched: Any, viewer_world: ViewerWorld
) -> None:
    page = watched()
    sign_in(page, viewer_world, "vera", viewer_world.view())
    set_layout(page, "xy")
    # Away and back: a fresh page with an empty tile cache.
    page.goto(viewer_world.url + "/")
    requested: list[str] = []

    def on_request(request: Request) -> None:
        if (
            request.url.startswith(viewer_world.datastore_url)
            and "/data?" in request.url
        ):
            requested.append(request.url)

    page.on("request", on_request)
    page.goto(viewer_world.view() + "#position=60,60,12&zoom=0.25")
    wait_idle(page)
    assert position_of(page) == [60, 60, 12]
    canvas = page.locator('[data-plane="xy"] canvas')
    box = canvas.bounding_box()
    assert box is not None
    size = (int(box["width"]), int(box["height"]))
    before = tiles_in_view((60.5, 60.5), size, 0.25)
    initial = len(requested)
    # Color and segmentation, one request per tile each, nothing twice.
    assert initial == 2 * len(before)
    start = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*start)
    page.mouse.down()
    for step in range(1, 21):
        page.mouse.move(start[0] - 30 * step, start[1] - 20 * step)
    page.mouse.up()
    wait_idle(page)
    expect(page).to_have_url(re.compile(r"#position=210,160,12&zoom=0\.25$"))
    after = tiles_in_view((210.5, 160.5), size, 0.25)
    spanned = tiles_in_view(
        (135.5, 110.5),
        (size[0] + 600, size[1] + 400),
        0.25,
    )
    new = len(requested) - initial
    assert len(set(requested)) == len(requested), "a tile was requested twice"
    assert 2 * len(after - before) <= new <= 2 * len(spanned - before)
    # Wheel zoom and keys change the URL too; the slice moves with f and d.
    page.mouse.move(*start)
    page.mouse.wheel(0, 300)
    expect(page).to_have_url(re.compile(r"zoom=0\.3\d+$"))
    canvas.focus()
    page.keyboard.press("f")
    page.keyboard.press("f")
    page.keyboard.press("d")
    expect(page).to_have_url(re.compile(r"#position=210,160,13&"))
    page.keyboard.press("PageDown")
    expect(page).to_have_url(re.compile(r"#position=210,160,14&"))
    page.keyboard.press("+")
    page.keyboard.press("ArrowLeft")
    expect(page).to_have_url(re.compile(r"#position=20\d,160,14&"))
    # Reloading opens at the same place.
    where = hash_of(page)
    # Up to here, nothing was requested twice either.
    assert len(set(requested)) == len(requested)
    requested.clear()
    page.reload()
    wait_idle(page)
    assert hash_of(page) == where
    expect(page.locator("#position-input")).to_have_value(
        ", ".join(where["position"].split(","))
    )
    assert len(set(requested)) == len(requested)


def test_a_default_saved_at_a_position_opens_there_for_another_user(
    watched: Any, viewer_world: ViewerWorld
) -> None:
    vera = watched()
    sign_in(vera, viewer_world, "vera", viewer_world.view())
    position = vera.get_by_role("textbox", name="Position")
    position.fill("100, 140, 7")
    position.press("Enter")
    expect(vera).to_have_url(re.compile(r"#position=100,140,7&"))
    with vera.expect_response(re.compile(r"/view/default/$")) as saved:
        vera.get_by_role("button", name="Save view configuration as default").click()
    assert saved.value.status == 200
    expect(vera.locator(".toast")).to_contain_text("Saved as the default view")
    screenshot(vera, "43-viewer-saved-default")

    member = watched()
    sign_in(member, viewer_world, "max", viewer_world.view())
    wait_idle(member)
    assert position_of(member) == [100, 140, 7]
    expect(member.get_by_role("textbox", name="Position")).to_have_value("100, 140, 7")
    # Members may look, not change the default.
    expect(
        member.get_by_role("button", name="Save view configuration as default")
    ).to_have_count(0)
    assert distinct_greys(pixels(member)) > 40


def test_the_own_view_comes_back_until_reset(
    watched: Any, viewer_world: ViewerWorld
) -> None:
    page = watched()
    sign_in(page, viewer_world, "max", viewer_world.view())
    wait_idle(page)
    default = position_of(page)
    with page.expect_response(re.compile(r"/view/own/$")) as kept:
        page.get_by_role("textbox", name="Position").fill("20, 30, 4")
        page.get_by_role("textbox", name="Position").press("Enter")
    assert kept.value.status == 200
    page.goto(viewer_world.view())
    wait_idle(page)
    assert position_of(page) == [20, 30, 4]
    with page.expect_response(re.compile(r"/view/own/$")) as reset:
        page.get_by_role("button", name="Reset to dataset default").click()
    assert reset.value.request.method == "DELETE"
    expect(page).to_have_url(
        re.compile("#position=" + ",".join(map(str, default)) + "&")
    )
    page.goto(viewer_world.view())
    wait_idle(page)
    assert position_of(page) == default


def test_the_segmentation_opacity_slider_changes_the_overlay(
    watched: Any, viewer_world: ViewerWorld
) -> None:
    page = watched()
    sign_in(page, viewer_world, "vera", viewer_world.view())
    set_layout(page, "xy")
    wait_idle(page)
    opacity = page.get_by_label("Opacity of segmentation in percent")
    opacity.fill("0")
    wait_idle(page)
    plain = pixels(page)
    # Without the overlay, EM is grey: red, green and blue agree.
    assert all(
        plain[i] == plain[i + 1] == plain[i + 2] for i in range(0, len(plain), 4)
    )
    page.locator('input[type="range"][data-setting="opacity"]').fill("100")
    expect(opacity).to_have_value("100")
    wait_idle(page)
    coloured = pixels(page)
    assert coloured != plain
    assert (
        sum(coloured[i] != coloured[i + 1] for i in range(0, len(coloured), 4))
        > len(coloured) // 8
    )
    screenshot(page, "44-viewer-segmentation-100")
    # The contrast slider changes the grey values too.
    opacity.fill("0")
    page.get_by_label("Minimum intensity of color").fill("120")
    page.get_by_label("Minimum intensity of color").press("Enter")
    wait_idle(page)
    assert pixels(page) != plain


def test_a_sharing_link_opens_the_viewer_without_an_account(
    watched: Any, viewer_world: ViewerWorld
) -> None:
    page = watched()
    tokens: list[str] = []
    page.on(
        "request",
        lambda r: (
            tokens.extend(parse_qs(urlsplit(r.url).query).get("token", []))
            if "/data?" in r.url
            else None
        ),
    )
    page.goto(viewer_world.view() + f"?token={viewer_world.sharing_token}")
    expect(page.get_by_text("Shared link · read-only")).to_be_visible()
    wait_idle(page)
    assert distinct_greys(pixels(page)) > 40
    assert tokens
    assert set(tokens) == {viewer_world.sharing_token}
    screenshot(page, "48-viewer-shared-link")
    expect(
        page.get_by_role("button", name="Save view configuration as default")
    ).to_have_count(0)
    # Without the token, the private dataset wants a login.
    page.goto(viewer_world.view())
    expect(page).to_have_url(re.compile(r"/login/\?next="))


def test_the_datasets_page_leads_to_the_viewer_by_mouse_and_keyboard(
    watched: Any, viewer_world: ViewerWorld
) -> None:
    page = watched()
    sign_in(page, viewer_world, "vera", viewer_world.url + "/")
    page.get_by_role("link", name="Cells (sample)", exact=True).click()
    view = page.locator("#details").get_by_role("link", name="View", exact=True)
    expect(view).to_be_visible()
    screenshot(page, "45-viewer-link-in-details")
    view.click()
    expect(page).to_have_url(re.compile(r"/datasets/viewer_lab/cells/view/#position="))
    wait_idle(page)
    # From the table too, and keyboard only: the eye icon, then the planes.
    page.goto(viewer_world.url + "/")
    page.get_by_role("link", name="View Cells (sample)").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/view/"))
    wait_idle(page)
    page.locator("#position-input").focus()
    for _ in range(4):
        page.keyboard.press("Shift+Tab")
    focused = page.evaluate(
        "() => document.activeElement.closest('.plane')?.dataset.plane"
    )
    assert focused in {"xy", "yz", "xz"}
    screenshot(page, "46-viewer-keyboard-focus")


def test_a_dataset_without_mag_1_shows_its_finest_mag(
    watched: Any, viewer_world: ViewerWorld
) -> None:
    page = watched()
    sign_in(page, viewer_world, "vera", viewer_world.view("coarse"))
    wait_idle(page)
    expect(page.locator('[data-plane="xy"] [data-plane-info]')).to_have_text(
        "z 24 · mag 2-2-1"
    )
    for plane in ("xy", "yz", "xz"):
        wait_for_detail(page, plane)
        assert distinct_greys(pixels(page, plane)) > 20, plane
    screenshot(page, "47-viewer-without-mag-1")


def test_uint16_and_float_layers_show_with_their_own_intensity_ranges(
    watched: Any, viewer_world: ViewerWorld
) -> None:
    page = watched()
    sign_in(page, viewer_world, "vera", viewer_world.view("typed"))
    set_layout(page, "xy")
    layers = {
        name: page.locator(f'.layer-controls[data-layer="{name}"]')
        for name in ("em16", "emfloat")
    }
    # The full uint16 range; the float layer's range is what its data spans.
    expect(page.get_by_label("Maximum intensity of em16")).to_have_value("65535")
    for shown, hidden in (("em16", "emfloat"), ("emfloat", "em16")):
        layers[hidden].locator('[data-setting="visible"]').uncheck()
        layers[shown].locator('[data-setting="visible"]').check()
        wait_idle(page)
        values = pixels(page)
        assert distinct_greys(values) > 20, shown
        assert max(values[0::4]) > 100, shown
    maximum = float(page.get_by_label("Maximum intensity of emfloat").input_value())
    assert 0.5 < maximum <= 1.0
    layers["emfloat"].get_by_role("button", name="Auto contrast").click()
    wait_idle(page)
    assert float(page.get_by_label("Maximum intensity of emfloat").input_value()) < (
        maximum
    )
    screenshot(page, "49-viewer-float-layer")
