"""Admin pages and the Jobs page in a real Chromium, against the real services.

An admin creates a team, a user in it and makes them its manager; the Jobs page
shows a job's progress advancing while a datastore reports it (signed, through
the datastore-only endpoint); a member sees no Admin link and is refused.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from shared.protocol import DATASTORE_KEY_HEADER
from shared.tokens import sign_request

from .conftest import BrowserWorld, ConsoleWatch, screenshot

pytestmark = pytest.mark.browser

TEAM = "imaging_core"
NEW_USER = "bob_imaging"
MEMBER = "mallory_member"
MEMBER_PASSWORD = "vx-member-browser-passphrase"

_CREATE_MEMBER = """
import sys
from metaserver.accounts.actions import do_create_user
do_create_user(sys.argv[1], sys.argv[2], organization=sys.argv[3], role="member")
"""

_CREATE_JOB = """
import sys
from metaserver.accounts.models import Organization, User
from metaserver.datastores.models import DataStore
from metaserver.jobs.actions import do_create_job
job = do_create_job(
    Organization.objects.get(name=sys.argv[1]),
    "convert",
    owner=User.objects.get(username=sys.argv[2]),
    datastore=DataStore.objects.get(name=sys.argv[3]),
    arguments={"source": "upload/tiff-stack"},
)
print(job.pk)
"""

_DATASTORE_TOKEN = """
import sys
from metaserver.datastores.models import DataStore
print(DataStore.objects.get(name=sys.argv[1]).metaserver_token)
"""


def sign_in(page: Page, world: BrowserWorld, username: str, password: str) -> None:
    page.goto(world.url + "/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(world.url + "/")


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


def report(world: BrowserWorld, job_id: int, body: dict[str, object]) -> None:
    """What a datastore worker does: a signed POST to the job's progress URL."""
    services = world.services
    token = services.django(_DATASTORE_TOKEN, services.datastore_name).strip()
    path = f"/api/jobs/{job_id}/progress"
    raw = json.dumps(body).encode()
    headers = {
        DATASTORE_KEY_HEADER: services.datastore_key,
        "Content-Type": "application/json",
        **sign_request(token, "POST", path, raw),
    }
    response = httpx.post(services.metaserver_url + path, content=raw, headers=headers)
    assert response.status_code == 200, response.text


def new_job(world: BrowserWorld) -> int:
    out = world.services.django(
        _CREATE_JOB,
        world.organization,
        world.username,
        world.services.datastore_name,
    )
    return int(out.strip().splitlines()[-1])


def test_an_admin_creates_a_team_and_a_user_and_makes_them_manager(
    page: Page, browser_world: BrowserWorld, console: ConsoleWatch
) -> None:
    world = browser_world
    sign_in(page, world, world.username, world.password)
    page.get_by_role("navigation", name="Sections").get_by_role(
        "link", name="Admin"
    ).click()
    expect(page.get_by_role("heading", name="Teams", exact=True)).to_be_visible()

    # A team, by keyboard: type the name and press Enter.
    page.get_by_label("New team").fill(TEAM)
    page.get_by_label("New team").press("Enter")
    expect(page.get_by_role("heading", name=TEAM)).to_be_visible()
    expect(page.locator(".toast")).to_contain_text(f"Team {TEAM} created.")
    expect(page.get_by_text("No members yet.")).to_be_visible()

    # A taken name: the server's 409 message, next to the field.
    page.get_by_role("link", name="← Teams").click()
    page.get_by_label("New team").fill(TEAM)
    page.get_by_role("button", name="Create team").click()
    expect(page.locator("#name-error")).to_have_text(
        f"team '{TEAM}' already exists in {world.organization}"
    )
    expect(page.get_by_label("New team")).to_have_attribute("aria-invalid", "true")
    console.expect(r"409")

    # A user in the team, without a password: an invitation.
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Users"
    ).click()
    page.get_by_role("link", name="New user").click()
    page.get_by_label("Username").fill(NEW_USER)
    page.get_by_label("Email").fill("bob@example.org")
    page.get_by_label("First name").fill("Bob")
    page.get_by_label("Role").select_option("member")
    page.get_by_label(f"Member of {TEAM}").check()
    screenshot(page, "26-admin-new-user")
    page.get_by_role("button", name="Create user").click()
    expect(page.locator(".toast")).to_contain_text(
        f"User {NEW_USER} created. The account has no password yet"
    )
    row = page.locator(f"#user-{NEW_USER}")
    expect(row).to_contain_text("No password yet")
    expect(row.locator(".chip")).to_have_text(TEAM)
    screenshot(page, "21-admin-users")
    assert_fits_sideways(page)
    page.set_viewport_size({"width": 1440, "height": 900})
    assert_fits_sideways(page)
    page.set_viewport_size({"width": 1280, "height": 800})

    # Manager of the team, from the team page's switch.
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Teams"
    ).click()
    teams = page.locator("table.teams")
    expect(
        teams.locator("tr", has_text=TEAM).locator(".col-number").first
    ).to_have_text("1")
    screenshot(page, "20-admin-teams")
    page.get_by_role("link", name=TEAM).click()
    switch = page.get_by_role("switch", name=f"{NEW_USER} manages {TEAM}")
    expect(switch).to_have_attribute("aria-checked", "false")
    switch.click()
    expect(page.locator(".toast")).to_contain_text(f"{NEW_USER} now manages {TEAM}.")
    switch = page.get_by_role("switch", name=f"{NEW_USER} manages {TEAM}")
    expect(switch).to_have_attribute("aria-checked", "true")
    # alice can be added from the select too.
    page.get_by_label("Member of the organization").select_option(world.username)
    page.get_by_role("button", name="Add to team").click()
    expect(page.locator(f"#member-{world.username}")).to_be_visible()
    screenshot(page, "22-admin-team")
    assert_fits_sideways(page)

    # The users list shows the managed team.
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Users"
    ).click()
    expect(page.locator(f"#user-{NEW_USER} .chip-manager")).to_contain_text(TEAM)


