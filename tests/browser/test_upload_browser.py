"""Add Dataset in a real Chromium: upload a TIFF stack (pause, resume, conversion),
and add a sample dataset with one click."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Page, Route, expect

from .conftest import BrowserWorld, screenshot
from .test_dashboard_browser import rows, sign_in

pytestmark = pytest.mark.browser

CHUNK_BYTES = 16 * 1024


def test_upload_a_tiff_stack_with_pause_and_resume_then_the_conversion(
    page: Page, browser_world: BrowserWorld, tmp_path: Path
) -> None:
    import tifffile

    stack = np.random.default_rng(3).integers(0, 255, (24, 64, 72), dtype=np.uint8)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack)
    assert path.stat().st_size > 6 * CHUNK_BYTES

    sign_in(page, browser_world, "/")
    page.get_by_role("link", name="Add Dataset").click()
    expect(page).to_have_url(re.compile(r"/datasets/add/$"))
    page.goto(f"{browser_world.url}/datasets/add/?chunk_size={CHUNK_BYTES}")
    expect(page.get_by_role("tab", name="Upload")).to_have_attribute(
        "aria-selected", "true"
    )
    name = page.locator("#upload-name")
    name.fill("-bad name")
    expect(page.locator("#upload-name-error")).to_contain_text("Only letters")
    name.fill("browser_tiff")
    expect(page.locator("#upload-name-error")).to_be_hidden()
    page.set_input_files("#upload-files", str(path))
    expect(page.locator("#file-list li")).to_have_count(1)
    expect(page.locator("#file-list .file-path")).to_have_text("stack.tif")
    screenshot(page, "60-add-upload-tab")

    # Hold the chunk requests, so that Pause lands mid-upload for certain.
    held: list[Route] = []

    def hold(route: Route) -> None:
        if route.request.method == "POST":
            held.append(route)
        else:
            route.continue_()

    chunks = re.compile(r".*/data/datasets$")
    page.route(chunks, hold)
    page.get_by_role("button", name="Upload", exact=True).click()
    deadline = time.monotonic() + 10
    while len(held) < 3 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert len(held) == 3, "three chunks in parallel"
    held.pop(0).continue_()
    page.wait_for_function("document.getElementById('total-bar').value > 0")
    page.get_by_role("button", name="Pause").click()
    while held:
        held.pop(0).continue_()
    expect(page.get_by_role("button", name="Resume")).to_be_visible()
    expect(page.locator("#upload-state")).to_have_text("Paused.")
    expect(page.get_by_role("button", name="Pause")).to_be_hidden()
    paused_at = page.eval_on_selector("#total-bar", "bar => bar.value")
    assert 0 < paused_at < 1, paused_at
    screenshot(page, "61-add-upload-paused")
    page.unroute(chunks)

    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#total-percent")).to_have_text("100 %")
    expect(page.locator("#file-list .percent")).to_have_text("100 %")
    expect(page.locator("#outcome-text")).to_contain_text("Converted", timeout=90_000)
    expect(page.locator("#job-percent")).to_have_text("100 %")
    expect(page.get_by_role("button", name="Pause")).to_be_hidden()
    expect(page.get_by_role("button", name="Resume")).to_be_hidden()
    page.locator("#upload-outcome").scroll_into_view_if_needed()
    screenshot(page, "62-add-upload-converted")
    dataset = browser_world.services.dataset(
        "browser_tiff",
        "active",
        organization=browser_world.organization,
        token=browser_world.token,
    )
    assert dataset["status"] == "active", dataset
    page.get_by_role("link", name="Open the dataset").click()
    expect(page).to_have_url(
        re.compile(rf"/datasets/{browser_world.organization}/browser_tiff/$")
    )


def test_add_the_em_sample_with_one_click(
    page: Page, browser_world: BrowserWorld
) -> None:
    sign_in(page, browser_world, "/datasets/add/?tab=sample")
    expect(page.get_by_role("tab", name="Sample")).to_have_attribute(
        "aria-selected", "true"
    )
    expect(page.get_by_text("MRI-like volume").first).to_be_visible()
    screenshot(page, "63-add-sample-tab")
    page.get_by_label("Name").first.fill("browser_em_sample")
    page.get_by_role("button", name="Add EM cells: color + segmentation").click()
    # A worker of the datastore writes it as a job; the Jobs page follows it live.
    expect(page).to_have_url(browser_world.url + "/jobs/")
    expect(page.locator("#toasts")).to_contain_text(
        "Adding the sample browser_em_sample"
    )
    job = page.locator("tr", has_text="Sample dataset").first
    expect(job.locator(".badge")).to_have_text("Succeeded", timeout=30_000)
    expect(job.get_by_role("link", name="browser_em_sample")).to_be_visible()
    dataset = browser_world.services.dataset(
        "browser_em_sample",
        "active",
        organization=browser_world.organization,
        token=browser_world.token,
    )
    assert dataset["status"] == "active", dataset
    page.goto(browser_world.url + "/")
    assert "browser_em_sample" in rows(page)
    screenshot(page, "64-add-sample-done")

    # The same name again: a clear error, nothing overwritten.
    page.goto(f"{browser_world.url}/datasets/add/?tab=sample")
    page.get_by_label("Name").first.fill("browser_em_sample")
    page.get_by_role("button", name="Add EM cells: color + segmentation").click()
    expect(page.locator("#toasts")).to_contain_text("exists already")


def test_a_file_larger_than_a_hash_slice_uploads_and_converts_to_zarr3(
    page: Page, browser_world: BrowserWorld, tmp_path: Path
) -> None:
    """21 MiB: hashed in two 16 MiB slices (the finish checks the digest), sent in
    three 8 MiB chunks, converted to the format chosen in the form."""
    import tifffile

    stack = np.random.default_rng(5).integers(0, 255, (84, 512, 512), dtype=np.uint8)
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, stack)
    assert path.stat().st_size > 20 * 2**20

    sign_in(page, browser_world, "/datasets/add/")
    page.locator("#upload-name").fill("browser_big_zarr3")
    page.select_option("#upload-format", "zarr3")
    page.set_input_files("#upload-files", str(path))
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator("#outcome-text")).to_contain_text("Converted", timeout=120_000)
    dataset = browser_world.services.dataset(
        "browser_big_zarr3",
        "active",
        organization=browser_world.organization,
        token=browser_world.token,
    )
    [layer] = dataset["datasource"]["dataLayers"]
    assert layer["dataFormat"] == "zarr3"
    assert layer["boundingBox"]["depth"] == 84
