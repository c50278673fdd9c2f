"""Turning a complete upload into a dataset folder (blocking: run in an executor).

`verify_files` checks every file's SHA-256; `prepare` builds `staging/` (plain
files as hard links, so the chunks stay intact and a crash leaves a resumable
upload; zip archives unpacked by `datastore.upload_archive`) and finds the dataset
in it, descending through lone sub-folders (a zipped dataset folder). A folder
with a valid datasource-properties.json, or one `shared.formats.infer_datasource`
understands (then written with the reserved voxel size), is a dataset; its mags
must lie inside it. `move_into_place` checks it as a scan would and renames it
into `binaryData/<org>/<name>`. Everything else needs a conversion.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datastore.inbox import PROPERTIES_FILE, Inbox, ScannedDataset, scan_dataset
from datastore.upload import STAGING_DIR, UploadStore
from datastore.upload_archive import (
    ArchiveError,
    ArchiveLimits,
    is_zip_name,
    unpack_zip,
)
from datastore.upload_state import Upload
from shared.datasource import (
    DatasourceError,
    DatasourceProperties,
    VoxelSize,
    load_datasource,
    save_datasource,
)
from shared.formats import FormatError, infer_datasource, resolve_mag_path
from shared.protocol import DatasetStatus

_IGNORED = {"__MACOSX", ".DS_Store", "Thumbs.db"}
_MAX_DESCENT = 4
_READ_PIECE = 8 * 2**20


class UploadFailed(Exception):
    """The upload cannot become a dataset; retrying with the same data won't help."""

    def __init__(self, reason: str, detail: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Prepared:
    root: Path
    props: DatasourceProperties | None  # None: needs a conversion
    why_conversion: str = ""


def file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(_READ_PIECE):
            hasher.update(piece)
    return hasher.hexdigest()


def _visible(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name not in _IGNORED]


def remove_staging(store: UploadStore, upload: Upload) -> None:
    shutil.rmtree(store.upload_dir(upload.upload_id) / STAGING_DIR, ignore_errors=True)


def verify_files(store: UploadStore, upload: Upload) -> list[dict[str, str]]:
    """Files whose SHA-256 differs from the reservation; their chunks are forgotten
    (to be sent again)."""
    bad = []
    for index, item in enumerate(upload.files):
        actual = file_digest(store.data_path(upload, index))
        if actual != item.sha256:
            store.clear_markers(upload, index)
            bad.append({"path": item.path, "expected": item.sha256, "actual": actual})
    return bad


def prepare(store: UploadStore, upload: Upload, limits: ArchiveLimits) -> Prepared:
    """Build staging/ and classify it (blocking)."""
    staging = store.upload_dir(upload.upload_id) / STAGING_DIR
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for index, item in enumerate(upload.files):
        source = store.data_path(upload, index)
        parent = staging.joinpath(*item.path.split("/")[:-1])
        parent.mkdir(parents=True, exist_ok=True)
        if is_zip_name(item.path):
            free = shutil.disk_usage(staging).free
            try:
                unpack_zip(source, parent, limits, free_bytes=free)
            except ArchiveError as e:
                raise UploadFailed(
                    f"{item.path}: {e}",
                    {"file": item.path, "entry": e.entry, "reason": e.reason},
                ) from None
            continue
        try:
            os.link(source, parent / source.name)
        except FileExistsError:
            raise UploadFailed(f"{item.path}: also unpacked from an archive") from None
    for junk in ("__MACOSX",):
        shutil.rmtree(staging / junk, ignore_errors=True)
    return _classify(upload, staging)


def _classify(upload: Upload, staging: Path) -> Prepared:
    """The dataset in staging/, descending through lone sub-folders (a zipped
    dataset folder); else the folder to convert and why."""
    root, why = staging, ""
    for _ in range(_MAX_DESCENT):
        found = _dataset_at(upload, root)
        if not isinstance(found, str):
            return Prepared(root, found)
        why = why or found
        entries = _visible(root)
        if len(entries) != 1 or not entries[0].is_dir() or entries[0].is_symlink():
            break
        root = entries[0]
    return Prepared(root, None, why)


def _dataset_at(upload: Upload, root: Path) -> DatasourceProperties | str:
    """The dataset's properties at `root` (written if inferred), else why not."""
    props_file = root / PROPERTIES_FILE
    if props_file.is_file():
        try:
            props = load_datasource(props_file)
        except DatasourceError as e:
            raise UploadFailed(f"{PROPERTIES_FILE}: {e}", e.as_json()) from None
    else:
        voxel = (
            None
            if upload.voxel_size is None
            else VoxelSize(upload.voxel_size, upload.unit)
        )
        try:
            props = infer_datasource(
                root, name=upload.name, team=upload.organization, voxel_size=voxel
            )
        except FormatError as e:
            return str(e)
    props = dataclasses.replace(props, name=upload.name, team=upload.organization)
    problems = []
    for layer in props.layers:
        for mag in layer.mags:
            try:
                resolve_mag_path(root, layer, mag)
            except FormatError as e:
                problems.append(
                    {"layer": layer.name, "path": mag.path, "message": str(e)}
                )
    if problems:
        raise UploadFailed("mags must lie inside the uploaded dataset", problems)
    try:
        save_datasource(props_file, props)
    except DatasourceError as e:
        raise UploadFailed(f"{PROPERTIES_FILE}: {e}", e.as_json()) from None
    return props


def move_into_place(inbox: Inbox, upload: Upload, root: Path) -> ScannedDataset:
    """Rename the checked dataset folder into binaryData/<org>/<name> (atomic)."""
    org_dir = inbox.binary_data / upload.organization
    target = org_dir / upload.name
    staged = scan_dataset(
        upload.organization, upload.name, root, [root.resolve()], [root.resolve()]
    )
    if staged.status is not DatasetStatus.ACTIVE:
        raise UploadFailed(f"not a usable dataset: {staged.reason}")
    org_dir.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(target):
        raise UploadFailed(
            f"a dataset {upload.organization}/{upload.name} exists already"
        )
    root.rename(target)
    link_roots, mag_roots = inbox.roots(upload.organization)
    return scan_dataset(upload.organization, upload.name, target, link_roots, mag_roots)