def test_deleting_a_team_asks_in_a_dialog(
    page: Page, browser_world: BrowserWorld
) -> None:
    world = browser_world
    sign_in(page, world, world.username, world.password)
    page.goto(world.url + "/admin-pages/teams/")
    page.get_by_label("New team").fill("short_lived")
    page.get_by_role("button", name="Create team").click()
    expect(page.get_by_role("heading", name="short_lived")).to_be_visible()
    page.get_by_role("button", name="Delete team…").click()
    dialog = page.get_by_role("dialog", name="Delete team short_lived?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Keep it")).to_be_focused()
    screenshot(page, "23-admin-delete-dialog")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("heading", name="short_lived")).to_be_visible()
    page.get_by_role("button", name="Delete team…").click()
    dialog.get_by_role("button", name="Delete team").click()
    expect(page).to_have_url(world.url + "/admin-pages/teams/")
    expect(page.locator(".toast")).to_contain_text("Team short_lived deleted.")
    expect(page.get_by_role("link", name="short_lived")).to_have_count(0)


def test_the_last_admin_is_told_why_they_cannot_step_down(
    page: Page, browser_world: BrowserWorld, console: ConsoleWatch
) -> None:
    world = browser_world
    sign_in(page, world, world.username, world.password)
    page.goto(world.url + f"/admin-pages/users/{world.username}/")
    page.get_by_label(re.compile("^Role in")).select_option("member")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("alert")).to_have_text(
        f"{world.username} is the last admin of {world.organization}; "
        "make someone else admin first"
    )
    screenshot(page, "27-admin-last-admin")
    assert_fits_sideways(page)
    console.expect(r"409")


def test_the_jobs_page_shows_progress_advancing_live(
    page: Page, browser_world: BrowserWorld
) -> None:
    world = browser_world
    job = new_job(world)
    other = new_job(world)
    sign_in(page, world, world.username, world.password)
    page.get_by_role("link", name="Jobs").click()
    expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    page.evaluate("window.__samePage = true")
    bar = page.get_by_role("progressbar", name=f"Progress of job {job}")
    expect(bar).to_have_attribute("aria-valuenow", "0")
    expect(page.locator(f"#job-{job} .badge")).to_have_text("Pending")

    report(world, job, {"progress": 0.25, "message": "5 of 20 shards"})
    expect(bar).to_have_attribute("aria-valuenow", "25", timeout=8000)
    expect(page.locator(f"#job-{job} .badge")).to_have_text("Running")
    expect(page.locator(f"#job-{job}")).to_contain_text("5 of 20 shards")
    expect(page.locator(f"#job-{job} .progress-percent")).to_have_text("25\xa0%")

    report(world, job, {"progress": 0.6, "message": "12 of 20 shards"})
    expect(bar).to_have_attribute("aria-valuenow", "60", timeout=8000)
    screenshot(page, "24-jobs")
    assert_fits_sideways(page)
    page.set_viewport_size({"width": 1440, "height": 900})
    assert_fits_sideways(page)

    # The other job is cancelled from its button, after the dialog.
    page.locator(f"#cancel-job-{other}").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel job").click()
    expect(page.locator(f"#job-{other} .badge")).to_have_text("Cancelled")
    expect(page.locator(".toast")).to_contain_text(f"Job {other} cancelled.")

    report(
        world,
        job,
        {
            "state": "success",
            "result": {"dataset": f"{world.organization}/mouse_cortex"},
        },
    )
    expect(page.locator(f"#job-{job} .badge")).to_have_text("Succeeded", timeout=8000)
    expect(bar).to_have_attribute("aria-valuenow", "100")
    link = page.locator(f"#job-{job}").get_by_role("link", name="mouse_cortex")
    expect(link).to_have_attribute(
        "href", f"/datasets/{world.organization}/mouse_cortex/"
    )
    # Nothing runs any more: the table stops polling. All without a reload.
    expect(page.locator("[data-polling]")).to_have_count(0)
    assert page.evaluate("window.__samePage") is True
    screenshot(page, "25-jobs-finished")


def test_a_member_sees_no_admin_link_and_is_refused_admin_pages(
    page: Page, browser_world: BrowserWorld, console: ConsoleWatch
) -> None:
    world = browser_world
    world.services.django(_CREATE_MEMBER, MEMBER, MEMBER_PASSWORD, world.organization)
    sign_in(page, world, MEMBER, MEMBER_PASSWORD)
    nav = page.get_by_role("navigation", name="Sections")
    expect(nav.get_by_role("link", name="Jobs")).to_be_visible()
    expect(nav.get_by_role("link", name="Admin")).to_have_count(0)
    for path in ("/admin-pages/teams/", "/admin-pages/users/", "/admin-pages/"):
        response = page.goto(world.url + path)
        assert response is not None
        assert response.status == 403, path
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
        console.expect(r"403")
    page.goto(world.url + "/jobs/")
    expect(page.get_by_text("No jobs yet")).to_be_visible()
