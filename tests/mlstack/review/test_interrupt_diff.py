"""Ctrl-C during ``mlstack diff``'s base worktree: exit 130, worktree and temp dirs gone."""

from __future__ import annotations

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
