"""The files of a local model directory, checked before anything is uploaded."""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlstack.errors import UsageError, is_control, printable

MAX_PATH_BYTES = 1024
"""Longest UTF-8 path of a file in a manifest (a sanity limit, well under PATH_MAX)."""


@dataclass(frozen=True)
class LocalFile:
    """One regular file of the model directory.

    A symlink to a file inside the directory is followed (``path`` is its resolved
    target, which is what gets read); one whose target leaves the directory is refused.
    """

    relpath: str
    """POSIX path relative to the model directory, as recorded in the manifest."""
    path: Path
    size: int


def relpath_problem(relpath: str) -> str | None:
    """Why ``relpath`` cannot be a file path in a manifest, or None."""
    try:
        relpath.encode("utf-8")
    except UnicodeEncodeError:
        return "the name is not valid UTF-8"
    if any(is_control(ch) for ch in relpath):
        return "the name holds control characters"
    if "\\" in relpath:
        return "the name holds a backslash"
    parts = relpath.split("/")
    if relpath.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return "not a plain relative path"
    if len(relpath.encode("utf-8")) > MAX_PATH_BYTES:
        return f"the path is longer than {MAX_PATH_BYTES} bytes"
    return None


def _excluded(relpath: str, patterns: Sequence[str]) -> bool:
    """A pattern matches the path or one of its parent directories (``.git`` drops ``.git/*``)."""
    parts = relpath.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatchcase(c, pat) for pat in patterns for c in candidates)


def _outside(target: Path, root: Path) -> bool:
    return target != root and root not in target.parents


def scan_model_dir(root: Path, exclude: Sequence[str] = ()) -> list[LocalFile]:
    """Every file to push, sorted by path; UsageError listing every problem found.

    Symlinked directories are refused (not followed), and so is a symlink to a file
    whose target (after resolving every link) leaves the model directory, so a push
    cannot wander off and upload, say, ``/etc/hostname``.
    """
    if not root.exists():
        raise UsageError(f"model directory {root} does not exist")
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory")
    real_root = root.resolve()
    files: list[LocalFile] = []
    problems: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for dirname in list(dirnames):
            rel = (here / dirname).relative_to(root).as_posix()
            if _excluded(rel, exclude):
                dirnames.remove(dirname)
            elif (here / dirname).is_symlink():
                problems.append(
                    f"{printable(rel)}: a symlinked directory (not followed); copy it in"
                )
                dirnames.remove(dirname)
        for filename in filenames:
            path = here / filename
            rel = path.relative_to(root).as_posix()
            if _excluded(rel, exclude):
                continue
            problem = relpath_problem(rel)
            if problem:
                problems.append(f"{printable(rel)}: {problem}")
                continue
            if path.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError) as exc:
                    problems.append(f"{printable(rel)}: a broken or looping symlink ({exc})")
                    continue
                if _outside(target, real_root):
                    problems.append(
                        f"{printable(rel)}: a symlink to {printable(str(target))}, outside the "
                        "model directory (refused: copy the file in if it belongs to the model)"
                    )
                    continue
                path = target
            try:
                info = path.stat()
            except OSError as exc:
                problems.append(
                    f"{printable(rel)}: cannot read ({exc.strerror or exc}; a broken symlink?)"
                )
                continue
            if not stat.S_ISREG(info.st_mode):
                problems.append(f"{printable(rel)}: not a regular file")
                continue
            if not os.access(path, os.R_OK):
                problems.append(f"{printable(rel)}: not readable")
                continue
            files.append(LocalFile(rel, path, info.st_size))
    if problems:  # names are escaped: a newline in one cannot fake another line
        shown = printable(str(root))
        if len(problems) == 1:
            raise UsageError(f"cannot push {shown}: {problems[0]}")
        raise UsageError(
            f"cannot push {shown} ({len(problems)} problems):\n  - "
            + "\n  - ".join(sorted(problems))
        )
    if not files:
        raise UsageError(f"model directory {root} is empty: no files to push")
    return sorted(files, key=lambda f: f.relpath)
