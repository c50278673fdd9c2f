"""Geometry value types: parsing mags and doing box arithmetic."""

from __future__ import annotations

import pytest

from shared.geometry import BoundingBox, GeometryError, Mag, Vec3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2-2-1", Mag(2, 2, 1)),
        ("2", Mag(2, 2, 2)),
        (" 4 - 4 - 2 ", Mag(4, 4, 2)),
        ([2, 2, 1], Mag(2, 2, 1)),
        ((1, 1, 1), Mag(1, 1, 1)),
        (8, Mag(8, 8, 8)),
        (["2", "2", "1"], Mag(2, 2, 1)),
    ],
)
def test_mag_parses_every_spelling(text: object, expected: Mag) -> None:
    assert Mag.parse(text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", ["3", "2-2", "0", "-2", "a-b-c", [2, 2], True, None, 2.5, "2-2-1-1"]
)
def test_mag_rejects_junk_and_non_powers_of_two(bad: object) -> None:
    with pytest.raises(GeometryError):
        Mag.parse(bad)  # type: ignore[arg-type]


def test_mag_names_match_webknossos_folders() -> None:
    assert Mag(1, 1, 1).to_layer_name() == "1"
    assert Mag(2, 2, 1).to_layer_name() == "2-2-1"
    assert Mag(4, 4, 4).to_long_name() == "4-4-4"
    assert sorted([Mag(4, 4, 2), Mag(1, 1, 1), Mag(2, 2, 1)]) == [
        Mag(1, 1, 1),
        Mag(2, 2, 1),
        Mag(4, 4, 2),
    ]


def test_bounding_box_in_a_coarser_mag_covers_the_mag1_box() -> None:
    box = BoundingBox.of((10, 20, 30), (100, 90, 80))
    assert box.in_mag(Mag(4, 4, 2)) == BoundingBox.from_corners(
        (2, 5, 15), (28, 28, 55)
    )
    assert box.end == Vec3(110, 110, 110)


def test_bounding_box_intersection_and_union() -> None:
    a = BoundingBox.of(0, 10)
    b = BoundingBox.of(5, 10)
    assert a.intersection(b) == BoundingBox.of(5, 5)
    assert a.union(b) == BoundingBox.of(0, 15)
    assert a.intersection(BoundingBox.of(20, 5)).is_empty()
    assert not a.intersects(BoundingBox.of((10, 0, 0), 5))
    assert a.contains((9, 9, 9))
    assert not a.contains((10, 0, 0))


def test_bounding_box_chunks_are_aligned_and_clipped() -> None:
    chunks = list(BoundingBox.of((10, 0, 0), (60, 32, 32)).chunks(32))
    assert [c.topleft.x for c in chunks] == [10, 32, 64]
    assert [c.size.x for c in chunks] == [22, 32, 6]
    assert sum(c.volume() for c in chunks) == 60 * 32 * 32


def test_bounding_box_rejects_negative_sizes() -> None:
    with pytest.raises(GeometryError):
        BoundingBox.of(0, (1, -1, 1))


def test_bounding_box_wkw_dict_form() -> None:
    assert BoundingBox.of((1, 2, 3), (4, 5, 6)).to_wkw_dict() == {
        "topLeft": [1, 2, 3],
        "width": 4,
        "height": 5,
        "depth": 6,
    }
