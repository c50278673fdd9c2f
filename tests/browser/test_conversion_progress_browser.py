"""A converting dataset's row in the dataset table follows its job in Chromium:
the progress bar moves while the job reports, and the final status replaces it
when the job ends (htmx polling of the status cell)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .conftest import BrowserWorld, screenshot
from .test_dashboard_browser import sign_in

pytestmark = pytest.mark.browser

NAME = "browser_converting"

# A converting record with its running job, as an upload's finish leaves them.
_START = """
import sys
from metaserver.accounts.models import Organization
from metaserver.datasets.models import Dataset
from metaserver.datastores.models import DataStore
from metaserver.jobs.actions import do_create_job, do_record_progress
org = Organization.objects.get(name=sys.argv[1])
store = DataStore.objects.get(name=sys.argv[2])
Dataset.objects.create(
    organization=org, datastore=store, name=sys.argv[3], status="converting"
)
job = do_create_job(
    org, "convert", datastore=store, arguments={"dataset": org.name + "/" + sys.argv[3]}
)
do_record_progress(job, 0.25, "stage 1 of 4")
print(job.pk)
"""

# What the worker's reports do: progress, then the end (a failure here).
_REPORT = """
import sys
from metaserver.datasets.models import Dataset
from metaserver.jobs.actions import do_finish_job, do_record_progress
from metaserver.jobs.models import Job
job = Job.objects.get(pk=int(sys.argv[1]))
if sys.argv[2] == "end":
    do_finish_job(job, "failure", "stopped by the test")
    Dataset.objects.filter(name=sys.argv[3]).update(
        status="unusable", status_reason="conversion failed: stopped by the test"
    )
else:
    do_record_progress(job, float(sys.argv[2]))
"""

_REMOVE = """
import sys
from metaserver.datasets.models import Dataset
from metaserver.jobs.models import Job
Dataset.objects.filter(name=sys.argv[1]).delete()
Job.objects.filter(pk=int(sys.argv[2])).delete()
"""


def test_a_converting_row_shows_its_jobs_progress_until_the_end(
    page: Page, browser_world: BrowserWorld
) -> None:
    services = browser_world.services
    job = services.django(
        _START, browser_world.organization, services.datastore_name, NAME
    ).strip()
    try:
        sign_in(page, browser_world, "/")
        row = page.locator(f'tr[data-dataset="{browser_world.organization}/{NAME}"]')
        bar = row.get_by_role("progressbar")
        expect(bar).to_have_attribute("aria-valuenow", "25")
        expect(row.locator(".badge")).to_have_text("Converting")
        row.scroll_into_view_if_needed()
        screenshot(page, "65-dataset-list-converting")

        services.django(_REPORT, job, "0.75", NAME)
        expect(bar).to_have_attribute("aria-valuenow", "75", timeout=10_000)
        expect(row.locator(".progress-percent")).to_have_text("75\xa0%")

        services.django(_REPORT, job, "end", NAME)
        expect(row.locator(".badge")).to_have_text("Unusable", timeout=10_000)
        expect(row.get_by_role("progressbar")).to_have_count(0)
        expect(row).to_contain_text("conversion failed: stopped by the test")
    finally:
        services.django(_REMOVE, NAME, job)
