"""The dashboard's pages: who sees what, search, details, scan, datastores, errors."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from metaserver.accounts.models import Membership
from metaserver.dashboard import views
from metaserver.dashboard.summaries import TIMES, human_count
from metaserver.datasets.models import Dataset
from metaserver.datastores.datastore_client import DatastoreUnavailable
from metaserver.datastores.models import DataStore

from .world import PASSWORD, World, datasource

HTMX = {"HX-Request": "true"}
TABLE = {**HTMX, "HX-Target": "dataset-table"}


def dims(*parts: str) -> str:
    return TIMES.join(parts)


def client_for(world: World, persona: str) -> Client:
    client = Client()
    if persona != "anonymous":
        client.force_login(world.users[persona])
    return client


def listed(response: Any) -> set[str]:
    """Technical names of the datasets in the table (from their details links)."""
    html = response.content.decode()
    return set(
        re.findall(r'class="dataset-link" href="/datasets/[^/]+/([^/]+)/"', html)
    )


@pytest.mark.parametrize("url", ["/datasets/lab/private/", "/admin-pages/datastores/"])
def test_pages_redirect_anonymous_visitors_to_the_login(
    datasets: dict[str, Dataset], url: str
) -> None:
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={url}"


def test_htmx_requests_of_an_expired_session_reload_the_login_page(
    world: World,
) -> None:
    # The list itself shows public datasets to anyone; changes need a login.
    response = Client().post(
        "/datasets/scan/", headers={**HTMX, "HX-Current-URL": "http://testserver/?q=x"}
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/login/?next=/%3Fq%3Dx"


def test_wrong_password_says_so_and_right_one_leads_to_next(world: World) -> None:
    client = Client()
    page = client.get("/login/?next=/admin-pages/datastores/")
    assert page.status_code == 200
    assert b'name="next" value="/admin-pages/datastores/"' in page.content
    wrong = client.post(
        "/login/",
        {"username": "admin", "password": "nope", "next": "/admin-pages/datastores/"},
    )
    assert wrong.status_code == 200
    assert b"Please enter a correct username and password" in wrong.content
    right = client.post(
        "/login/",
        {"username": "admin", "password": PASSWORD, "next": "/admin-pages/datastores/"},
    )
    assert right.status_code == 302
    assert right["Location"] == "/admin-pages/datastores/"


def test_login_without_next_leads_to_the_datasets_and_logout_back(
    world: World,
) -> None:
    client = Client()
    response = client.post("/login/", {"username": "member", "password": PASSWORD})
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200
    logout = client.post("/logout/")
    assert logout["Location"] == "/login/"
    assert b"You have been signed out" in client.get("/login/").content
    assert b">Log in</a>" in client.get("/").content


def test_login_refuses_an_offsite_next(world: World) -> None:
    response = Client().post(
        "/login/",
        {"username": "member", "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert response["Location"] == "/"


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("admin", {"private", "public", "hidden", "broken"}),
        ("dataset_manager", {"private", "public", "hidden", "broken"}),
        ("member", {"private", "public"}),
        ("member_without_team", {"public"}),
        ("outsider", {"other_private"}),
    ],
)
def test_home_lists_the_datasets_of_the_current_organization_a_user_may_see(
    world: World, datasets: dict[str, Dataset], persona: str, expected: set[str]
) -> None:
    response = client_for(world, persona).get("/")
    assert response.status_code == 200
    assert listed(response) == expected


def test_outsider_sees_none_of_labs_datasets(
    world: World, datasets: dict[str, Dataset]
) -> None:
    html = client_for(world, "outsider").get("/").content.decode()
    for name in ("private", "public", "hidden", "broken"):
        assert f"/datasets/lab/{name}/" not in html


def test_unusable_datasets_show_their_reason(
    world: World, datasets: dict[str, Dataset]
) -> None:
    html = client_for(world, "admin").get("/").content.decode()
    assert 'class="badge badge-unusable"' in html
    assert "not found on disk" in html


def test_rows_show_thumbnail_layers_voxel_size_and_size(
    world: World, datasets: dict[str, Dataset]
) -> None:
    html = client_for(world, "member").get("/").content.decode()
    # With the member's viewer token, so private thumbnails load too.
    assert (
        'src="http://store1:8080/data/datasets/lab/private/layers/color/'
        "thumbnail.jpg?width=64&amp;height=64&amp;token=vxt_"
    ) in html
    assert dims("11.24", "11.24", "28 nm") in html
    assert ">131 k</td>" in html  # 64 x 64 x 32
    assert 'class="chip chip-color"' in html


def test_voxel_size_may_be_a_plain_list_in_nanometers(world: World) -> None:
    source = datasource("plain")
    source["scale"] = [4, 4, 40]
    world.dataset("plain", datasource=source)
    html = client_for(world, "admin").get("/").content.decode()
    assert dims("4", "4", "40 nm") in html


def test_thumbnails_use_the_datastores_public_url(world: World) -> None:
    world.dataset("far", datastore=world.other_datastore)
    html = client_for(world, "admin").get("/").content.decode()
    assert "https://data.example.org/data/datasets/lab/far/layers/color/" in html


def test_a_datasource_the_schema_refuses_still_lists_its_layer_names(
    world: World,
) -> None:
    world.dataset(
        "odd",
        datasource={"dataLayers": [{"name": "em", "category": "color"}]},
        status="unusable",
        status_reason="no boundingBox",
    )
    response = client_for(world, "admin").get("/")
    assert response.status_code == 200
    assert ">em</span>" in response.content.decode()


@pytest.mark.parametrize(("value", "text"), [(999, "999"), (131_072, "131 k")])
def test_sizes_read_as_three_significant_digits(value: int, text: str) -> None:
    assert human_count(value) == text
    assert human_count(2_123_456_789) == "2.12 G"


def test_search_matches_name_display_name_and_description(world: World) -> None:
    world.dataset("cortex_v1", display_name="Mouse cortex")
    world.dataset("retina", description="Inner plexiform layer of the **retina**")
    world.dataset("cerebellum")
    client = client_for(world, "admin")
    assert listed(client.get("/", {"q": "CORTEX"})) == {"cortex_v1"}
    assert listed(client.get("/", {"q": "mouse"})) == {"cortex_v1"}
    assert listed(client.get("/", {"q": "plexiform"})) == {"retina"}
    assert b"No datasets match" in client.get("/", {"q": "zebrafish"}).content


def test_search_from_htmx_returns_the_table_only_and_updates_the_url(
    world: World, datasets: dict[str, Dataset]
) -> None:
    response = client_for(world, "admin").get("/", {"q": "priv"}, headers=TABLE)
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert html.lstrip().startswith('<div id="dataset-table"')
    assert listed(response) == {"private"}
    assert response["HX-Replace-Url"] == "/?q=priv"


def test_history_restore_gets_the_whole_page(
    world: World, datasets: dict[str, Dataset]
) -> None:
    response = client_for(world, "admin").get(
        "/", headers={**TABLE, "HX-History-Restore-Request": "true"}
    )
    assert b"<html" in response.content


def test_datasets_come_in_pages_of_fifty(world: World) -> None:
    for index in range(60):
        world.dataset(f"ds{index:02d}")
    client = client_for(world, "admin")
    first, second = client.get("/"), client.get("/", {"page": "2"})
    assert len(listed(first)) == 50
    assert len(listed(second)) == 10
    assert b"page 2 of 2" in second.content
    assert len(listed(client.get("/", {"page": "junk"}))) == 50


def _home_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/")
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("persona", ["member", "admin"])
def test_home_runs_a_constant_number_of_queries(world: World, persona: str) -> None:
    for index in range(5):
        world.dataset(f"few{index}", teams=(world.alpha,))
    client = client_for(world, persona)
    # The first page of a session also stores its viewer token.
    _home_queries(client)
    few = _home_queries(client)
    for index in range(55):
        world.dataset(f"more{index:02d}", teams=(world.alpha,))
    many = _home_queries(client)
    # Session, user, organizations, two role checks, count, one page of datasets
    # (organization and datastore joined), their tags, which of them are
    # editable, the tag filter's counts, the folder tree: nothing per row.
    assert few == many, (few, many)
    assert many <= 11


def test_details_show_markdown_layers_and_voxel_size(world: World) -> None:
    world.dataset(
        "described",
        display_name="Described dataset",
        description="# Origin\n\nImaged by **Jane** at [the lab](https://example.org).",
    )
    response = client_for(world, "admin").get("/datasets/lab/described/", headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert "Described dataset" in html
    assert "<strong>Jane</strong>" in html
    assert '<a href="https://example.org" rel="noopener noreferrer nofollow">' in html
    assert "<code>uint8</code>" in html
    assert dims("64", "64", "32") in html
    assert "1-1-1" in html
    assert dims("11.24", "11.24", "28 nm") in html


def test_a_description_with_a_script_renders_without_it(world: World) -> None:
    world.dataset(
        "xss",
        description=(
            "Hello <script>alert('x')</script> "
            '<img src=x onerror="alert(1)"> [click](javascript:alert(2))'
        ),
    )
    for headers in (HTMX, {}):
        html = (
            client_for(world, "admin")
            .get("/datasets/lab/xss/", headers=headers)
            .content.decode()
        )
        description = html.split('aria-label="Description"', 1)[1]
        assert "<script" not in description
        # Whatever remains of the tags is text, never an element or a link.
        assert not re.search(r"<[^>]*onerror", description)
        assert 'href="javascript:' not in description
        assert "Hello" in description


def test_details_without_javascript_are_a_page_of_their_own(
    world: World, datasets: dict[str, Dataset]
) -> None:
    response = client_for(world, "member").get("/datasets/lab/private/")
    assert response.status_code == 200
    assert b"<html" in response.content
    assert b"All datasets" in response.content


@pytest.mark.parametrize(
    ("persona", "name"),
    [
        ("member", "hidden"),
        ("member", "broken"),
        ("outsider", "private"),
        ("member", "missing"),
    ],
)
def test_details_of_datasets_out_of_reach_are_an_html_404(
    world: World, datasets: dict[str, Dataset], persona: str, name: str
) -> None:
    response = client_for(world, persona).get(f"/datasets/lab/{name}/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert b"Page not found" in response.content


@pytest.mark.parametrize(
    "persona", ["member", "member_without_team", "dataset_manager"]
)
def test_datastore_page_is_forbidden_to_non_admins(world: World, persona: str) -> None:
    response = client_for(world, persona).get("/admin-pages/datastores/")
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert b"Not allowed" in response.content


@pytest.mark.parametrize("persona", ["admin", "superuser"])
def test_datastore_page_shows_nodes_and_whether_they_are_online(
    world: World, persona: str
) -> None:
    DataStore.objects.filter(pk=world.datastore.pk).update(
        last_heartbeat=timezone.now(), version="0.1.0"
    )
    html = client_for(world, persona).get("/admin-pages/datastores/").content.decode()
    store1, store2 = html.split('<th scope="row">store1</th>')[1].split(
        '<th scope="row">store2</th>'
    )
    assert "http://store1:8080" in store1
    assert "Online" in store1
    assert "0\xa0minutes ago" in store1
    assert "https://data.example.org" in store2
    assert "Offline" in store2
    assert "never" in store2


def test_only_admins_see_the_datastores_link(world: World) -> None:
    # Datastores sit under Admin (see test_dashboard_admin.py for the sidebar).
    assert b'href="/admin-pages/"' in client_for(world, "admin").get("/").content
    assert b"/admin-pages/" not in client_for(world, "member").get("/").content
    admin = client_for(world, "admin").get("/admin-pages/teams/").content
    assert b'href="/admin-pages/datastores/"' in admin


def test_scan_button_is_for_admins_and_dataset_managers(world: World) -> None:
    for persona, shown in (
        ("admin", True),
        ("dataset_manager", True),
        ("member", False),
    ):
        html = client_for(world, persona).get("/").content
        assert (b"Scan disk for new datasets" in html) is shown, persona


def test_scan_asks_the_organizations_datastores_and_toasts_the_result(
    world: World, datasets: dict[str, Dataset], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []

    def check_inbox(datastore: DataStore, organization: str) -> dict[str, int]:
        calls.append((datastore.name, organization))
        return {"active": 3, "needs_review": 1, "unusable": 0}

    monkeypatch.setattr(views, "check_inbox", check_inbox)
    response = client_for(world, "dataset_manager").post(
        "/datasets/scan/", headers=HTMX
    )
    assert response.status_code == 200
    assert calls == [("store1", "lab")]
    assert "Scan started on store1 (3 active, 1 to review, 0 unusable)" in (
        response.content.decode()
    )
    assert "datasets-changed" in json.loads(response["HX-Trigger"])


def test_scan_of_an_unreachable_datastore_says_so(
    world: World, datasets: dict[str, Dataset], monkeypatch: pytest.MonkeyPatch
) -> None:
    def check_inbox(datastore: DataStore, organization: str) -> dict[str, int]:
        raise DatastoreUnavailable(datastore, "ConnectError")

    monkeypatch.setattr(views, "check_inbox", check_inbox)
    client = client_for(world, "admin")
    response = client.post("/datasets/scan/", headers=HTMX)
    assert b"toast-error" in response.content
    assert b"datastore store1 is unreachable (ConnectError)" in response.content
    assert "HX-Trigger" not in response
    # Without JavaScript: back to the list, the message shown there.
    plain = client.post("/datasets/scan/")
    assert plain.status_code == 302
    assert b"is unreachable" in client.get("/").content


def test_scan_is_forbidden_to_members_and_needs_post(world: World) -> None:
    client = client_for(world, "member")
    assert client.post("/datasets/scan/", headers=HTMX).status_code == 403
    assert client_for(world, "admin").get("/datasets/scan/").status_code == 405


def test_scan_needs_the_csrf_token(world: World) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users["admin"])
    assert client.post("/datasets/scan/", headers=HTMX).status_code == 403


def test_organization_switcher_filters_everything_and_only_offers_members(
    world: World, datasets: dict[str, Dataset]
) -> None:
    client = client_for(world, "superuser")
    home = client.get("/").content.decode()
    assert 'id="org-select"' in home
    assert listed(client.get("/")) == {"private", "public", "hidden", "broken"}
    switched = client.post("/organization/", {"organization": "other", "next": "/"})
    assert switched["Location"] == "/"
    assert listed(client.get("/")) == {"other_private"}
    # A member of one organization has no switcher and cannot switch elsewhere.
    member = client_for(world, "member")
    assert 'id="org-select"' not in member.get("/").content.decode()
    member.post("/organization/", {"organization": "other"})
    assert listed(member.get("/")) == {"private", "public"}


def test_switching_leaves_a_dataset_page_for_the_list(world: World) -> None:
    response = client_for(world, "superuser").post(
        "/organization/",
        {"organization": "other", "next": "/datasets/lab/private/"},
    )
    assert response["Location"] == "/"


def test_unknown_pages_are_html_and_the_api_stays_json(world: World) -> None:
    client = client_for(world, "member")
    page = client.get("/no/such/page/")
    assert page.status_code == 404
    assert b"Page not found" in page.content
    api = client.get("/api/no/such/route/")
    assert api.status_code == 404
    assert api["Content-Type"].startswith("application/json")


@pytest.mark.urls("tests.metaserver.crash_urls")
def test_crashes_outside_the_api_render_the_dashboards_500_page(
    db: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.CRITICAL, logger="django.request"):
        response = Client(raise_request_exception=False).get("/crash/")
    assert response.status_code == 500
    assert b"Something went wrong" in response.content
    assert b"secret internal detail" not in response.content


def test_a_user_without_organization_is_told_so(world: World) -> None:
    Membership.objects.filter(user=world.users["member"]).delete()
    response = client_for(world, "member").get("/")
    assert response.status_code == 200
    assert b"You are not a member of any organization" in response.content
    assert b"Scan disk" not in response.content
