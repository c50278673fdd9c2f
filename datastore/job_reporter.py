"""Conversion progress and outcomes, sent to the metaserver's job records.

Workers may be other processes (or other nodes sharing the storage) than the node
that registered, so they cannot ask it for the signing secret. The node keeps its
current metaserver token in a file only its user can read, under
`<binaryData>/.voxelhub/` (a dot folder: the inbox scan ignores it), and workers
read it when they sign a report. Reports are best effort: a lost progress update
must never fail a conversion, so errors are logged, not raised. The one exception:
when the metaserver answers a progress report with 409 the job has ended there
(cancelled before its first task ran, say), and `report_progress` raises
`ConversionCancelled` so the worker drops the conversion.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from datastore.config import DatastoreSettings
from shared.conversions import ConversionCancelled
from shared.protocol import DATASTORE_KEY_HEADER
from shared.tokens import sign_request

logger = logging.getLogger(__name__)

PROGRESS_PATH = "/api/jobs/{job_id}/progress"
_TIMEOUT = httpx.Timeout(10.0)
# Progress reports closer together than this are skipped (the last one is sent).
_MIN_INTERVAL_SECONDS = 1.0


def token_path(settings: DatastoreSettings) -> Path:
    return settings.binary_data / ".voxelhub" / f"{settings.name}.metaserver-token"


def save_token(settings: DatastoreSettings, token: str) -> None:
    """Store the node's current metaserver token for its workers (mode 0600)."""
    path = token_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(token)
    temporary.replace(path)


def _read_token(settings: DatastoreSettings) -> str | None:
    try:
        return token_path(settings).read_text().strip() or None
    except OSError:
        return None


class MetaserverJobReporter:
    """A `ConversionReporter` posting to `POST /api/jobs/{id}/progress`, signed."""

    def __init__(self, settings: DatastoreSettings) -> None:
        self._settings = settings
        self._last_progress: dict[str, float] = {}

    def report_progress(self, job_id: str, done: int, total: int, message: str) -> None:
        now = time.monotonic()
        if done < total and now - self._last_progress.get(job_id, 0.0) < (
            _MIN_INTERVAL_SECONDS
        ):
            return
        self._last_progress[job_id] = now
        progress = 0.0 if total <= 0 else min(done / total, 1.0)
        status = self._post(job_id, {"progress": progress, "message": message[:500]})
        if status == 409:
            self._last_progress.pop(job_id, None)
            raise ConversionCancelled(f"job {job_id} has ended on the metaserver")

    def report_success(self, job_id: str, result: Mapping[str, Any]) -> None:
        self._last_progress.pop(job_id, None)
        body: dict[str, Any] = {"state": "success", "progress": 1.0}
        dataset = self._dataset_of(result)
        if dataset is not None:
            body["result"] = {"dataset": dataset}
            body["message"] = f"converted to {dataset}"
        self._post(job_id, body)

    def report_failure(self, job_id: str, reason: str) -> None:
        self._last_progress.pop(job_id, None)
        self._post(job_id, {"state": "failure", "message": reason[:2000]})

    def _dataset_of(self, result: Mapping[str, Any]) -> str | None:
        """`org/name` of the converted dataset, from its path under binaryData."""
        path = result.get("path")
        if not isinstance(path, str):
            return None
        try:
            relative = (
                Path(path).resolve().relative_to(self._settings.binary_data.resolve())
            )
        except ValueError:
            return None
        return "/".join(relative.parts) if len(relative.parts) == 2 else None

    def _post(self, job_id: str, body: dict[str, Any]) -> int | None:
        """POST a report; the HTTP status, or None when it could not be sent."""
        if not str(job_id).isdigit():
            logger.info("job %s: %s (not a metaserver job)", job_id, body)
            return None
        path = PROGRESS_PATH.format(job_id=job_id)
        raw = json.dumps(body).encode()
        for attempt in range(2):
            token = _read_token(self._settings)
            if token is None:
                logger.warning(
                    "job %s: no metaserver token yet; report dropped", job_id
                )
                return None
            headers = {
                "Content-Type": "application/json",
                DATASTORE_KEY_HEADER: self._settings.key,
                **sign_request(token, "POST", path, raw),
            }
            try:
                response = httpx.post(
                    self._settings.metaserver_url.rstrip("/") + path,
                    content=raw,
                    headers=headers,
                    timeout=_TIMEOUT,
                    follow_redirects=False,
                )
            except httpx.HTTPError as e:
                logger.warning("job %s: report failed: %r", job_id, e)
                return None
            if response.status_code in (401, 403) and attempt == 0:
                time.sleep(1.0)  # the node may be re-registering: read the token again
                continue
            if response.status_code == 409:
                logger.info("job %s has ended on the metaserver (cancelled?)", job_id)
            elif response.status_code != 200:
                logger.warning(
                    "job %s: report answered HTTP %d", job_id, response.status_code
                )
            return response.status_code
        return None
