"""Real-browser tests: Debian's Chromium, driven by Playwright, against real services.

The session starts the metaserver and a datastore as processes (`tests/e2e/
services.py`) on a database of its own, sets up an organization, a user and sample
datasets the way an operator would (a setup process, files in binaryData, a scan,
API calls) and launches one headless Chromium. Each test gets a fresh browser
context (no cookies) and a page that fails the test on any console error or
uncaught exception. Screenshots go to `tests/browser/artifacts/`.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from shared.samples import write_sample_dataset
from tests.e2e.services import (
    ORG as E2E_ORG,
)
from tests.e2e.services import (
    Services,
    running_services,
    temporary_database,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
VIEWPORT = {"width": 1280, "height": 800}

ORGANIZATION = "browser_lab"
USERNAME = "alice"
PASSWORD = "vx-browser-test-passphrase"
SAMPLE_SHAPE = (96, 96, 48)

CORTEX_DESCRIPTION = """\
Serial-section EM of **mouse somatosensory cortex**, layer 4.

- imaged at 11.24 x 11.24 x 28 nm
- aligned with *voxelytics*

See [the paper](https://example.org/paper) for details.
"""

# Users, roles and tokens have no API yet: a process with Django does what an
# administrator's command would. Alice administrates the organization and is a
# member of the e2e one too, so the dashboard offers to switch.
_SETUP_USER = """
import sys
from metaserver.accounts.actions import (
    do_create_api_token, do_create_organization, do_create_user, do_set_role,
)
organization, username, password, other = sys.argv[1:5]
org = do_create_organization(organization, "Browser Lab")
user = do_create_user(username, password, organization=org, role="admin")
do_set_role(user, other, "member")
print(do_create_api_token(user, "browser-tests"))
"""


@dataclass
class BrowserWorld:
    services: Services
    token: str
    organization: str = ORGANIZATION
    username: str = USERNAME
    password: str = PASSWORD
    datasets: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return self.services.metaserver_url


def _set_up_world(services: Services) -> BrowserWorld:
    out = services.django(_SETUP_USER, ORGANIZATION, USERNAME, PASSWORD, E2E_ORG)
    token = out.strip().splitlines()[-1]
    for name in ("mouse_cortex", "retina_sbem", "zebrafish_larva"):
        write_sample_dataset(
            services.binary_data, ORGANIZATION, name, shape=SAMPLE_SHAPE
        )
    # A dataset whose properties file lacks its bounding box: listed as unusable.
    broken = services.binary_data / ORGANIZATION / "half_copied"
    broken.mkdir()
    (broken / "datasource-properties.json").write_text(
        json.dumps(
            {
                "id": {"name": "half_copied", "team": ORGANIZATION},
                "scale": [11.24, 11.24, 28],
                "dataLayers": [{"name": "color", "category": "color"}],
            }
        )
    )
    services.scan(ORGANIZATION, token=token)
    for name in ("mouse_cortex", "retina_sbem", "zebrafish_larva"):
        services.dataset(name, "active", organization=ORGANIZATION, token=token)
    services.dataset("half_copied", "unusable", organization=ORGANIZATION, token=token)
    # Thumbnails of the private ones load with the dashboard's viewer token (a
    # refused image would be a console error); the public one is what anonymous
    # visitors see.
    edits = {
        "mouse_cortex": {
            "display_name": "Mouse cortex, layer 4",
            "description": CORTEX_DESCRIPTION,
            "is_public": True,
        },
        "retina_sbem": {
            "description": "Inner plexiform layer of the *retina* (SBEM).",
        },
        "zebrafish_larva": {"display_name": "Zebrafish larva"},
    }
    with services.api(token) as client:
        for name, body in edits.items():
            response = client.patch(f"/api/datasets/{ORGANIZATION}/{name}/", json=body)
            assert response.status_code == 200, response.text
    return BrowserWorld(
        services=services,
        token=token,
        datasets=("half_copied", "mouse_cortex", "retina_sbem", "zebrafish_larva"),
    )


@pytest.fixture(scope="session")
def browser_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserWorld]:
    home = tmp_path_factory.mktemp("browser-home")
    try:
        with (
            temporary_database("voxelhub_browser") as database_url,
            running_services(database_url, home) as services,
        ):
            yield _set_up_world(services)
    finally:
        shutil.rmtree(home / "binaryData", ignore_errors=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class ConsoleWatch:
    """Console errors and uncaught exceptions of a page; any left fails the test."""

    errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            self.errors.append(f"console: {message.text} ({where})")

    def on_page_error(self, error: Exception) -> None:
        self.errors.append(f"page error: {error}")

    def expect(self, pattern: str) -> None:
        """Consume the one error matching `pattern` (a test that provokes it)."""
        matching = [e for e in self.errors if re.search(pattern, e)]
        assert matching, f"expected a console error like {pattern!r}: {self.errors}"
        self.errors.remove(matching[0])


@pytest.fixture
def console() -> ConsoleWatch:
    return ConsoleWatch()


@pytest.fixture
def page(browser: Browser, console: ConsoleWatch) -> Iterator[Page]:
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


def screenshot(page: Page, name: str) -> Path:
    """Save what the page shows to `artifacts/<name>.png` (to look at)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
