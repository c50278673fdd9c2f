"""Latency of `GET /api/datasets/` with 10,000 datasets in 300 folders, on PostgreSQL.

Builds an organization on a fresh database (Django's test-database machinery
makes `<name>_run` beside DATABASE_URL's database and drops it afterwards), then
times the listing for an admin and for a member who sees about half of it through
team folders, through Django's test Client in this process (full middleware, DRF,
serializer; no HTTP socket). The reference is a bare ORM `SELECT ... LIMIT 100` of
the same table in the same run. `--jit-off` connects with PostgreSQL's jit=off.
See README.md.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/voxelhub_bench"
GOAL_P95_MS = 50.0
PAGE_SIZE = 100
# Project folders; each has MIDS sample folders with LEAVES runs each: 300 folders.
TOPS, MIDS, LEAVES = 12, 4, 5
TEAMS = 12
MEMBER_TEAMS = (0, 1, 2, 3, 4, 11)  # team i is allowed on project i; 11 on samples
TAGS = 20
WORDS = ("mouse", "zebrafish", "fly", "human", "worm")
REGIONS = ("cortex", "retina", "cerebellum", "hippocampus", "larva", "wing")


def _configure(home: Path) -> None:
    """Environment for the settings module, before Django is imported."""
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="metaserver.config.settings",
        VOXELHUB_HOME=str(home),
        VOXELHUB_SECRET_KEY=secrets.token_urlsafe(50),
        VOXELHUB_DEBUG="0",
        VOXELHUB_LOG_LEVEL="WARNING",
    )


def _datasource(name: str) -> dict[str, Any]:
    """A two-layer datasource of realistic size (~1 kB of JSON)."""
    box = {"topLeft": [0, 0, 0], "width": 4096, "height": 4096, "depth": 2048}
    mags = [{"mag": [2**i, 2**i, 2**i], "path": f"./color/{2**i}"} for i in range(6)]
    return {
        "id": {"name": name, "team": "bench"},
        "scale": {"factor": [11.24, 11.24, 28.0], "unit": "nanometer"},
        "dataLayers": [
            {
                "name": layer,
                "category": layer,
                "boundingBox": box,
                "elementClass": "uint8" if layer == "color" else "uint32",
                "dataFormat": "zarr3",
                "mags": mags,
            }
            for layer in ("color", "segmentation")
        ],
    }


@dataclass
class Library:
    tokens: dict[str, str]
    folder_id: int
    visible: dict[str, int]


def build(datasets: int) -> Library:
    """The organization, its teams, users, 300 folders and `datasets` datasets."""
    from django.db import transaction  # noqa: TID251 (benchmarks the metaserver in-process)

    from metaserver.accounts.actions import (
        do_create_api_token,
        do_create_organization,
        do_create_team,
        do_create_user,
    )
    from metaserver.datasets.access import datasets_visible_to
    from metaserver.datasets.folder_actions import do_create_folder
    from metaserver.datasets.models import Dataset, Folder, Status, Tag
    from metaserver.datastores.actions import do_create_datastore

    organization = do_create_organization("bench", "Bench Lab")
    datastore, _ = do_create_datastore("bench-store", "http://127.0.0.1:9")
    teams = [do_create_team(organization, f"team{i:02d}") for i in range(TEAMS)]
    users = {
        "admin": do_create_user("admin", None, organization=organization, role="admin"),
        "member": do_create_user(
            "member",
            None,
            organization=organization,
            role="member",
            teams=[teams[i] for i in MEMBER_TEAMS],
        ),
    }
    root = Folder.objects.root_of(organization.pk)
    leaves: list[Folder] = []
    tops = []
    for t in range(TOPS):
        top = do_create_folder(root, f"project{t:02d}", allowed_teams=[teams[t]])
        tops.append(top)
        for m in range(MIDS):
            # Team 11 also reaches the first sample of every third project.
            extra = [teams[11]] if m == 0 and t % 3 == 0 else []
            mid = do_create_folder(top, f"sample{m}", allowed_teams=extra)
            leaves += [do_create_folder(mid, f"run{r}") for r in range(LEAVES)]
    tags = Tag.objects.bulk_create(
        Tag(organization=organization, name=f"tag{i:02d}") for i in range(TAGS)
    )
    with transaction.atomic():
        created = Dataset.objects.bulk_create(
            (
                Dataset(
                    organization=organization,
                    datastore=datastore,
                    folder=leaves[i % len(leaves)],
                    name=f"{WORDS[i % 5]}_{REGIONS[i % 6]}_{i:05d}",
                    display_name=f"{WORDS[i % 5].title()} {REGIONS[i % 6]} {i}",
                    description=f"Run {i} of the {REGIONS[i % 6]} series, **EM**.",
                    datasource=_datasource(f"ds{i:05d}"),
                    status=Status.UNUSABLE if i % 50 == 49 else Status.ACTIVE,
                    is_public=i % 100 == 0,
                )
                for i in range(datasets)
            ),
            batch_size=1000,
        )
        Dataset.tags.through.objects.bulk_create(
            Dataset.tags.through(dataset=d, tag=tags[j])
            for i, d in enumerate(created)
            for j in {i % TAGS, (i * 7) % TAGS}
            if i % 3 != 2
        )
        # Every 20th dataset is also allowed to a team directly.
        Dataset.allowed_teams.through.objects.bulk_create(
            Dataset.allowed_teams.through(dataset=d, team=teams[(i // 20) % TEAMS])
            for i, d in enumerate(created)
            if i % 20 == 0
        )
    return Library(
        tokens={p: do_create_api_token(u, "bench") for p, u in users.items()},
        folder_id=tops[0].pk,
        visible={p: datasets_visible_to(u).count() for p, u in users.items()},
    )


def timed(fn: Callable[[], Any], requests: int, warmup: int) -> list[float]:
    """Milliseconds of each of `requests` calls of `fn`, after `warmup` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(requests):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def percentile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def run(args: argparse.Namespace) -> None:
    import django  # noqa: TID251 (benchmarks the metaserver in-process)

    django.setup()
    from django.db import connection  # noqa: TID251 (benchmarks the metaserver in-process)
    from django.test import Client  # noqa: TID251 (benchmarks the metaserver in-process)
    from django.test.utils import (  # noqa: TID251 (as above)
        CaptureQueriesContext,
        setup_test_environment,
        teardown_test_environment,
    )

    from metaserver.datasets.models import Dataset

    setup_test_environment()
    if args.jit_off:
        # PostgreSQL compiles a query whose estimated cost passes jit_above_cost;
        # the listing's visibility predicate passes it from a few thousand rows.
        options = connection.settings_dict.setdefault("OPTIONS", {})
        options["options"] = "-c jit=off"
    # Not Django's default `test_<name>`: that could be a test run's database.
    connection.settings_dict["TEST"]["NAME"] = connection.settings_dict["NAME"] + "_run"
    database = connection.creation.create_test_db(verbosity=0, serialize=False)
    try:
        print(f"database {database}: building {args.datasets} datasets ...", flush=True)
        started = time.perf_counter()
        library = build(args.datasets)
        print(f"  built in {time.perf_counter() - started:.1f} s", flush=True)
        with connection.cursor() as cursor:
            # What autovacuum does on a server: statistics and the visibility map
            # (index-only scans need it).
            cursor.execute("VACUUM ANALYZE")
            cursor.execute("SHOW jit")
            jit = cursor.fetchone()[0]

        def reference() -> None:
            rows = list(Dataset.objects.order_by("name")[:PAGE_SIZE])
            if len(rows) != PAGE_SIZE:
                raise RuntimeError(f"reference read {len(rows)} rows")

        queries: dict[str, dict[str, Any]] = {
            "list": {},
            "folder": {"folder": library.folder_id, "recursive": "true"},
            "search": {"q": "cortex"},
            "tag": {"tag": "tag03"},
        }
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        print(
            f"\nGET /api/datasets/?page_size={PAGE_SIZE}, Django test Client "
            f"in-process, N={args.requests} after {args.warmup} warm-up requests; "
            f"PostgreSQL jit={jit}; load average {load}"
        )
        ref = timed(reference, args.requests, args.warmup)
        ref_p50 = statistics.median(ref)
        header = (
            f"{'who':<8} {'query':<8} {'count':>6} {'queries':>7} "
            f"{'p50 ms':>7} {'p95 ms':>7} {'p50/ref':>8}  p95<{GOAL_P95_MS:.0f}ms"
        )
        print(header)
        print("-" * len(header))
        print(
            f"{'ORM':<8} {'LIMIT':<8} {PAGE_SIZE:>6} {1:>7} {ref_p50:>7.1f} "
            f"{percentile(ref, 95):>7.1f} {1:>8.1f}  (reference)"
        )
        worst = 0.0
        for persona in ("admin", "member"):
            client = Client(HTTP_AUTHORIZATION=f"Token {library.tokens[persona]}")
            for label, params in queries.items():
                query = {"page_size": PAGE_SIZE, **params}

                def call(client: Any = client, query: dict[str, Any] = query) -> Any:
                    response = client.get("/api/datasets/", query)
                    if response.status_code != 200:
                        raise RuntimeError(response.content[:500])
                    return response

                samples = timed(call, args.requests, args.warmup)
                with CaptureQueriesContext(connection) as captured:
                    count = call().json()["count"]
                if args.explain:
                    explain(captured.captured_queries, f"{persona} {label}")
                p50, p95 = statistics.median(samples), percentile(samples, 95)
                worst = max(worst, p95)
                print(
                    f"{persona:<8} {label:<8} {count:>6} {len(captured):>7} "
                    f"{p50:>7.1f} {p95:>7.1f} {p50 / ref_p50:>8.1f}  "
                    f"{'yes' if p95 < GOAL_P95_MS else 'NO'}"
                )
        if args.profile:
            profile_list(library.tokens["admin"], args.profile)
        print(
            f"\nvisible datasets: admin {library.visible['admin']}, "
            f"member {library.visible['member']} (through folders of "
            f"{len(MEMBER_TEAMS)} teams)"
        )
        verdict = "met" if worst < GOAL_P95_MS else "NOT met"
        print(f"goal p95 < {GOAL_P95_MS:.0f} ms: {verdict} (worst p95 {worst:.1f} ms)")
    finally:
        connection.creation.destroy_test_db(database, verbosity=0)
        teardown_test_environment()


