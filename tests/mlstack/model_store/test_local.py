"""Scanning a model directory: what is pushed, what is refused, and why."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlstack.errors import UsageError
from mlstack.model_store.local import relpath_problem, scan_model_dir
from tests.mlstack.model_store.conftest import write_model


def test_scan_lists_files_sorted_with_sizes_and_follows_file_symlinks(tmp_path: Path) -> None:
    blobs = write_model(tmp_path / "blobs", {"abc": 7})
    root = write_model(tmp_path / "m", {"z.bin": 3, "sub/a.bin": 1, "sub/manifest.json": b"{}"})
    (root / "link.bin").symlink_to(blobs / "abc")

    files = scan_model_dir(root)

    assert [(f.relpath, f.size) for f in files] == [
        ("link.bin", 7),
        ("sub/a.bin", 1),
        ("sub/manifest.json", 2),
        ("z.bin", 3),
    ]


def test_exclude_patterns_drop_files_and_whole_directories(tmp_path: Path) -> None:
    root = write_model(
        tmp_path / "m", {".git/HEAD": b"x", ".git/objects/a": b"y", "w.bin": 1, "notes.md": b"n"}
    )
    files = scan_model_dir(root, exclude=[".git", "*.md"])
    assert [f.relpath for f in files] == ["w.bin"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    outside = write_model(tmp_path / "outside", {"x": 1})
    root = write_model(tmp_path / "m", {"manifest.json": b"{}", "ok.bin": 1})
    (root / "linked-dir").symlink_to(outside, target_is_directory=True)
    (root / "dangling").symlink_to(tmp_path / "missing")
    os.mkfifo(root / "pipe")

    with pytest.raises(UsageError) as failure:
        scan_model_dir(root)

    message = str(failure.value)
    assert "4 problems" in message
    assert "manifest.json: manifest.json at the top level is reserved" in message
    assert "linked-dir: a symlinked directory" in message
    assert "dangling: cannot read" in message
    assert "pipe: not a regular file" in message


def test_key_length_limit_is_checked(tmp_path: Path) -> None:
    root = write_model(tmp_path / "m", {"a" * 200: 1})
    with pytest.raises(UsageError, match="1024-byte limit"):
        scan_model_dir(root, prefix_bytes=900)


@pytest.mark.parametrize(
    ("relpath", "expected"),
    [
        ("ok/file.bin", None),
        ("tab\there", "control characters"),
        ("back\\slash", "backslash"),
        ("a//b", "not a plain relative path"),
        ("../x", "not a plain relative path"),
        ("/abs", "not a plain relative path"),
        ("manifest.json", "reserved"),
    ],
)
def test_relpath_rules(relpath: str, expected: str | None) -> None:
    problem = relpath_problem(relpath)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem


def test_missing_path_and_plain_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        scan_model_dir(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is not a directory"):
        scan_model_dir(tmp_path / "file")
