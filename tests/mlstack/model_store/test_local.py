"""Scanning a model directory: what is pushed, what is refused, and why."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlstack.errors import UsageError
from mlstack.model_store.local import relpath_problem, scan_model_dir
from tests.mlstack.model_store.conftest import write_model


def test_scan_lists_files_sorted_with_sizes_and_follows_symlinks_inside(tmp_path: Path) -> None:
    root = write_model(
        tmp_path / "m", {"z.bin": 3, "sub/a.bin": 1, "manifest.json": b"{}", "blobs/abc": 7}
    )
    (root / "link.bin").symlink_to(root / "blobs" / "abc")
    (root / "sub" / "rel.bin").symlink_to("../z.bin")

    files = scan_model_dir(root)

    assert [(f.relpath, f.size) for f in files] == [
        ("blobs/abc", 7),
        ("link.bin", 7),
        ("manifest.json", 2),
        ("sub/a.bin", 1),
        ("sub/rel.bin", 3),
        ("z.bin", 3),
    ]
    link = next(f for f in files if f.relpath == "link.bin")
    assert link.path == (root / "blobs" / "abc").resolve()  # what is read is the target


@pytest.mark.parametrize(
    "target",
    [
        "/etc/hostname",  # the reported break-in: an absolute link out of the directory
        "../outside/secret",  # a relative one
        "chain",  # a link inside that points to a link outside
    ],
)
def test_symlinks_leaving_the_model_directory_are_refused(tmp_path: Path, target: str) -> None:
    write_model(tmp_path / "outside", {"secret": b"do not upload"})
    root = write_model(tmp_path / "m", {"ok.bin": 1})
    (root / "chain").symlink_to(tmp_path / "outside" / "secret")
    if target != "chain":
        (root / "chain").unlink()
    (root / "weights.bin").symlink_to(target)
    if target == "/etc/hostname" and not Path(target).exists():
        pytest.skip("no /etc/hostname on this machine")

    with pytest.raises(UsageError) as failure:
        scan_model_dir(root)

    message = str(failure.value)
    assert "weights.bin: a symlink to" in message and "outside the model directory" in message


def test_a_symlinked_model_directory_itself_is_fine(tmp_path: Path) -> None:
    real = write_model(tmp_path / "real", {"w.bin": 5})
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    files = scan_model_dir(tmp_path / "alias")
    assert [(f.relpath, f.size) for f in files] == [("w.bin", 5)]


def test_exclude_patterns_drop_files_and_whole_directories(tmp_path: Path) -> None:
    root = write_model(
        tmp_path / "m", {".git/HEAD": b"x", ".git/objects/a": b"y", "w.bin": 1, "notes.md": b"n"}
    )
    files = scan_model_dir(root, exclude=[".git", "*.md"])
    assert [f.relpath for f in files] == ["w.bin"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    outside = write_model(tmp_path / "outside", {"x": 1})
    root = write_model(tmp_path / "m", {"ok.bin": 1})
    (root / "linked-dir").symlink_to(outside, target_is_directory=True)
    (root / "dangling").symlink_to(tmp_path / "missing")
    (root / "escape").symlink_to(outside / "x")
    os.mkfifo(root / "pipe")

    with pytest.raises(UsageError) as failure:
        scan_model_dir(root)

    message = str(failure.value)
    assert "4 problems" in message
    assert "linked-dir: a symlinked directory" in message
    assert "dangling: a broken or looping symlink" in message
    assert "escape: a symlink to" in message
    assert "pipe: not a regular file" in message


def test_path_length_limit_is_checked(tmp_path: Path) -> None:
    deep = "/".join(["d" * 200] * 6) + "/f"
    assert relpath_problem(deep) is not None and "1024 bytes" in (relpath_problem(deep) or "")


@pytest.mark.parametrize(
    ("relpath", "expected"),
    [
        ("ok/file.bin", None),
        ("tab\there", "control characters"),
        ("back\\slash", "backslash"),
        ("a//b", "not a plain relative path"),
        ("../x", "not a plain relative path"),
        ("/abs", "not a plain relative path"),
        ("manifest.json", None),  # no longer reserved: file paths are not object keys
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
