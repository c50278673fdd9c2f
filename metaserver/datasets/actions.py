"""Changes to datasets. Each owns its transaction."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypedDict

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from metaserver.accounts.models import Organization
from metaserver.datasets.bulk import (
    DatasetState,
    insert_datasets,
    load_states,
    update_datasets,
)
from metaserver.datasets.models import Dataset, Folder, Status
from metaserver.datasets.reports import (
    MAX_REASON_CHARS,
    DatasetReport,
    ReportError,
    parse_report,
)
from metaserver.datastores.actions import do_record_heartbeat
from metaserver.datastores.models import DataStore
from shared.datasource import DatasourceError, parse_datasource
from shared.protocol import DatasetStatus

logger = logging.getLogger(__name__)

NOT_FOUND_ON_DISK = "not found on disk"
# First key of the advisory lock that serializes the reports of one datastore.
_REPORT_LOCK_CLASS = 0x766F78
# The "ignored" list of a report answer is for people reading logs; keep it short.
MAX_IGNORED_LISTED = 1000


class ReportConflict(RuntimeError):
    """Another report created the same dataset concurrently; retrying resolves it."""


class ReportResult(TypedDict):
    created: int
    updated: int
    unusable: int
    ignored: list[str]


def _evaluate(report: DatasetReport) -> tuple[Status, str]:
    """The status and reason a reported dataset gets after checking its datasource."""
    if report.status is DatasetStatus.UNUSABLE:
        return Status.UNUSABLE, report.reason or "reported unusable by the datastore"
    if report.datasource is None:
        if report.status is DatasetStatus.NEEDS_REVIEW:
            return Status.NEEDS_REVIEW, report.reason
        return Status.UNUSABLE, "no datasource-properties.json"
    try:
        parse_datasource(report.datasource)
    except DatasourceError as e:
        text = f"invalid datasource-properties.json: {e}"
        return Status.UNUSABLE, text[:MAX_REASON_CHARS]
    except Exception:
        # A bug in the parser must not lose the rest of the scan.
        logger.exception("checking the datasource of %s failed", report.label)
        return Status.UNUSABLE, "the datasource could not be checked (internal error)"
    return Status(report.status.value), report.reason


def _apply(state: DatasetState, status: Status, reason: str, datasource: Any) -> bool:
    if (state.status, state.status_reason, state.datasource) == (
        status,
        reason,
        datasource,
    ):
        return False
    state.status, state.status_reason, state.datasource = status, reason, datasource
    return True


def _changed_on_disk(state: DatasetState, status: Status, datasource: Any) -> bool:
    return (
        state.status == Status.ACTIVE
        and status == Status.ACTIVE
        and state.datasource is not None
        and datasource is not None
        and datasource != state.datasource
    )


def do_apply_dataset_report(
    datastore: DataStore,
    reports: Sequence[DatasetReport] | Sequence[dict[str, Any]],
    *,
    max_datasets: int = 50_000,
) -> ReportResult:
    """Record the complete list of datasets `datastore` found in one scan.

    New datasets are created, reported ones updated (their datasource checked with
    `shared.datasource`; an invalid one makes the dataset `unusable` naming the
    problem; a valid but different one of an active dataset is kept as its
    `pending_datasource` until a person applies it), and this datastore's
    datasets missing from the list become `unusable` "not found on disk" (never
    deleted; remote and converting ones are left alone).
    Unknown organizations, invalid names and datasets another datastore already
    serves are ignored and listed. `unusable` in the answer counts this datastore's
    unusable datasets after the report. One transaction, a constant number of
    queries whatever the number of datasets. Raises ReportError for a malformed
    report and ReportConflict when a concurrent report won a race.
    """
    if reports and not isinstance(reports[0], DatasetReport):
        parsed = parse_report({"datasets": list(reports)}, max_datasets=max_datasets)
    else:
        parsed = [r for r in reports if isinstance(r, DatasetReport)]
    now = timezone.now()
    ignored: list[str] = []
    valid = []
    for report in parsed:
        if report.has_valid_names:
            valid.append(report)
        else:
            ignored.append(report.label)
    # A report is a sign of life; recorded apart so that a long report does not
    # hold the datastore's row and make its heartbeats wait.
    do_record_heartbeat(datastore)
    try:
        with transaction.atomic():
            _lock_reports_of(datastore)
            result = _apply_report(datastore, valid, ignored, now)
    except IntegrityError as e:
        raise ReportConflict(str(e)) from None
    if ignored:
        logger.warning(
            "datastore %s reported %d dataset(s) that were ignored, e.g. %s",
            datastore.name,
            len(ignored),
            ", ".join(ignored[:5]),
        )
    return result


def _lock_reports_of(datastore: DataStore) -> None:
    """Two reports of one datastore run one after the other (until commit)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)",
                [_REPORT_LOCK_CLASS, datastore.pk],
            )
    # SQLite: transactions are IMMEDIATE (settings), so writers are serialized.


