"""A Python client for voxelhub: datasets, and resumable uploads.

```python
from voxelhub.client import Client

vx = Client("http://127.0.0.1:8000", token)  # or VOXELHUB_URL / VOXELHUB_TOKEN
vx.upload("my_dataset/", organization="lab", name="cortex", voxel_size=(11, 11, 24),
          wait=True)
for ds in vx.datasets(organization="lab", tag="EM"):
    print(ds["name"], ds["status"])
```

Uploads follow the protocol in the README ("Uploading datasets"): reserve at the
metaserver, send chunks to the datastore (upload token in `X-Auth-Token`), finish.

* A file is uploaded as is (a zip of a dataset, a TIFF stack, ...).
* A folder is uploaded file by file (paths relative to the folder) when it has at
  most `MAX_FILES_PER_UPLOAD` files (the metaserver's default limit); a bigger folder
  is first zipped (stored, no compression; fixed timestamps so the same folder gives
  the same zip and an upload resumes) into the cache folder, and the zip is removed
  after the upload was finished.
* The reservation (upload id, upload token, datastore URL, chunk size) is kept in
  `~/.cache/voxelhub/uploads/<key>.json` (`VOXELHUB_CACHE_DIR` moves it; mode 0600),
  keyed by server, organization, name and every file's path, size and SHA-256.
  Running the same upload again asks the datastore which chunks it has
  (`uploadStatus`, else one `GET` per chunk) and sends only the rest.

Tokens are never printed or logged; errors carry the server's JSON message only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from shared.uploads import (
    CHECKSUM_MISMATCH_STATUS,
    CHUNK_SHA256_HEADER,
    MAX_CHUNK_BYTES,
    check_relative_path,
    chunk_span,
    path_conflicts,
)

DEFAULT_CHUNK_SIZE = 8 * 2**20
MAX_FILES_PER_UPLOAD = 1000  # VOXELHUB_UPLOAD_MAX_FILES' default; more get zipped
_HASH_BLOCK = 4 * 2**20
_RETRIES = 4
_ZIP_TIME = (2000, 1, 1, 0, 0, 0)


class VoxelhubError(Exception):
    """An HTTP error answer: status, the server's `error` and `detail`."""

    def __init__(self, status: int, error: str, detail: Any = None) -> None:
        self.status = status
        self.error = error
        self.detail = detail
        text = f"{status} {error}"
        if detail not in (None, "", error):
            shown = detail if isinstance(detail, str) else json.dumps(detail)
            text += f": {shown}"
        super().__init__(text)


class UploadFailed(Exception):
    """The upload or the dataset it made failed; `reason` says why."""

    def __init__(self, reason: str, upload_id: str | None = None) -> None:
        self.reason = reason
        self.upload_id = upload_id
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class UploadFile:
    """One file of an upload: where it is, its path in the upload, size, SHA-256."""

    source: Path
    path: str
    size: int
    sha256: str


@dataclass(slots=True)
class UploadProgress:
    """What `progress` callbacks get after hashing, each chunk and each step."""

    stage: str  # "hashing", "uploading", "finishing", "waiting", "done"
    total_bytes: int
    bytes_done: int = 0  # sent or already stored
    bytes_sent: int = 0  # sent in this call
    chunks_sent: int = 0
    chunks_skipped: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        """Bytes sent per second in this call."""
        return self.bytes_sent / max(time.monotonic() - self.started, 1e-6)


@dataclass(frozen=True, slots=True)
class UploadResult:
    upload_id: str
    organization: str
    name: str
    outcome: str  # "imported", "conversion_needed", or the upload's state on resume
    resumed: bool
    chunks_sent: int
    chunks_skipped: int
    dataset: dict[str, Any] | None = None  # the record, with wait=True


ProgressCallback = Callable[[UploadProgress], None]