def profile_list(token: str, requests: int) -> None:
    """cProfile of `requests` admin list requests: where the time goes."""
    import cProfile
    import pstats

    from django.test import Client  # noqa: TID251 (benchmarks the metaserver in-process)

    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        client.get("/api/datasets/", {"page_size": PAGE_SIZE})
    profiler.disable()
    print(f"\n--- profile of {requests} admin list requests (cumulative)")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def explain(queries: list[dict[str, Any]], title: str) -> None:
    """The plan and time of each SQL statement one request sent."""
    from django.db import connection  # noqa: TID251 (benchmarks the metaserver in-process)

    print(f"\n--- {title}: {len(queries)} queries")
    for query in queries:
        sql = query["sql"]
        if not sql.lstrip().upper().startswith("SELECT"):
            continue
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT TEXT) " + sql)
            plan = [row[0] for row in cursor.fetchall()]
        print(f"{plan[-1].strip():<30} {sql[:110]}")
        if args_verbose_plans:
            print("\n".join(plan))


args_verbose_plans = os.environ.get("VOXELHUB_BENCH_PLANS") == "1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=int, default=10_000)
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print each query's execution time (VOXELHUB_BENCH_PLANS=1: plans)",
    )
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="also print a cProfile of N admin list requests",
    )
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--jit-off", action="store_true", help="connect with PostgreSQL's jit=off"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="voxelhub-bench-") as home:
        # WhiteNoise warns about a missing static folder.
        (Path(home) / "static").mkdir()
        _configure(Path(home))
        run(args)


if __name__ == "__main__":
    main()
