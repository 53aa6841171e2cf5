"""A real git repository of the project, built in a temp dir, with a few commits."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from stacks.config import PROJECT_ROOT

COPIED = ("components", "stacks", "mlstack", "policy", "schema")


@dataclass(frozen=True)
class Repo:
    root: Path
    first: str
    """Both stacks as on main."""
    second: str
    """dev: system nodes m6i.large -> m6i.xlarge (replace) and maxSize 3 -> 5."""
    broken: str
    """dev: systemNodeGroup.minSize 0 (invalid); on branch ``broken``, not checked out."""

    def git(self, *args: str) -> str:
        return git(self.root, *args)


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.fixture(scope="session")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    root = tmp_path_factory.mktemp("repo") / "project"
    root.mkdir()
    for name in COPIED:
        shutil.copytree(
            PROJECT_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    for stack_file in PROJECT_ROOT.glob("Pulumi*.yaml"):
        shutil.copy(stack_file, root / stack_file.name)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first")
    first = git(root, "rev-parse", "HEAD")

    dev = root / "Pulumi.dev.yaml"
    _edit(dev, "instanceTypes: [m6i.large]", "instanceTypes: [m6i.xlarge]")
    _edit(dev, "maxSize: 3", "maxSize: 5")
    git(root, "commit", "-qam", "bigger dev nodes")
    second = git(root, "rev-parse", "HEAD")

    git(root, "checkout", "-qb", "broken")
    _edit(dev, "minSize: 1", "minSize: 0")
    git(root, "commit", "-qam", "broken dev")
    broken = git(root, "rev-parse", "HEAD")
    git(root, "checkout", "-q", "main")
    return Repo(root, first, second, broken)
