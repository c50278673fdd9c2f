"""The dashboard in a real Chromium: sign in, list, search, details, scan, sign out."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, expect

from .conftest import BrowserWorld, ConsoleWatch, screenshot

pytestmark = pytest.mark.browser

# As the dashboard writes sizes: narrow no-break spaces around the sign.
TIMES = "\N{NARROW NO-BREAK SPACE}\N{MULTIPLICATION SIGN}\N{NARROW NO-BREAK SPACE}"


def sign_in(page: Page, world: BrowserWorld, path: str = "/") -> None:
    # The home page itself is public (public datasets), so ask for the login.
    page.goto(f"{world.url}/login/?{urlencode({'next': path})}")
    page.get_by_label("Username").fill(world.username)
    page.get_by_label("Password").fill(world.password)
    page.get_by_role("button", name="Sign in").click()


def assert_fits_sideways(page: Page) -> None:
    """Neither the page nor the main pane is wider than the window."""
    widths = page.evaluate(
        """() => {
            const main = document.querySelector("main");
            return [document.documentElement.scrollWidth, window.innerWidth,
                    main.scrollWidth, main.clientWidth];
        }"""
    )
    page_width, window_width, main_content, main_width = widths
    assert page_width <= window_width, widths
    assert main_content <= main_width, widths


def rows(page: Page) -> list[str]:
    return [
        text.strip()
        for text in page.locator("tr.dataset-row .dataset-link").all_inner_texts()
    ]


def test_sign_in_with_a_wrong_then_the_right_password(
    page: Page, browser_world: BrowserWorld
) -> None:
    # Anonymous visitors see the public datasets and a way to log in.
    page.goto(browser_world.url + "/")
    page.get_by_role("link", name="Log in").first.click()
    expect(page).to_have_url(browser_world.url + "/login/")
    screenshot(page, "01-login")
    page.get_by_label("Username").fill(browser_world.username)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "Please enter a correct username and password"
    )
    expect(page.get_by_label("Username")).to_have_value(browser_world.username)
    screenshot(page, "02-login-wrong-password")
    page.get_by_label("Password").fill(browser_world.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(browser_world.url + "/")
    expect(page.get_by_role("heading", name="Datasets")).to_be_visible()


def test_the_table_lists_the_organizations_datasets_with_status(
    page: Page, browser_world: BrowserWorld
) -> None:
    sign_in(page, browser_world)
    table = page.locator("table.datasets")
    expect(table).to_be_visible()
    assert sorted(rows(page)) == [
        "Mouse cortex, layer 4",
        "Zebrafish larva",
        "half_copied",
        "retina_sbem",
    ]
    broken = page.locator("tr.dataset-row", has_text="half_copied")
    expect(broken.locator(".badge")).to_have_text("Unusable")
    expect(broken.locator(".status-reason")).to_contain_text("boundingBox")
    cortex = page.locator("tr.dataset-row", has_text="Mouse cortex")
    expect(cortex.locator(".col-voxel")).to_have_text(
        TIMES.join(["11.24", "11.24", "28 nm"])
    )
    expect(cortex.locator(".col-size")).to_have_text("442 k")
    # Thumbnails come from the datastore and load (private ones with the viewer
    # token the dashboard puts into their URLs).
    thumbnail = cortex.locator("img.thumb")
    expect(thumbnail).to_have_attribute(
        "src", re.compile(re.escape(browser_world.services.datastore_url))
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('img.thumb')]"
        ".every(img => img.complete && img.naturalWidth > 0)"
    )
    screenshot(page, "03-datasets-1280x800")
    assert_fits_sideways(page)
    page.set_viewport_size({"width": 1440, "height": 900})
    screenshot(page, "04-datasets-1440x900")
    assert_fits_sideways(page)


def test_search_filters_the_table_without_reloading_and_updates_the_url(
    page: Page, browser_world: BrowserWorld
) -> None:
    sign_in(page, browser_world)
    page.evaluate("window.__samePage = true")
    # "/" anywhere focuses the search box.
    page.locator("h1").click()
    page.keyboard.press("/")
    search = page.get_by_role("searchbox", name="Search datasets")
    expect(search).to_be_focused()
    page.keyboard.type("plexiform")
    expect(page.locator("tr.dataset-row")).to_have_count(1)
    assert rows(page) == ["retina_sbem"]
    expect(page.locator(".result-count")).to_have_text(
        "1 dataset matches \N{LEFT DOUBLE QUOTATION MARK}plexiform"
        "\N{RIGHT DOUBLE QUOTATION MARK}"
    )
    expect(page).to_have_url(browser_world.url + "/?q=plexiform")
    assert page.evaluate("window.__samePage") is True
    screenshot(page, "05-search")
    search.fill("")
    expect(page.locator("tr.dataset-row")).to_have_count(4)
    expect(page).to_have_url(browser_world.url + "/")
    search.fill("no such thing")
    expect(page.get_by_text("No datasets match")).to_be_visible()
    # A reload keeps the search: it lives in the URL.
    page.reload()
    expect(search).to_have_value("no such thing")


def test_a_click_on_a_row_shows_its_details_with_rendered_markdown(
    page: Page, browser_world: BrowserWorld
) -> None:
    sign_in(page, browser_world)
    details = page.locator("#details")
    expect(details).to_contain_text("Select a dataset")
    page.locator("tr.dataset-row", has_text="Mouse cortex").locator(".col-size").click()
    expect(details.get_by_role("heading", name="Mouse cortex, layer 4")).to_be_visible()
    description = details.locator(".description")
    expect(description.locator("strong")).to_have_text("mouse somatosensory cortex")
    expect(description.locator("li")).to_have_count(2)
    expect(description.get_by_role("link", name="the paper")).to_have_attribute(
        "href", "https://example.org/paper"
    )
    expect(details.locator(".layer")).to_have_count(2)
    expect(details.locator(".layer", has_text="segmentation")).to_contain_text("uint32")
    expect(details).to_contain_text(TIMES.join(["96", "96", "48"]))
    page.wait_for_function(
        "() => { const img = document.querySelector('#details img.preview');"
        " return img && img.complete && img.naturalWidth > 0; }"
    )
    expect(page.locator("tr.dataset-row", has_text="Mouse cortex")).to_have_class(
        re.compile("is-selected")
    )
    screenshot(page, "06-details")
    # Keyboard: rows are focusable and Enter opens them.
    row = page.locator("tr.dataset-row", has_text="Zebrafish larva")
    row.focus()
    expect(row).to_be_focused()
    page.keyboard.press("Enter")
    expect(details.get_by_role("heading", name="Zebrafish larva")).to_be_visible()
    expect(details).to_contain_text("No description.")
    page.keyboard.press("ArrowUp")
    expect(page.locator("tr.dataset-row", has_text="retina_sbem")).to_be_focused()
    screenshot(page, "07-details-keyboard")


def test_scan_shows_a_toast_and_refresh_reloads_the_table(
    page: Page, browser_world: BrowserWorld
) -> None:
    sign_in(page, browser_world)
    page.get_by_role("button", name="Scan disk for new datasets").click()
    toast = page.locator(".toast")
    expect(toast).to_contain_text("Scan started on e2e")
    screenshot(page, "08-scan-toast")
    page.get_by_role("button", name="Dismiss").click()
    expect(toast).to_have_count(0)
    page.evaluate("document.querySelector('tbody').dataset.old = 'yes'")
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("tbody[data-old]")).to_have_count(0)
    expect(page.locator("tr.dataset-row")).to_have_count(4)


def test_datastores_page_shows_the_node_online(
    page: Page, browser_world: BrowserWorld
) -> None:
    sign_in(page, browser_world)
    # Datastores sit under Admin.
    page.get_by_role("link", name="Admin", exact=True).click()
    page.get_by_role("link", name="Datastores").click()
    expect(page.get_by_role("heading", name="Datastores", exact=True)).to_be_visible()
    node = page.locator("tbody tr", has_text="e2e")
    expect(node).to_contain_text(browser_world.services.datastore_url)
    expect(node.locator(".badge")).to_have_text("Online")
    screenshot(page, "09-datastores")


def test_organization_switcher_changes_the_list(
    page: Page, browser_world: BrowserWorld
) -> None:
    sign_in(page, browser_world)
    page.get_by_label("Organization").select_option("e2e_org")
    expect(page.get_by_label("Organization")).to_have_value("e2e_org")
    expect(page.locator("tr.dataset-row")).to_have_count(0)
    expect(page.get_by_text("No datasets yet")).to_be_visible()
    screenshot(page, "10-other-organization")
    page.get_by_label("Organization").select_option(browser_world.organization)
    expect(page.locator("tr.dataset-row")).to_have_count(4)


def test_unknown_pages_are_a_friendly_404(
    page: Page, browser_world: BrowserWorld, console: ConsoleWatch
) -> None:
    sign_in(page, browser_world)
    response = page.goto(browser_world.url + "/no/such/page/")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    screenshot(page, "11-not-found")
    console.expect(r"404")


def test_sign_out_from_the_user_menu(page: Page, browser_world: BrowserWorld) -> None:
    sign_in(page, browser_world)
    page.locator(".user-menu summary").click()
    screenshot(page, "12-user-menu")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(browser_world.url + "/login/")
    expect(page.get_by_text("You have been signed out.")).to_be_visible()
    page.goto(browser_world.url + "/")
    expect(page.get_by_role("link", name="Log in").first).to_be_visible()
    expect(page.locator(".user-menu")).to_have_count(0)
