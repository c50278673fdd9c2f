"""Which reader fits an input path, and `open_source` for a stored spec.

Files: `.tif`/`.tiff` (incl. OME-TIFF) -> TIFF; `.nii`/`.nii.gz` -> NIfTI; `.zip` ->
slices in the archive (one layer per folder inside it when there are several);
`.png`/`.jpg`/`.jpeg`/`.bmp` -> a one-slice stack; `.raw`/`.bin`/`.dat`/`.img`, or any
file when a data type is given -> raw.

Folders, in this order: a dataset (`datasource-properties.json`); a bare array
(zarr, N5, WKW mag); a layer folder (mag folders, OME-Zarr multiscales, a
precomputed `info`); image slices directly inside (a single multi-page TIFF instead
if it is the only image); a single NIfTI, TIFF or raw file; else one layer per
sub-folder, each detected as above.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from shared.conversions.errors import ConversionInputError
from shared.conversions.sources import arrays, nifti, raw, slices, tiff
from shared.conversions.sources.base import Source, SourceHints, layer_name_from
from shared.datasource import DatasourceError, load_datasource
from shared.formats import FormatError

logger = logging.getLogger(__name__)

OPENERS: Mapping[str, Callable[[Mapping[str, Any]], Source]] = {
    tiff.KIND: tiff.open_tiff,
    slices.KIND: slices.open_slices,
    nifti.KIND: nifti.open_nifti,
    raw.KIND: raw.open_raw,
    arrays.KIND: arrays.open_array_source,
}

SUPPORTED = (
    "TIFF/OME-TIFF files, folders or zips of 2D slices (TIFF, PNG, JPEG, BMP), "
    "NIfTI (.nii, .nii.gz), raw files (with --dtype and --shape), Zarr v2/v3, "
    "OME-Zarr, N5, Neuroglancer precomputed and WKW"
)


def open_source(spec: Mapping[str, Any]) -> Source:
    """The reader a spec (`Source.spec`) describes."""
    kind = spec.get("kind")
    opener = OPENERS.get(str(kind))
    if opener is None:
        raise ConversionInputError(f"unknown input kind {kind!r}")
    return opener(spec)


def detect_source(path: Path, hints: SourceHints | None = None) -> Source:
    """The one volume at `path`; ConversionInputError naming the file and problem."""
    found = detect_layers(path, hints)
    if len(found) != 1:
        names = ", ".join(s.name for s in found)
        raise ConversionInputError(
            f"{Path(path).name}: holds {len(found)} layers ({names}), expected one"
        )
    return found[0]


def detect_layers(path: Path, hints: SourceHints | None = None) -> list[Source]:
    """Every layer at `path`: one for a file or a single volume, several for a
    dataset or a folder with one sub-folder per layer."""
    hints = hints or SourceHints()
    path = Path(path)
    if not path.exists():
        raise ConversionInputError(f"{path.name}: no such file or folder")
    found = _detect(path, hints, path.name, top=True)
    if not found:
        raise ConversionInputError(
            f"{path.name}: no convertible data found (supported: {SUPPORTED})"
        )
    if hints.layer_name:
        if len(found) == 1:
            found[0].name = hints.layer_name
        else:
            for source in found:
                source.name = f"{hints.layer_name}_{source.name}"
    return found


def _file(path: Path, hints: SourceHints, label: str) -> Source | None:
    name = path.name.lower()
    suffix = PurePosixPath(name).suffix
    if hints.dtype is not None or suffix in raw.RAW_SUFFIXES:
        return raw.open_raw(raw.raw_spec(path, hints, label))
    if suffix in slices.TIFF_SUFFIXES:
        return tiff.open_tiff({"kind": tiff.KIND, "path": str(path), "label": label})
    if nifti.is_nifti_name(name):
        return nifti.open_nifti({"kind": nifti.KIND, "path": str(path), "label": label})
    if suffix in slices.IMAGE_SUFFIXES:
        spec = slices.slice_spec(
            path.parent,
            [path.name],
            archive=False,
            label=label,
            name=layer_name_from(path.name),
        )
        return slices.open_slices(spec)
    return None


def _archive(path: Path, label: str) -> list[Source]:
    groups = slices.archive_groups(path, label)
    if not groups:
        raise ConversionInputError(f"{label}: the archive holds no image slices")
    single = len(groups) == 1
    found: list[Source] = []
    try:
        for folder, members in groups.items():
            name = layer_name_from(
                path.name if single or folder == "." else PurePosixPath(folder).name
            )
            spec = slices.slice_spec(
                path, members, archive=True, label=label, name=name
            )
            found.append(slices.open_slices(spec))
    except BaseException:
        for source in found:
            source.close()
        raise
    return found


def _dataset(path: Path, label: str) -> list[Source]:
    try:
        props = load_datasource(path / "datasource-properties.json")
    except (DatasourceError, OSError) as e:
        raise ConversionInputError(
            f"{label}/datasource-properties.json: cannot be read ({e})"
        ) from None
    found: list[Source] = []
    try:
        for layer in props.layers:
            spec = arrays.array_spec(
                path, layer, label=f"{label}/{layer.name}", voxel_size=props.voxel_size
            )
            found.append(arrays.open_array_source(spec))
    except BaseException:
        for source in found:
            source.close()
        raise
    return found


def _detect(path: Path, hints: SourceHints, label: str, *, top: bool) -> list[Source]:
    if path.is_file():
        if path.name.lower().endswith(".zip"):
            return _archive(path, label)
        source = _file(path, hints, label)
        if source is None:
            raise ConversionInputError(
                f"{label}: unknown file type (supported: {SUPPORTED})"
            )
        return [source]
    if not path.is_dir():
        return []
    if (path / "datasource-properties.json").is_file():
        return _dataset(path, label)
    try:
        bare = arrays.bare_array_layer(path, layer_name_from(path.name))
        layer = None if bare else arrays.layer_folder(path)
    except FormatError as e:
        raise ConversionInputError(f"{label}: {e}") from None
    if bare is not None:
        spec = arrays.array_spec(path.parent, bare, label=label, voxel_size=None)
        spec["allowed_roots"] = [str(path)]
        return [arrays.open_array_source(spec)]
    if layer is not None:
        spec = arrays.array_spec(
            path.parent, layer[0], label=label, voxel_size=layer[1]
        )
        return [arrays.open_array_source(spec)]
    files = sorted(p for p in path.iterdir() if not p.name.startswith("."))
    images = slices.list_folder_slices(path)
    if images:
        if len(images) == 1 and PurePosixPath(images[0]).suffix.lower() in (
            slices.TIFF_SUFFIXES
        ):
            single = tiff.open_tiff(
                {
                    "kind": tiff.KIND,
                    "path": str(path / images[0]),
                    "label": f"{label}/{images[0]}",
                }
            )
            single.name = layer_name_from(path.name, single.name)
            return [single]
        spec = slices.slice_spec(
            path, images, archive=False, label=label, name=layer_name_from(path.name)
        )
        return [slices.open_slices(spec)]
    volumes = [
        p
        for p in files
        if p.is_file()
        and (
            nifti.is_nifti_name(p.name)
            or PurePosixPath(p.name.lower()).suffix in raw.RAW_SUFFIXES
        )
    ]
    if len(volumes) == 1:
        source = _file(volumes[0], hints, f"{label}/{volumes[0].name}")
        if source is not None:
            source.name = layer_name_from(path.name, source.name)
            return [source]
    if not top:
        return []
    found: list[Source] = []
    try:
        for sub in files:
            if sub.is_dir():
                for source in _detect(sub, hints, f"{label}/{sub.name}", top=False):
                    source.name = layer_name_from(sub.name, source.name)
                    found.append(source)
    except BaseException:
        for source in found:
            source.close()
        raise
    return found


def with_spec(source: Source, spec: Mapping[str, Any]) -> Source:
    """`source` reopened from `spec`, keeping its name (after `prepare`)."""
    reopened = open_source(spec)
    reopened.name = source.name
    return reopened
