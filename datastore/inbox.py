"""Inbox scan: which datasets lie in `binaryData/<organization>/<dataset>/`.

The scan runs in an executor (it stats and parses files) and yields one
`ScannedDataset` per dataset folder. Data routes look datasets up in the last scan
result, so no request re-reads JSON from disk.

Containment rules (RELIABILITY 4, 5):
- a symlinked dataset, layer or mag folder is followed only when its real target
  lies inside the real path of binaryData or of a configured allowed root;
- every mag of a datasource must resolve inside the real path of its organization
  folder or of a configured allowed root. binaryData as a whole is deliberately not
  a mag root, so a mag path cannot reach into another organization's datasets.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from datastore.metaserver_client import DatasetReport
from shared.datasource import (
    DatasourceError,
    DatasourceProperties,
    dump_datasource,
    load_datasource,
)
from shared.formats import FormatError, infer_datasource, resolve_mag_path
from shared.protocol import NAME_PATTERN, DatasetStatus

logger = logging.getLogger(__name__)

PROPERTIES_FILE = "datasource-properties.json"
_NAME = re.compile(NAME_PATTERN)

DatasetKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class ScannedDataset:
    """One dataset folder as the last scan found it."""

    organization: str
    name: str
    status: DatasetStatus
    reason: str
    datasource: DatasourceProperties | None
    dataset_dir: Path
    # mtime of datasource-properties.json (or of the folder when there is none).
    mtime_ns: int
    # Roots every file opened for this dataset must lie in (real paths).
    allowed_roots: tuple[Path, ...]
    # For inferred results only: mtimes of the folder tree's top levels, so an
    # unchanged raw dataset is not inferred again on every periodic scan.
    fingerprint: tuple[tuple[str, int], ...] = ()

    @property
    def key(self) -> DatasetKey:
        return (self.organization, self.name)

    def to_report(self) -> DatasetReport:
        return DatasetReport(
            organization=self.organization,
            name=self.name,
            status=self.status,
            reason=self.reason,
            datasource=(
                None if self.datasource is None else dump_datasource(self.datasource)
            ),
        )


@dataclass(frozen=True, slots=True)
class ScanCounts:
    active: int
    needs_review: int
    unusable: int

    @classmethod
    def of(cls, datasets: Iterable[ScannedDataset]) -> ScanCounts:
        statuses = [d.status for d in datasets]
        return cls(
            active=statuses.count(DatasetStatus.ACTIVE),
            needs_review=statuses.count(DatasetStatus.NEEDS_REVIEW),
            unusable=statuses.count(DatasetStatus.UNUSABLE),
        )

    def to_json(self) -> dict[str, int]:
        return {
            "active": self.active,
            "needs_review": self.needs_review,
            "unusable": self.unusable,
        }


def _is_within(path: Path, roots: Sequence[Path]) -> bool:
    # Component-wise, so a sibling "binaryData2" is not inside "binaryData".
    return any(path.is_relative_to(root) for root in roots)


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


class _Unusable(Exception):
    """Internal: ends the scan of one dataset with a reason."""


def _check_symlink(path: Path, label: str, link_roots: Sequence[Path]) -> None:
    """For a symlink: its real target must exist inside one of `link_roots`."""
    target = _real(path)
    if not _is_within(target, link_roots):
        raise _Unusable(f"{label}: symlink target outside allowed roots")
    if not target.exists():
        raise _Unusable(f"{label}: broken symlink")


def _check_nested_symlinks(dataset_dir: Path, link_roots: Sequence[Path]) -> None:
    """Layer folders and the mag folders inside them may be symlinks too."""
    with os.scandir(dataset_dir) as layers:
        for layer in layers:
            if layer.is_symlink():
                _check_symlink(Path(layer.path), layer.name, link_roots)
            if not layer.is_dir():
                continue
            with os.scandir(layer.path) as mags:
                for mag in mags:
                    if mag.is_symlink():
                        _check_symlink(
                            Path(mag.path), f"{layer.name}/{mag.name}", link_roots
                        )


def _resolve_all_mags(
    props: DatasourceProperties, dataset_dir: Path, mag_roots: Sequence[Path]
) -> None:
    for layer in props.layers:
        for mag in layer.mags:
            try:
                resolve_mag_path(dataset_dir, layer, mag, allowed_roots=mag_roots)
            except FormatError as e:
                message = str(e)
                path = getattr(mag, "path", None)
                if path and str(path) not in message:
                    message = f"path {path!r}: {message}"
                raise _Unusable(
                    f"layer {layer.name}, mag {mag.mag.to_layer_name()}: {message}"
                ) from None


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _fingerprint(path: Path) -> tuple[tuple[str, int], ...]:
    """mtimes of the dataset, layer and mag folders (they change when any of
    their entries is added, removed or renamed)."""
    marks = [(".", path.stat().st_mtime_ns)]
    with os.scandir(path) as layers:
        for layer in layers:
            if not layer.is_dir():
                continue
            marks.append((layer.name, layer.stat().st_mtime_ns))
            with os.scandir(layer.path) as mags:
                marks.extend(
                    (f"{layer.name}/{mag.name}", mag.stat().st_mtime_ns)
                    for mag in mags
                    if mag.is_dir()
                )
    return tuple(sorted(marks))


def scan_dataset(
    organization: str,
    name: str,
    path: Path,
    link_roots: Sequence[Path],
    mag_roots: Sequence[Path],
    previous: ScannedDataset | None = None,
) -> ScannedDataset:
    """Classify one dataset folder (blocking; run in an executor).

    `previous` (the last scan's result) is reused for a folder without properties
    whose fingerprint did not change: inference may read much of the data.
    """
    props_path = path / PROPERTIES_FILE
    roots = tuple(mag_roots)

    def result(
        status: DatasetStatus,
        reason: str = "",
        datasource: DatasourceProperties | None = None,
        mtime_ns: int = 0,
    ) -> ScannedDataset:
        return ScannedDataset(
            organization, name, status, reason, datasource, path, mtime_ns, roots
        )

    try:
        if path.is_symlink():
            _check_symlink(path, name, link_roots)
        _check_nested_symlinks(path, link_roots)
        if props_path.is_file():
            mtime = _mtime_ns(props_path)
            try:
                props = load_datasource(props_path)
            except DatasourceError as e:
                return result(
                    DatasetStatus.UNUSABLE, f"{PROPERTIES_FILE}: {e}", None, mtime
                )
            _resolve_all_mags(props, path, roots)
            return result(DatasetStatus.ACTIVE, "", props, mtime)
        fingerprint = _fingerprint(path)
        if (
            previous is not None
            and previous.fingerprint == fingerprint
            and previous.dataset_dir == path
        ):
            return previous
        try:
            inferred = infer_datasource(path, name=name, team=organization)
        except FormatError as e:
            outcome = result(DatasetStatus.UNUSABLE, str(e), None, _mtime_ns(path))
        else:
            outcome = result(DatasetStatus.NEEDS_REVIEW, "", inferred, _mtime_ns(path))
        return dataclasses.replace(outcome, fingerprint=fingerprint)
    except _Unusable as e:
        return result(DatasetStatus.UNUSABLE, str(e), None, _mtime_ns(props_path))
    except OSError as e:
        return result(
            DatasetStatus.UNUSABLE,
            f"cannot read dataset folder: {e.strerror or e}",
            None,
            0,
        )


def _visible_dirs(folder: Path, what: str) -> list[os.DirEntry[str]]:
    """Subfolders (or symlinks) with a valid name; hidden entries skipped silently."""
    entries: list[os.DirEntry[str]] = []
    with os.scandir(folder) as it:
        for entry in it:
            if entry.name.startswith("."):
                continue  # .trash, .uploads and other internal folders
            if not (entry.is_symlink() or entry.is_dir(follow_symlinks=False)):
                continue
            if not _NAME.fullmatch(entry.name):
                logger.warning(
                    "skipping %s folder with invalid name: %r", what, entry.path
                )
                continue
            entries.append(entry)
    return sorted(entries, key=lambda e: e.name)


@dataclass(frozen=True, slots=True)
class ScanResult:
    organizations: tuple[str, ...]
    datasets: dict[DatasetKey, ScannedDataset]


def scan_inbox(
    binary_data: Path,
    extra_roots: Sequence[Path] = (),
    previous: Mapping[DatasetKey, ScannedDataset] | None = None,
) -> ScanResult:
    """Scan every organization folder of `binary_data` (blocking; use an executor).

    With `previous`, unchanged folders without properties keep their last inferred
    result instead of being inferred again.
    """
    previous = previous or {}
    if not binary_data.is_dir():
        logger.warning(
            "binaryData folder %s does not exist; nothing to scan", binary_data
        )
        return ScanResult((), {})
    real_extra = [_real(r) for r in extra_roots]
    link_roots = [_real(binary_data), *real_extra]
    found: dict[DatasetKey, ScannedDataset] = {}
    organizations: list[str] = []
    for org in _visible_dirs(binary_data, "organization"):
        org_path = Path(org.path)
        if org.is_symlink() and not _is_within(_real(org_path), link_roots):
            logger.warning(
                "skipping organization %r: symlink target outside allowed roots",
                org.name,
            )
            continue
        if not org_path.is_dir():
            continue
        organizations.append(org.name)
        mag_roots = [_real(org_path), *real_extra]
        try:
            datasets = _visible_dirs(org_path, "dataset")
        except OSError as e:
            logger.warning("cannot list organization folder %s: %s", org_path, e)
            continue
        for entry in datasets:
            try:
                scanned = scan_dataset(
                    org.name,
                    entry.name,
                    Path(entry.path),
                    link_roots,
                    mag_roots,
                    previous.get((org.name, entry.name)),
                )
            except Exception as e:
                # One broken dataset must not hide all the others.
                logger.exception("scanning %s failed", entry.path)
                scanned = ScannedDataset(
                    org.name,
                    entry.name,
                    DatasetStatus.UNUSABLE,
                    f"scan failed: {type(e).__name__}",
                    None,
                    Path(entry.path),
                    0,
                    tuple(mag_roots),
                )
            if scanned.status is DatasetStatus.UNUSABLE:
                logger.info(
                    "dataset %s/%s unusable: %s", org.name, entry.name, scanned.reason
                )
            found[scanned.key] = scanned
    return ScanResult(tuple(organizations), found)


ChangeListener = Callable[[set[DatasetKey]], None]


class Inbox:
    """The last scan result plus the ability to scan again (one scan at a time)."""

    def __init__(self, binary_data: Path, extra_roots: Sequence[Path] = ()) -> None:
        self.binary_data = binary_data
        self.extra_roots = tuple(extra_roots)
        self._datasets: dict[DatasetKey, ScannedDataset] = {}
        self._organizations: tuple[str, ...] = ()
        self._lock = asyncio.Lock()
        self._listeners: list[ChangeListener] = []
        self.scans = 0

    @property
    def datasets(self) -> Mapping[DatasetKey, ScannedDataset]:
        return self._datasets

    def get(self, organization: str, name: str) -> ScannedDataset | None:
        return self._datasets.get((organization, name))

    def on_change(self, listener: ChangeListener) -> None:
        """Call `listener(keys)` after a scan with the datasets that changed."""
        self._listeners.append(listener)

    def organizations(self) -> list[str]:
        """Organization folders found by the last scan, datasets or not."""
        return list(self._organizations)

    def counts(self) -> ScanCounts:
        return ScanCounts.of(self._datasets.values())

    def reports(self) -> list[DatasetReport]:
        return [d.to_report() for d in self._datasets.values()]

    def roots(self, organization: str) -> tuple[list[Path], list[Path]]:
        """(symlink roots, mag roots) of an organization as a scan uses them
        (real paths; blocking)."""
        real_extra = [_real(r) for r in self.extra_roots]
        org_real = _real(self.binary_data / organization)
        return [_real(self.binary_data), *real_extra], [org_real, *real_extra]

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold off scans while a caller changes one dataset folder, so a scan
        that read the old state cannot overwrite the caller's result."""
        async with self._lock:
            yield

    def set_dataset(self, key: DatasetKey, scanned: ScannedDataset | None) -> None:
        """Replace one dataset of the last scan (None: drop it); notify listeners."""
        old = self._datasets.get(key)
        # Copy on write: a periodic scan may hold the previous dict in a thread.
        datasets = dict(self._datasets)
        if scanned is None:
            datasets.pop(key, None)
        else:
            datasets[key] = scanned
            if key[0] not in self._organizations:
                self._organizations = tuple(sorted((*self._organizations, key[0])))
        self._datasets = datasets
        if old != scanned:
            for listener in self._listeners:
                listener({key})

    async def scan(self, executor: Executor, *, full: bool = True) -> ScanCounts:
        """Scan now in `executor`; replaces the result and notifies listeners.

        `full=False` (periodic scans) reuses inferred results of unchanged folders.
        """
        async with self._lock:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(
                executor,
                scan_inbox,
                self.binary_data,
                self.extra_roots,
                None if full else self._datasets,
            )
            old, found = self._datasets, result.datasets
            changed = {
                k for k in old.keys() | found.keys() if old.get(k) != found.get(k)
            }
            self._datasets = found
            self._organizations = result.organizations
            self.scans += 1
            for listener in self._listeners:
                listener(changed)
            counts = self.counts()
            logger.info("inbox scan: %s", counts.to_json())
            return counts
