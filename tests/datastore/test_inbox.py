"""Inbox scan: statuses, reasons, symlink and mag-path containment."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from datastore.inbox import PROPERTIES_FILE, scan_inbox
from shared.geometry import Mag
from shared.protocol import DatasetStatus
from tests.datastore.samples import Expected

Samples = tuple[Path, Expected]


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    binary_data = tmp_path / "binaryData"
    (binary_data / "lab").mkdir(parents=True)
    return binary_data


def copy_sample(samples: Samples, name: str, target: Path) -> Path:
    shutil.copytree(samples[0] / "lab" / name, target, symlinks=True)
    return target


def edit_properties(dataset: Path, change: Any) -> None:
    path = dataset / PROPERTIES_FILE
    props = json.loads(path.read_text())
    change(props)
    path.write_text(json.dumps(props))


def test_a_dataset_with_valid_properties_is_active(samples: Samples) -> None:
    result = scan_inbox(samples[0])
    assert result.organizations == ("lab",)
    scanned = result.datasets[("lab", "wkw_ds")]
    assert scanned.status == DatasetStatus.ACTIVE
    assert scanned.reason == ""
    assert scanned.datasource is not None
    assert [layer.name for layer in scanned.datasource.layers] == ["color"]
    assert result.datasets[("lab", "zarr_ds")].status == DatasetStatus.ACTIVE


def test_a_dataset_without_properties_needs_review_with_inferred_layers(
    samples: Samples, inbox: Path
) -> None:
    dataset = copy_sample(samples, "wkw_ds", inbox / "lab" / "raw")
    (dataset / PROPERTIES_FILE).unlink()
    scanned = scan_inbox(inbox).datasets[("lab", "raw")]
    assert scanned.status == DatasetStatus.NEEDS_REVIEW
    assert scanned.datasource is not None
    layer = scanned.datasource.get_layer("color")
    assert {m.mag for m in layer.mags} == {Mag(1, 1, 1), Mag(2, 2, 1)}
    report = scanned.to_report().to_json()
    assert report["status"] == "needs_review"
    assert report["datasource"]["dataLayers"][0]["name"] == "color"


def test_a_folder_with_nothing_recognizable_is_unusable_with_a_reason(
    inbox: Path,
) -> None:
    (inbox / "lab" / "empty").mkdir()
    (inbox / "lab" / "empty" / "notes.txt").write_text("hello")
    scanned = scan_inbox(inbox).datasets[("lab", "empty")]
    assert scanned.status == DatasetStatus.UNUSABLE
    assert scanned.reason


def test_broken_json_is_unusable_with_the_parser_message(
    samples: Samples, inbox: Path
) -> None:
    dataset = copy_sample(samples, "wkw_ds", inbox / "lab" / "broken")
    (dataset / PROPERTIES_FILE).write_text('{"id": {"name": "broken",')
    scanned = scan_inbox(inbox).datasets[("lab", "broken")]
    assert scanned.status == DatasetStatus.UNUSABLE
    assert scanned.reason.startswith(PROPERTIES_FILE)


def test_invalid_properties_are_unusable_naming_the_json_path(
    samples: Samples, inbox: Path
) -> None:
    dataset = copy_sample(samples, "wkw_ds", inbox / "lab" / "invalid")
    edit_properties(
        dataset, lambda p: p["dataLayers"][0]["boundingBox"].update(width=0)
    )
    scanned = scan_inbox(inbox).datasets[("lab", "invalid")]
    assert scanned.status == DatasetStatus.UNUSABLE
    assert "dataLayers[0].boundingBox.width" in scanned.reason


def test_hidden_folders_and_invalid_names_are_skipped(inbox: Path) -> None:
    for name in (".trash", ".uploads", "bad name!"):
        (inbox / "lab" / name).mkdir()
    (inbox / ".hidden-org").mkdir()
    (inbox / "bad org").mkdir()
    result = scan_inbox(inbox)
    assert result.datasets == {}
    assert result.organizations == ("lab",)


def test_a_dataset_symlinked_into_an_allowed_root_is_active(
    samples: Samples, inbox: Path, tmp_path: Path
) -> None:
    external = tmp_path / "lab-share"
    copy_sample(samples, "wkw_ds", external / "ds")
    (inbox / "lab" / "linked").symlink_to(external / "ds")
    scanned = scan_inbox(inbox, [external]).datasets[("lab", "linked")]
    assert scanned.status == DatasetStatus.ACTIVE, scanned.reason


def test_a_layer_symlinked_into_an_allowed_root_is_active(
    samples: Samples, inbox: Path, tmp_path: Path
) -> None:
    external = tmp_path / "lab-share"
    source = copy_sample(samples, "wkw_ds", external / "ds")
    dataset = inbox / "lab" / "with_linked_layer"
    dataset.mkdir()
    shutil.copy(source / PROPERTIES_FILE, dataset / PROPERTIES_FILE)
    (dataset / "color").symlink_to(source / "color")
    scanned = scan_inbox(inbox, [external]).datasets[("lab", "with_linked_layer")]
    assert scanned.status == DatasetStatus.ACTIVE, scanned.reason


def test_a_symlink_to_another_dataset_of_the_same_organization_works(
    samples: Samples, inbox: Path
) -> None:
    copy_sample(samples, "wkw_ds", inbox / "lab" / "original")
    (inbox / "lab" / "alias").symlink_to(inbox / "lab" / "original")
    assert scan_inbox(inbox).datasets[("lab", "alias")].status == DatasetStatus.ACTIVE


def test_a_symlink_outside_the_allowed_roots_is_unusable(
    samples: Samples, inbox: Path, tmp_path: Path
) -> None:
    elsewhere = copy_sample(samples, "wkw_ds", tmp_path / "elsewhere" / "ds")
    (inbox / "lab" / "escape").symlink_to(elsewhere)
    scanned = scan_inbox(inbox).datasets[("lab", "escape")]
    assert scanned.status == DatasetStatus.UNUSABLE
    assert scanned.reason == "escape: symlink target outside allowed roots"
    assert scanned.datasource is None


def test_a_layer_symlink_outside_the_allowed_roots_is_unusable(
    samples: Samples, inbox: Path, tmp_path: Path
) -> None:
    elsewhere = copy_sample(samples, "wkw_ds", tmp_path / "elsewhere" / "ds")
    dataset = inbox / "lab" / "sneaky"
    dataset.mkdir()
    shutil.copy(elsewhere / PROPERTIES_FILE, dataset / PROPERTIES_FILE)
    (dataset / "color").symlink_to(elsewhere / "color")
    scanned = scan_inbox(inbox).datasets[("lab", "sneaky")]
    assert scanned.status == DatasetStatus.UNUSABLE
    assert scanned.reason == "color: symlink target outside allowed roots"


def test_a_sibling_folder_sharing_the_roots_prefix_is_outside(
    samples: Samples, inbox: Path, tmp_path: Path
) -> None:
    root = tmp_path / "share"
    root.mkdir()
    sibling = copy_sample(samples, "wkw_ds", tmp_path / "share2" / "ds")
    (inbox / "lab" / "prefix").symlink_to(sibling)
    scanned = scan_inbox(inbox, [root]).datasets[("lab", "prefix")]
    assert scanned.status == DatasetStatus.UNUSABLE
    assert "outside allowed roots" in scanned.reason


@pytest.mark.parametrize(
    "mag_path",
    ["../../other/wkw_ds/color/1", "/etc", "file:///etc"],
)
def test_a_mag_path_escaping_the_organization_is_unusable_naming_the_path(
    samples: Samples, inbox: Path, mag_path: str
) -> None:
    copy_sample(samples, "wkw_ds", inbox / "other" / "wkw_ds")
    dataset = copy_sample(samples, "wkw_ds", inbox / "lab" / "escaping")
    edit_properties(
        dataset, lambda p: p["dataLayers"][0]["mags"][0].update(path=mag_path)
    )
    scanned = scan_inbox(inbox).datasets[("lab", "escaping")]
    assert scanned.status == DatasetStatus.UNUSABLE
    assert scanned.reason.startswith("layer color, mag 1:")
    assert mag_path in scanned.reason
    # The neighbour organization's own copy is fine.
    assert scan_inbox(inbox).datasets[("other", "wkw_ds")].status == "active"


def test_a_listed_mag_without_data_is_unusable(samples: Samples, inbox: Path) -> None:
    dataset = copy_sample(samples, "wkw_ds", inbox / "lab" / "missing_mag")
    shutil.rmtree(dataset / "color" / "2-2-1")
    scanned = scan_inbox(inbox).datasets[("lab", "missing_mag")]
    assert scanned.status == DatasetStatus.UNUSABLE
    assert scanned.reason.startswith("layer color, mag 2-2-1:")


def test_a_missing_binary_data_folder_scans_as_empty(tmp_path: Path) -> None:
    result = scan_inbox(tmp_path / "nope")
    assert result.datasets == {}


def test_periodic_scans_reuse_inference_until_the_folders_change(
    samples: Samples, inbox: Path
) -> None:
    dataset = copy_sample(samples, "wkw_ds", inbox / "lab" / "raw")
    (dataset / PROPERTIES_FILE).unlink()
    first = scan_inbox(inbox).datasets
    again = scan_inbox(inbox, previous=first).datasets
    assert again[("lab", "raw")] is first[("lab", "raw")]
    shutil.copytree(dataset / "color" / "2-2-1", dataset / "color" / "4-4-1")
    changed = scan_inbox(inbox, previous=again).datasets[("lab", "raw")]
    assert changed is not first[("lab", "raw")]
    assert changed.datasource is not None
    mags = {m.mag for m in changed.datasource.get_layer("color").mags}
    assert Mag(4, 4, 1) in mags
