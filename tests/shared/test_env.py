"""Typed environment settings fail loudly on junk and read *_FILE secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.env import SettingError, env_bool, env_int, env_list, env_paths, env_str


def test_env_int_reads_and_rejects_junk() -> None:
    assert env_int("N", 5, environ={}) == 5
    assert env_int("N", 5, environ={"N": " 7 "}) == 7
    with pytest.raises(SettingError, match="N must be an integer, got 'seven'"):
        env_int("N", 5, environ={"N": "seven"})
    with pytest.raises(SettingError, match="N must be >= 1"):
        env_int("N", 5, minimum=1, environ={"N": "0"})


def test_env_bool_accepts_the_usual_spellings_only() -> None:
    assert env_bool("B", False, environ={"B": "yes"}) is True
    assert env_bool("B", True, environ={"B": "0"}) is False
    with pytest.raises(SettingError, match="B must be true or false"):
        env_bool("B", False, environ={"B": "maybe"})


def test_required_setting_names_itself() -> None:
    with pytest.raises(SettingError, match="KEY must be set"):
        env_str("KEY", required=True, environ={})


def test_secret_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("s3cret\n")
    assert env_str("KEY", environ={"KEY_FILE": str(secret)}) == "s3cret"
    with pytest.raises(SettingError, match="KEY_FILE: cannot read"):
        env_str("KEY", environ={"KEY_FILE": str(tmp_path / "missing")})


def test_lists_and_paths_split_and_strip() -> None:
    assert env_list("L", environ={"L": "a, b,,c "}) == ["a", "b", "c"]
    assert env_paths("P", environ={"P": "/a:/b/c"}) == [Path("/a"), Path("/b/c")]
    assert env_paths("P", environ={}) == []
