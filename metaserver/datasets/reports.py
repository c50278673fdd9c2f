"""The shape of a datastore's dataset report, checked before anything is written.

A report that breaks the protocol (wrong types, unknown status, duplicates) is
rejected as a whole with every problem named by its JSON path; a dataset whose
name cannot be a directory name is only left out (and listed as ignored), so one
odd folder on disk does not stop the rest of a scan from being recorded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from shared.protocol import NAME_PATTERN, DatasetStatus

_NAME = re.compile(NAME_PATTERN)
REPORTABLE_STATUSES: Final = (
    DatasetStatus.ACTIVE,
    DatasetStatus.NEEDS_REVIEW,
    DatasetStatus.UNUSABLE,
)
MAX_REASON_CHARS: Final = 2000
# Stop collecting problems after this many; the first ones tell the story.
MAX_PROBLEMS: Final = 20


class ReportError(ValueError):
    """A report that breaks the protocol; `errors` are (JSON path, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in errors))

    def as_json(self) -> list[dict[str, str]]:
        return [{"path": path, "message": msg} for path, msg in self.errors]


class TooManyDatasets(ValueError):
    """More datasets in one report than VOXELHUB_MAX_REPORT_DATASETS."""


@dataclass(frozen=True, slots=True)
class DatasetReport:
    """One dataset as a datastore found it on disk."""

    organization: str
    name: str
    status: DatasetStatus
    reason: str
    datasource: dict[str, Any] | None

    @property
    def label(self) -> str:
        return f"{self.organization}/{self.name}"

    @property
    def has_valid_names(self) -> bool:
        return bool(_NAME.match(self.organization) and _NAME.match(self.name))


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _report(
    item: Any, path: str, problems: list[tuple[str, str]]
) -> DatasetReport | None:
    if not isinstance(item, Mapping):
        problems.append((path, "expected an object"))
        return None
    found = len(problems)
    values: dict[str, str] = {}
    for key in ("organization", "name"):
        value = item.get(key)
        if not isinstance(value, str) or not value:
            problems.append((f"{path}.{key}", "expected a non-empty string"))
        else:
            values[key] = _clip(value)
    status = item.get("status")
    if status not in REPORTABLE_STATUSES:
        allowed = ", ".join(s.value for s in REPORTABLE_STATUSES)
        problems.append((f"{path}.status", f"expected one of {allowed}"))
    reason = item.get("reason", "")
    if reason is None:
        reason = ""
    if not isinstance(reason, str):
        problems.append((f"{path}.reason", "expected a string"))
    datasource = item.get("datasource")
    if datasource is not None and not isinstance(datasource, dict):
        problems.append((f"{path}.datasource", "expected an object or null"))
    if len(problems) > found:
        return None
    return DatasetReport(
        organization=values["organization"],
        name=values["name"],
        status=DatasetStatus(status),
        reason=_clip(reason, MAX_REASON_CHARS),
        datasource=datasource,
    )


def parse_report(body: Any, *, max_datasets: int) -> list[DatasetReport]:
    """`{"datasets": [...]}` → reports; ReportError or TooManyDatasets otherwise."""
    if not isinstance(body, Mapping) or not isinstance(body.get("datasets"), list):
        raise ReportError([("datasets", 'expected {"datasets": [...]}')])
    items: list[Any] = body["datasets"]
    if len(items) > max_datasets:
        raise TooManyDatasets(
            f"{len(items)} datasets in one report, at most {max_datasets}"
        )
    problems: list[tuple[str, str]] = []
    reports: list[DatasetReport] = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(items):
        path = f"datasets[{index}]"
        report = _report(item, path, problems)
        if report is not None:
            key = (report.organization, report.name)
            if key in seen:
                problems.append((path, f"{report.label} is listed twice"))
            seen.add(key)
            reports.append(report)
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise ReportError(problems)
    return reports
