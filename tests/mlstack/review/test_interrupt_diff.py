"""Ctrl-C during ``mlstack diff``'s base worktree: exit 130, worktree and temp dirs gone."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.mlstack.interrupt_helpers import (
    assert_clean_exit,
    children_running,
    env_with_tmp,
    interrupt_when,
)
from tests.mlstack.review.conftest import Repo, git

pytestmark = pytest.mark.slow


def _worktrees(root: Path) -> list[str]:
    listed = subprocess.run(
        ["git", "worktree", "list", "--porcelain"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in listed.stdout.splitlines() if line.startswith("worktree ")]


@pytest.fixture
def code_changed(repo: Repo, tmp_path: Path) -> Path:
    """A clone of the test repository whose working tree changes code (so the base is
    synthesized in a worktree of its own)."""
    clone = tmp_path / "clone"
    git(repo.root, "worktree", "prune")
    shutil.copytree(repo.root, clone)
    git(clone, "worktree", "prune")
    target = clone / "stacks" / "composition.py"
    target.write_text(target.read_text() + "\n# a code change\n")
    return clone


@pytest.mark.parametrize("moment", ["worktree-added", "synth-running"])
def test_diff_interrupted_in_its_worktree_cleans_up(
    code_changed: Path, repo: Repo, tmp_path: Path, moment: str
) -> None:
    private_tmp = tmp_path / "tmp"

    def ready(_process: subprocess.Popen[str]) -> bool:
        try:
            listed = _worktrees(code_changed)
        except subprocess.CalledProcessError:
            return False  # `git worktree list` can fail while `add` is half done
        trees = [t for t in listed if str(private_tmp) in t]
        if moment == "worktree-added":
            return bool(trees)
        return bool(trees) and bool(children_running(str(private_tmp / "mlstack-plans-")))

    before = _worktrees(code_changed)
    result = interrupt_when(
        ["diff", "dev", "--base", repo.first, "--root", str(code_changed)],
        ready,
        cwd=code_changed,
        env=env_with_tmp(private_tmp),
    )
    assert_clean_exit(result)
    assert _worktrees(code_changed) == before
    assert list(private_tmp.iterdir()) == []
    assert children_running(str(private_tmp)) == []


def _kill_job(process: subprocess.Popen[bytes], marker: str) -> None:
    """SIGKILL the command and every process working in ``marker`` (a CI runner
    cancelling the job, the OOM killer): no handler runs, no cleanup."""
    import os
    import signal

    process.kill()
    process.wait()
    for cmdline_pid in _pids_mentioning(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(cmdline_pid, signal.SIGKILL)


def _pids_mentioning(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                found.append(int(entry.name))
    return found


def test_a_worktree_left_by_a_killed_diff_is_swept_by_the_next_run(
    code_changed: Path, repo: Repo, tmp_path: Path
) -> None:
    """Issue 26 item 14: a SIGKILL (or a second Ctrl-C) runs no cleanup; the temporary
    checkout it leaves, named with the dead owner's pid, goes at the next run's start."""
    import time

    from tests.mlstack.interrupt_helpers import MLSTACK

    private_tmp = tmp_path / "tmp"
    env = env_with_tmp(private_tmp)
    before = _worktrees(code_changed)
    args = [str(MLSTACK), "diff", "dev", "--base", repo.first, "--root", str(code_changed)]
    first = subprocess.Popen(
        args, cwd=code_changed, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 240
        while not any(str(private_tmp) in t for t in _safe_worktrees(code_changed)):
            assert first.poll() is None, "diff ended before its worktree was seen"
            assert time.monotonic() < deadline, "no worktree within 240 s"
            time.sleep(0.05)
    finally:
        _kill_job(first, str(private_tmp))
    assert [p.name for p in private_tmp.iterdir() if p.name.startswith("mlstack-rev-")]

    second = subprocess.run(
        args, cwd=code_changed, env=env, capture_output=True, text=True, timeout=600, check=False
    )

    assert second.returncode == 0, second.stderr[-2000:]
    assert list(private_tmp.iterdir()) == []
    assert _worktrees(code_changed) == before


def _safe_worktrees(root: Path) -> list[str]:
    try:
        return _worktrees(root)
    except subprocess.CalledProcessError:
        return []  # `git worktree list` can fail while `add` is half done