def _raise_for(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    error, detail = response.reason_phrase or "error", None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        error, detail = str(body["error"]), body.get("detail")
    elif body is not None:
        detail = body
    elif response.text:
        detail = response.text[:500]
    raise VoxelhubError(response.status_code, error, detail)


def _cache_dir() -> Path:
    base = os.environ.get("VOXELHUB_CACHE_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "voxelhub"
    return root / "uploads"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _folder_files(folder: Path) -> list[tuple[Path, str]]:
    found = sorted(
        (p, p.relative_to(folder).as_posix())
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink()
    )
    return [(p, rel) for p, rel in found]


def _zip_folder(folder: Path, files: list[tuple[Path, str]], target: Path) -> Path:
    """A reproducible zip (stored, fixed times) of `files` under `folder.name/`."""
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for source, rel in files:
            info = zipfile.ZipInfo(f"{folder.name}/{rel}", date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            with open(source, "rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                shutil.copyfileobj(src, dst, _HASH_BLOCK)
    partial.replace(target)
    return target


class Client:
    """The metaserver's REST API and the upload protocol, with an API token."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 60,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url = url or os.environ.get("VOXELHUB_URL")
        token = token or os.environ.get("VOXELHUB_TOKEN")
        if not url:
            raise ValueError("no server: pass url= or set VOXELHUB_URL")
        if not token:
            raise ValueError("no API token: pass token= or set VOXELHUB_TOKEN")
        self.url = url.rstrip("/")
        self._timeout = timeout
        self._transport = transport
        self._api = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Token {token}"},
            timeout=timeout,
            transport=transport,
        )

    def __repr__(self) -> str:  # never the token
        return f"Client({self.url!r})"

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- REST -------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = _raise_for(self._api.request(method, path, **kwargs))
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def datasets(
        self,
        organization: str | None = None,
        q: str | None = None,
        tag: str | Sequence[str] | None = None,
        folder: int | None = None,
        *,
        page_size: int = 100,
        **filters: Any,
    ) -> Iterator[dict[str, Any]]:
        """Every dataset you may see that matches, across all pages."""
        params: dict[str, Any] = {"page_size": page_size, **filters}
        if organization:
            params["organization"] = organization
        if q:
            params["q"] = q
        if tag:
            params["tag"] = [tag] if isinstance(tag, str) else list(tag)
        if folder is not None:
            params["folder"] = folder
        page = 1
        while True:
            body = self._request(
                "GET", "/api/datasets/", params={**params, "page": page}
            )
            if isinstance(body, list):  # an unpaginated answer
                yield from body
                return
            yield from body["results"]
            if not body.get("next"):
                return
            page += 1

    def dataset(self, organization: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request(
            "GET", f"/api/datasets/{organization}/{name}/"
        )
        return result

    def update(self, organization: str, name: str, **changes: Any) -> dict[str, Any]:
        """PATCH the dataset's settings (display_name, tags, folder, ...)."""
        result: dict[str, Any] = self._request(
            "PATCH", f"/api/datasets/{organization}/{name}/", json=changes
        )
        return result

    def delete(self, organization: str, name: str) -> None:
        self._request("DELETE", f"/api/datasets/{organization}/{name}/")

    def upload_record(self, upload_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/api/uploads/{upload_id}/")
        return result

    def cancel_upload(self, upload_id: str) -> None:
        self._request("POST", f"/api/uploads/{upload_id}/cancel/")

    # --- uploads ----------------------------------------------------------------

    def upload(
        self,
        path: str | os.PathLike[str],
        *,
        organization: str,
        name: str,
        voxel_size: Sequence[float] | None = None,
        unit: str = "nanometer",
        layer_name: str | None = None,
        category: str | None = None,
        folder: int | None = None,
        teams: Sequence[int | str] = (),
        progress: ProgressCallback | None = None,
        wait: bool = False,
        timeout: float = 3600,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        datastore: str | None = None,
        data_format: str | None = None,
        raw: dict[str, Any] | None = None,
    ) -> UploadResult:
        """Upload a file or folder as dataset `organization/name`; see the module.

        `data_format` ("wkw" or "zarr3") is the output of a conversion, if the
        upload needs one (the server's default is WKW). `raw` describes a raw
        file: `{"dtype": "uint16", "shape": [x, y, z], "order": "F",
        "header_bytes": 0}` (order and header_bytes optional)."""
        if not 1 <= chunk_size <= MAX_CHUNK_BYTES:
            raise ValueError(f"chunk_size must be 1 to {MAX_CHUNK_BYTES}")
        source = Path(path)
        if not source.exists():
            raise FileNotFoundError(f"{source}: no such file or folder")
        zipped: Path | None = None
        if source.is_dir():
            entries = _folder_files(source)
            if not entries:
                raise ValueError(f"{source}: the folder has no files")
            if len(entries) > MAX_FILES_PER_UPLOAD:
                key = hashlib.sha256(
                    "\n".join(
                        f"{rel}\0{p.stat().st_size}\0{p.stat().st_mtime_ns}"
                        for p, rel in entries
                    ).encode()
                ).hexdigest()[:24]
                _cache_dir().mkdir(parents=True, exist_ok=True)
                zipped = _cache_dir() / f"{source.name}-{key}.zip"
                if not zipped.exists():
                    _zip_folder(source, entries, zipped)
                entries = [(zipped, f"{source.name}.zip")]
        else:
            entries = [(source, source.name)]
        for _, rel in entries:
            check_relative_path(rel)
        if problems := path_conflicts([rel for _, rel in entries]):
            raise ValueError("; ".join(problems[:5]))

        total = sum(p.stat().st_size for p, _ in entries)
        state = UploadProgress("hashing", total)
        files = []
        for p, rel in entries:
            files.append(UploadFile(p, rel, p.stat().st_size, _sha256(p)))
            state.bytes_done += files[-1].size
            if progress:
                progress(state)
        state.bytes_done = 0

        body: dict[str, Any] = {
            "organization": organization,
            "name": name,
            "files": [
                {"path": f.path, "size": f.size, "sha256": f.sha256} for f in files
            ],
            "unit": unit,
        }
        if voxel_size is not None:
            body["voxel_size"] = [float(v) for v in voxel_size]
        if folder is not None:
            body["folder"] = folder
        if teams:
            body["allowed_teams"] = list(teams)
        if layer_name or category:
            hint: dict[str, str] = {"name": layer_name or "color"}
            if category:
                hint["category"] = category
            body["layers"] = [hint]
        if datastore:
            body["datastore"] = datastore
        if data_format:
            body["data_format"] = data_format
        if raw is not None:
            body["raw"] = dict(raw)

        state_file = _cache_dir() / f"{self._state_key(body)}.json"
        reservation, resumed = self._reservation(state_file, body, chunk_size)
        upload_id = reservation["id"]
        outcome = "resumed"
        try:
            store = httpx.Client(
                base_url=reservation["datastore_url"],
                headers={"X-Auth-Token": reservation["upload_token"]},
                timeout=max(self._timeout, 600),
                transport=self._transport,
            )
            try:
                record_state = reservation.get("_state", "reserved")
                if record_state == "reserved":
                    self._send_all(
                        store,
                        upload_id,
                        files,
                        reservation["chunk_size"],
                        resumed,
                        state,
                        progress,
                    )
                    state.stage = "finishing"
                    if progress:
                        progress(state)
                    answer = _raise_for(
                        store.post(
                            "/data/datasets/finishUpload", json={"uploadId": upload_id}
                        )
                    ).json()
                    outcome = str(answer.get("outcome", "finished"))
                else:
                    outcome = record_state
            finally:
                if self._transport is None:  # a given transport is the caller's
                    store.close()
        except VoxelhubError as e:
            # Other errors keep the reservation: the next run resumes it.
            if e.status in (403, 404, 410):
                state_file.unlink(missing_ok=True)
            raise
        state_file.unlink(missing_ok=True)
        if zipped is not None:
            zipped.unlink(missing_ok=True)

        dataset = None
        if wait:
            state.stage = "waiting"
            if progress:
                progress(state)
            dataset = self.wait(upload_id, organization, name, timeout=timeout)
        state.stage = "done"
        if progress:
            progress(state)
        return UploadResult(
            upload_id,
            organization,
            name,
            outcome,
            resumed,
            state.chunks_sent,
            state.chunks_skipped,
            dataset,
        )

    def _state_key(self, body: Mapping[str, Any]) -> str:
        identity = {"url": self.url, **body}
        return hashlib.sha256(
            json.dumps(identity, sort_keys=True).encode()
        ).hexdigest()[:32]

    def _reservation(
        self, state_file: Path, body: dict[str, Any], chunk_size: int
    ) -> tuple[dict[str, Any], bool]:
        """The stored reservation if it can go on, else a new one (saved, 0600)."""
        with contextlib.suppress(OSError, ValueError):
            saved = json.loads(state_file.read_text())
            try:
                record = self.upload_record(saved["id"])
            except VoxelhubError as e:
                if e.status not in (403, 404):
                    raise
                record = {"state": "gone"}
            if record["state"] in ("reserved", "finishing", "done"):
                saved["_state"] = record["state"]
                return saved, True
            state_file.unlink(missing_ok=True)
        reserved = self._request("POST", "/api/uploads/", json=body)
        saved = {
            "id": reserved["id"],
            "upload_token": reserved["upload_token"],
            "datastore_url": reserved["datastore_url"].rstrip("/"),
            "chunk_size": chunk_size,
            "organization": body["organization"],
            "name": body["name"],
        }
        state_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=state_file.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:  # mkstemp: mode 0600
            json.dump(saved, f)
        Path(tmp).replace(state_file)
        return saved, False

    def _missing(
        self,
        store: httpx.Client,
        upload_id: str,
        files: list[UploadFile],
        counts: dict[str, int],
    ) -> dict[str, set[int] | None]:
        """Per file, the chunks still missing; None: ask chunk by chunk."""
        try:
            status = _raise_for(
                store.get("/data/datasets/uploadStatus", params={"uploadId": upload_id})
            ).json()
        except VoxelhubError as e:
            if e.status in (404, 405):  # an older datastore: ask per chunk
                return {f.path: None for f in files}
            raise
        listed = {m["path"]: m for m in status.get("missing", [])}
        if status.get("incomplete_files", 0) > len(listed):
            return {f.path: None for f in files}
        result: dict[str, set[int] | None] = {}
        for f in files:
            item = listed.get(f.path)
            if item is None:
                result[f.path] = set()
            elif item["missing"] == "all":
                result[f.path] = set(range(1, counts[f.path] + 1))
            elif item.get("count") == len(item["missing"]):
                result[f.path] = set(item["missing"])
            else:
                result[f.path] = None
        return result

    def _send_all(
        self,
        store: httpx.Client,
        upload_id: str,
        files: list[UploadFile],
        chunk_size: int,
        resumed: bool,
        state: UploadProgress,
        progress: ProgressCallback | None,
    ) -> None:
        counts = {f.path: max(-(-f.size // chunk_size), 1) for f in files}
        missing: dict[str, set[int] | None] = (
            self._missing(store, upload_id, files, counts)
            if resumed
            else {f.path: set(range(1, counts[f.path] + 1)) for f in files}
        )
        state.stage = "uploading"
        for f in files:
            if f.size == 0:
                continue
            with open(f.source, "rb") as data:
                for number in range(1, counts[f.path] + 1):
                    span = chunk_span(number, f.size, chunk_size, counts[f.path])
                    todo = missing[f.path]
                    needed = (
                        number in todo
                        if todo is not None
                        else not self._stored(store, upload_id, f.path, number)
                    )
                    if needed:
                        self._send(store, upload_id, f, data, span, chunk_size, counts)
                        state.chunks_sent += 1
                        state.bytes_sent += span.size
                    else:
                        state.chunks_skipped += 1
                    state.bytes_done += span.size
                    if progress:
                        progress(state)

    @staticmethod
    def _stored(store: httpx.Client, upload_id: str, path: str, number: int) -> bool:
        response = _raise_for(
            store.get(
                "/data/datasets",
                params={
                    "resumableChunkNumber": str(number),
                    "resumableIdentifier": f"{upload_id}/{path}",
                },
            )
        )
        return response.status_code == 200

    @staticmethod
    def _send(
        store: httpx.Client,
        upload_id: str,
        f: UploadFile,
        data: BinaryIO,
        span: Any,
        chunk_size: int,
        counts: dict[str, int],
    ) -> None:
        data.seek(span.start)
        payload = data.read(span.size)
        fields = {
            "resumableChunkNumber": str(span.number),
            "resumableChunkSize": str(chunk_size),
            "resumableCurrentChunkSize": str(span.size),
            "resumableTotalChunks": str(counts[f.path]),
            "resumableTotalSize": str(f.size),
            "resumableIdentifier": f"{upload_id}/{f.path}",
        }
        headers = {CHUNK_SHA256_HEADER: hashlib.sha256(payload).hexdigest()}
        for attempt in range(_RETRIES + 1):
            try:
                response = store.post(
                    "/data/datasets",
                    data=fields,
                    files={"file": ("blob", payload, "application/octet-stream")},
                    headers=headers,
                )
            except httpx.TransportError:
                if attempt == _RETRIES:
                    raise
                time.sleep(min(2**attempt, 10))
                continue
            retry = response.status_code == CHECKSUM_MISMATCH_STATUS or (
                response.status_code >= 500
            )
            if retry and attempt < _RETRIES:
                time.sleep(min(2**attempt, 10))
                continue
            _raise_for(response)
            return

    def wait(
        self, upload_id: str, organization: str, name: str, *, timeout: float = 3600
    ) -> dict[str, Any]:
        """Poll until the dataset is active; UploadFailed if it or the upload failed."""
        deadline = time.monotonic() + timeout
        delay = 0.2
        while True:
            record = self.upload_record(upload_id)
            if record["state"] in ("failed", "cancelled"):
                reason = record.get("message") or f"the upload was {record['state']}"
                raise UploadFailed(reason, upload_id)
            job = (record.get("result") or {}).get("job")
            if record["state"] == "done" and job is not None:
                job_record = self._request("GET", f"/api/jobs/{job}/")
                if job_record["state"] in ("failure", "cancelled"):
                    reason = job_record.get("message") or "the conversion failed"
                    raise UploadFailed(f"conversion: {reason}", upload_id)
            if record["state"] == "done":
                try:
                    dataset = self.dataset(organization, name)
                except VoxelhubError as e:
                    if e.status != 404:
                        raise
                    dataset = None
                if dataset is not None:
                    if dataset.get("status") == "active":
                        return dataset
                    if dataset.get("status") == "unusable":
                        reason = (
                            dataset.get("status_reason") or "the dataset is unusable"
                        )
                        raise UploadFailed(str(reason), upload_id)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"upload {upload_id}: not active after {timeout:.0f} s "
                    f"(upload {record['state']})"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 5)

    def upload_array(
        self,
        array: Any,
        *,
        organization: str,
        name: str,
        voxel_size: Sequence[float],
        unit: str = "nanometer",
        layer_name: str | None = None,
        category: str | None = None,
        **kwargs: Any,
    ) -> UploadResult:
        """Upload a numpy array (x, y, z) as a TIFF stack; the datastore converts it."""
        import numpy as np
        import tifffile

        data = np.asarray(array)
        if data.ndim != 3:
            raise ValueError("the array must have 3 dimensions (x, y, z)")
        with tempfile.TemporaryDirectory(prefix="voxelhub-array-") as tmp:
            target = Path(tmp) / f"{name}.tif"
            # TIFF pages are z slices of (y, x) images.
            tifffile.imwrite(target, np.ascontiguousarray(data.transpose(2, 1, 0)))
            return self.upload(
                target,
                organization=organization,
                name=name,
                voxel_size=voxel_size,
                unit=unit,
                layer_name=layer_name,
                category=category,
                **kwargs,
            )