def _apply_report(
    datastore: DataStore,
    reports: list[DatasetReport],
    ignored: list[str],
    now: datetime,
) -> ReportResult:
    org_ids = dict(
        Organization.objects.filter(
            name__in={r.organization for r in reports}
        ).values_list("name", "pk")
    )
    states = load_states(
        Q(datastore=datastore)
        | Q(organization_id__in=org_ids.values(), name__in={r.name for r in reports})
    )
    by_key = {(state.organization_id, state.name): state for state in states}
    seen: set[int] = set()
    new: list[Dataset] = []
    changed: list[DatasetState] = []
    for report in reports:
        org_id = org_ids.get(report.organization)
        if org_id is None:
            ignored.append(report.label)
            continue
        state = by_key.get((org_id, report.name))
        if state is not None and state.datastore_id != datastore.pk:
            ignored.append(report.label)
            continue
        if state is not None:
            seen.add(state.pk)
            recorded = (state.status, state.status_reason, state.datasource)
            reported = (report.status.value, report.reason, report.datasource)
            if recorded == reported and state.pending_datasource is None:
                continue  # recorded exactly like this before: nothing to check
            if (
                report.datasource is not None
                and report.datasource == state.pending_datasource
            ):
                continue  # the same change on disk, still waiting for a person
        status, reason = _evaluate(report)
        if state is None:
            new.append(
                Dataset(
                    organization_id=org_id,
                    datastore=datastore,
                    name=report.name,
                    status=status,
                    status_reason=reason,
                    datasource=report.datasource,
                    created=now,
                    updated=now,
                )
            )
        elif _changed_on_disk(state, status, report.datasource):
            # An active dataset's file changed: a person compares and applies it.
            state.pending_datasource = report.datasource
            changed.append(state)
        elif (
            _apply(state, status, reason, report.datasource)
            or state.pending_datasource is not None
        ):
            state.pending_datasource = None
            changed.append(state)
    roots = {
        org_id: Folder.objects.root_of(org_id).pk
        for org_id in {row.organization_id for row in new}
    }
    for row in new:
        row.folder_id = roots[row.organization_id]
    updated = len(changed)
    ours = [state for state in states if state.datastore_id == datastore.pk]
    for state in ours:
        vanished = (
            state.pk not in seen
            and not state.is_remote
            and state.status != Status.CONVERTING
        )
        if vanished and _apply(
            state, Status.UNUSABLE, NOT_FOUND_ON_DISK, state.datasource
        ):
            changed.append(state)
    insert_datasets(new)
    update_datasets(changed, now)
    unusable = sum(1 for s in ours if s.status == Status.UNUSABLE) + sum(
        1 for row in new if row.status == Status.UNUSABLE
    )
    return ReportResult(
        created=len(new),
        updated=updated,
        unusable=unusable,
        ignored=ignored[:MAX_IGNORED_LISTED],
    )


__all__ = [
    "NOT_FOUND_ON_DISK",
    "ReportConflict",
    "ReportError",
    "ReportResult",
    "do_apply_dataset_report",
]
