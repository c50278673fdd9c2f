"""Reading, inserting and updating many datasets in one statement each.

A datastore's report may list 50,000 datasets. Django's bulk_update builds one
CASE branch per row for every column, which PostgreSQL evaluates for every row
(quadratic), and bulk_create sends one bound literal per column and row. On
PostgreSQL we send all rows as one JSON parameter and expand it server-side with
`jsonb_to_recordset` instead: one statement, linear, and several times faster.
Other databases (the embedded SQLite, which holds few datasets) use Django's bulk
methods in batches.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Q, TextField
from django.db.models.functions import Cast

from metaserver.datasets.models import Dataset

_BATCH = 500
# The columns in which the rows of one insert differ; all others are shared.
_PER_ROW = (
    "organization_id",
    "folder_id",
    "name",
    "status",
    "status_reason",
    "datasource",
)
_RECORD = (
    "organization_id bigint, folder_id bigint, name text, status text, "
    "status_reason text, "
)


@dataclass(slots=True)
class DatasetState:
    """What a report may change about a dataset, without building a model."""

    pk: int
    organization_id: int
    datastore_id: int
    name: str
    status: str
    status_reason: str
    datasource: Any
    is_remote: bool
    pending_datasource: Any = None


def load_states(where: Q) -> list[DatasetState]:
    """The report-relevant columns of the datasets matching `where`."""
    # Decoding the JSON ourselves from text is several times faster than letting
    # each row go through JSONField.from_db_value.
    rows = Dataset.objects.filter(where).values_list(
        "pk",
        "organization_id",
        "datastore_id",
        "name",
        "status",
        "status_reason",
        Cast("datasource", TextField()),
        "is_remote",
        Cast("pending_datasource", TextField()),
    )
    return [
        DatasetState(
            pk,
            org,
            store,
            name,
            status,
            reason,
            _loads(source),
            remote,
            _loads(pending),
        )
        for pk, org, store, name, status, reason, source, remote, pending in rows
    ]


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def insert_datasets(rows: Sequence[Dataset]) -> None:
    """Insert new datasets; rows differ in org, folder, name, status and source."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        Dataset.objects.bulk_create(rows, batch_size=_BATCH)
        return
    quote = connection.ops.quote_name
    template = rows[0]
    columns: list[str] = []
    select: list[str] = []
    params: list[Any] = []
    for field in Dataset._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(quote(field.column))
        if field.attname in _PER_ROW:
            select.append(f"v.{quote(field.column)}")
        else:
            select.append(f"CAST(%s AS {field.db_type(connection)})")
            value = getattr(template, field.attname)
            params.append(field.get_db_prep_save(value, connection))
    payload = json.dumps(
        [
            {
                "organization_id": row.organization_id,
                "folder_id": row.folder_id,
                "name": row.name,
                "status": row.status,
                "status_reason": row.status_reason,
                "datasource": row.datasource,
            }
            for row in rows
        ]
    )
    sql = (
        f"INSERT INTO {quote(Dataset._meta.db_table)} ({', '.join(columns)}) "  # noqa: S608 (names from the model)
        f"SELECT {', '.join(select)} FROM jsonb_to_recordset(%s::jsonb) "
        f"AS v({_RECORD}datasource jsonb)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, payload])


def update_datasets(states: Iterable[DatasetState], updated: datetime) -> None:
    """Write status, reason, datasource and pending datasource of `states`, and
    `updated`."""
    states = list(states)
    if not states:
        return
    if connection.vendor != "postgresql":
        Dataset.objects.bulk_update(
            [
                Dataset(
                    pk=s.pk,
                    status=s.status,
                    status_reason=s.status_reason,
                    datasource=s.datasource,
                    pending_datasource=s.pending_datasource,
                    updated=updated,
                )
                for s in states
            ],
            ["status", "status_reason", "datasource", "pending_datasource", "updated"],
            batch_size=_BATCH,
        )
        return
    payload = json.dumps(
        [
            {
                "id": s.pk,
                "status": s.status,
                "status_reason": s.status_reason,
                "datasource": s.datasource,
                "pending_datasource": s.pending_datasource,
            }
            for s in states
        ]
    )
    table = connection.ops.quote_name(Dataset._meta.db_table)
    sql = (
        f"UPDATE {table} AS d SET status = v.status, "  # noqa: S608 (table name from the model)
        "status_reason = v.status_reason, datasource = v.datasource, "
        "pending_datasource = v.pending_datasource, updated = %s "
        "FROM jsonb_to_recordset(%s::jsonb) "
        "AS v(id bigint, status text, status_reason text, datasource jsonb, "
        "pending_datasource jsonb) "
        "WHERE d.id = v.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [updated, payload])
