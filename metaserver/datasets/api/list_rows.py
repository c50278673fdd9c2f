"""The rows of `GET /api/datasets/`, built without model instances.

A page lists up to 1,000 datasets, each with a datasource of a few kB. Going
through model instances and `DatasetListItemSerializer` would decode every JSON
column from the database and encode it again, and run DRF's field machinery per
value; here the JSON columns are read as text and embedded as they are
(`orjson.Fragment`), and the other fields are read as plain values. The shape is
exactly `DatasetListItemSerializer`'s (a test compares the two).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from django.db.models import F, TextField
from django.db.models.functions import Cast
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from metaserver.datasets.models import Dataset

# Read as text and embedded verbatim (they are JSON already).
_JSON_COLUMNS = ("datasource", "pending_datasource", "default_view_configuration")
_VALUES = (
    "pk",
    "name",
    "organization__name",
    "display_name",
    "description",
    "status",
    "status_reason",
    "datastore__name",
    "datastore__url",
    "datastore__public_url",
    "folder_id",
    "is_public",
    "is_remote",
    "created",
    "updated",
    "last_used",
)
_DATETIME = serializers.DateTimeField()
_UTC_SUFFIX = "+00:00"


def _json(text: str | None) -> orjson.Fragment | None:
    return None if text is None else orjson.Fragment(text)


def _when(value: Any) -> str | None:
    """DRF's ISO 8601 (UTC as "Z"); the database gives UTC already, and DRF's
    field is slow enough to matter for 300 values a page."""
    if value is None:
        return None
    if value.utcoffset() is not None and not value.utcoffset():
        text: str = value.isoformat()
        return text[: -len(_UTC_SUFFIX)] + "Z" if text.endswith(_UTC_SUFFIX) else text
    return _DATETIME.to_representation(value)


def list_rows(page_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The listing's dicts of datasets `page_ids`, in that order (3 queries).

    The ids come from the visibility-filtered, sorted query: the gate has been
    applied already, so the page is read by primary key only.
    """
    annotations = {f"{c}_text": Cast(F(c), TextField()) for c in _JSON_COLUMNS}
    rows = {
        row["pk"]: row
        for row in Dataset.objects.filter(pk__in=page_ids)
        .annotate(**annotations)
        .values(*_VALUES, *annotations)
    }
    tags: dict[int, list[str]] = {pk: [] for pk in rows}
    for dataset_id, name in Dataset.tags.through.objects.filter(
        dataset_id__in=rows
    ).values_list("dataset_id", "tag__name"):
        tags[dataset_id].append(name)
    teams: dict[int, list[tuple[int, str]]] = {pk: [] for pk in rows}
    for dataset_id, team_id, name in Dataset.allowed_teams.through.objects.filter(
        dataset_id__in=rows
    ).values_list("dataset_id", "team_id", "team__name"):
        teams[dataset_id].append((team_id, name))
    result = []
    for pk in page_ids:
        row = rows.get(pk)
        if row is None:  # deleted between the two queries
            continue
        datastore = None
        if row["datastore__name"] is not None:
            datastore = {
                "name": row["datastore__name"],
                "url": row["datastore__public_url"] or row["datastore__url"],
            }
        result.append(
            {
                "name": row["name"],
                "organization": row["organization__name"],
                "display_name": row["display_name"],
                "description": row["description"],
                "status": row["status"],
                "status_reason": row["status_reason"],
                "datastore": datastore,
                "datasource": _json(row["datasource_text"]),
                "pending_datasource": _json(row["pending_datasource_text"]),
                "folder": row["folder_id"],
                "tags": sorted(tags[pk]),
                "allowed_teams": [
                    {"id": team_id, "name": name}
                    for team_id, name in sorted(teams[pk], key=lambda t: t[1])
                ],
                "is_public": row["is_public"],
                "is_remote": row["is_remote"],
                "default_view_configuration": _json(
                    row["default_view_configuration_text"]
                ),
                "created": _when(row["created"]),
                "updated": _when(row["updated"]),
                "last_used": _when(row["last_used"]),
            }
        )
    return result


class FastJSONRenderer(JSONRenderer):
    """DRF's JSON renderer through orjson, which embeds `orjson.Fragment`s.

    Anything orjson does not know (lazy strings, Decimals, ...) goes through
    DRF's encoder, so every response renders as before.
    """

    _fallback = JSONRenderer.encoder_class()

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: dict[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        # The browsable API asks for indented JSON.
        indent = bool(accepted_media_type and "indent" in accepted_media_type)
        # Error details may be keyed by list index (ints), as json.dumps allows.
        option = orjson.OPT_NON_STR_KEYS | (orjson.OPT_INDENT_2 if indent else 0)
        return orjson.dumps(data, default=self._fallback.default, option=option)
