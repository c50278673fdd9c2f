"""The metaserver's calls to a datastore node: properties, trash, scan, uploads.

Synchronous (httpx), for actions that must change a datastore's disk so disk and
database agree. Every call carries the secret the node received at its last
registration (`DataStore.metaserver_token`) in `METASERVER_TOKEN_HEADER`, never in
a URL, and never follows redirects (the secret must not travel elsewhere). The
token is never logged.

Failures come in two kinds: `DatastoreUnavailable` (connection error, timeout, 5xx,
not registered yet: worth retrying later) and `DatastoreRejected` (a 4xx with the
node's JSON error: retrying the same call will not help).
"""

from __future__ import annotations

import logging
from typing import Any, Final
from urllib.parse import quote

import httpx

from metaserver.datastores.models import DataStore
from shared.protocol import METASERVER_TOKEN_HEADER

logger = logging.getLogger(__name__)

TIMEOUT: Final = httpx.Timeout(connect=5.0, read=60.0, write=60.0, pool=5.0)


class DatastoreUnavailable(Exception):
    """The datastore cannot be reached or failed on its side (5xx)."""

    def __init__(self, datastore: DataStore, why: str) -> None:
        super().__init__(f"datastore {datastore.name} is unreachable ({why})")
        self.datastore_name = datastore.name


class DatastoreRejected(Exception):
    """The datastore refused the call (4xx); `error`/`detail` are its JSON answer."""

    def __init__(
        self, datastore: DataStore, status: int, error: str, detail: Any
    ) -> None:
        super().__init__(f"datastore {datastore.name} refused (HTTP {status}): {error}")
        self.datastore_name = datastore.name
        self.status = status
        self.error = error
        self.detail = detail


def _dataset_path(organization: str, dataset: str, action: str) -> str:
    # Quoted whole: a stray "/" or ".." stays one segment, the node rejects it.
    org, name = quote(organization, safe=""), quote(dataset, safe="")
    return f"/data/datasets/{org}/{name}/{action}"


def _json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _call(
    datastore: DataStore,
    method: str,
    path: str,
    *,
    json: Any = None,
    params: dict[str, str] | None = None,
) -> dict[str, Any]:
    if not datastore.metaserver_token:
        raise DatastoreUnavailable(datastore, "it has not registered yet")
    url = datastore.url.rstrip("/") + path
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
            response = client.request(
                method,
                url,
                json=json,
                params=params,
                headers={METASERVER_TOKEN_HEADER: datastore.metaserver_token},
            )
    except (httpx.TransportError, httpx.InvalidURL) as e:
        logger.warning("%s %s on datastore %s failed: %r", method, path, datastore, e)
        raise DatastoreUnavailable(datastore, type(e).__name__) from None
    body = _json_of(response)
    status = response.status_code
    if 400 <= status < 500:
        error = body.get("error") if isinstance(body, dict) else None
        detail = body.get("detail") if isinstance(body, dict) else None
        rejected = DatastoreRejected(
            datastore, status, str(error or response.reason_phrase), detail
        )
        if status in (401, 403):
            # Usually a token rotated by a re-registration we have not stored yet.
            logger.warning("datastore %s refused our token on %s", datastore, path)
        raise rejected
    if status not in (200, 202) or not isinstance(body, dict):
        logger.warning(
            "%s %s on datastore %s: HTTP %d", method, path, datastore, status
        )
        raise DatastoreUnavailable(datastore, f"HTTP {status}")
    return body


def write_properties(
    datastore: DataStore, organization: str, dataset: str, datasource: dict[str, Any]
) -> dict[str, Any]:
    """Write `datasource` as the dataset's datasource-properties.json.

    Returns the node's answer `{"status", "reason", "datasource"}` (the dataset as
    rescanned). An invalid datasource or a mag path outside the node's allowed roots
    raises `DatastoreRejected` (400, `detail` lists `{"path", "message"}`) and
    leaves the file on disk unchanged.
    """
    answer = _call(
        datastore,
        "PUT",
        _dataset_path(organization, dataset, "properties"),
        json=datasource,
    )
    logger.info("wrote properties of %s/%s on %s", organization, dataset, datastore)
    return answer


def trash_dataset(
    datastore: DataStore, organization: str, dataset: str
) -> dict[str, Any]:
    """Move the dataset folder to the node's `<org>/.trash/`; `{"trashed": path}`.

    An unknown dataset raises `DatastoreRejected` with status 404.
    """
    answer = _call(datastore, "POST", _dataset_path(organization, dataset, "trash"))
    logger.info(
        "trashed %s/%s on %s as %s",
        organization,
        dataset,
        datastore,
        answer.get("trashed"),
    )
    return answer


def check_inbox(datastore: DataStore, organization: str) -> dict[str, Any]:
    """Make the node scan its binaryData now; returns the counts per status.

    The node reports the result to the metaserver afterwards, in the background.
    """
    return _call(
        datastore,
        "POST",
        "/data/triggers/checkInbox",
        params={"organization": organization},
    )


def add_sample(
    datastore: DataStore, organization: str, name: str, kind: str, job_id: int
) -> dict[str, Any]:
    """Have the node's workers write a sample dataset as job `job_id`
    (`datastore/routes/samples.py`); they report to the job when done.

    An existing name raises `DatastoreRejected` with status 409.
    """
    return _call(
        datastore,
        "POST",
        "/data/triggers/addSample",
        params={
            "organization": organization,
            "name": name,
            "kind": kind,
            "job": str(job_id),
        },
    )


def reserve_upload(
    datastore: DataStore,
    upload_id: str,
    organization: str,
    name: str,
    files: list[dict[str, Any]],
    total_size: int,
    *,
    token_sha256: str,
    expires: float,
    voxel_size: list[float] | None = None,
    unit: str = "nanometer",
    layer_hints: list[dict[str, str]] | None = None,
    data_format: str = "wkw",
    raw: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Reserve an upload on the node (`datastore/routes/upload.py`).

    The node learns only the SHA-256 of the upload token and its expiry (a UNIX
    time), and checks chunk requests against them itself. A name already used on
    the node raises `DatastoreRejected` with status 409; too little free space 507
    (`DatastoreUnavailable`). Reserving the same id again renews token and expiry.
    """
    answer = _call(
        datastore,
        "POST",
        "/data/datasets/reserveUpload",
        json={
            "upload_id": upload_id,
            "organization": organization,
            "name": name,
            "files": files,
            "total_size": total_size,
            "token_sha256": token_sha256,
            "expires": expires,
            "voxel_size": voxel_size,
            "unit": unit,
            "layer_hints": list(layer_hints or []),
            "data_format": data_format,
            "raw": raw,
        },
    )
    logger.info(
        "reserved upload %s (%s/%s) on %s", upload_id, organization, name, datastore
    )
    return answer


def cancel_upload(datastore: DataStore, upload_id: str) -> dict[str, Any]:
    """Remove everything of an upload on the node; unknown uploads raise
    `DatastoreRejected` with status 404, a running finish 409."""
    return _call(
        datastore, "POST", "/data/datasets/cancelUpload", json={"uploadId": upload_id}
    )


def cancel_conversion(
    datastore: DataStore, job_id: int, organization: str, name: str
) -> dict[str, Any]:
    """Stop conversion job `job_id` into `organization/name` on the node: its
    staging folder goes, its workers stop (`datastore/routes/jobs.py`)."""
    return _call(
        datastore,
        "POST",
        f"/data/jobs/{int(job_id)}/cancel",
        json={"organization": organization, "name": name},
    )
