"""Fixtures for history and rollback: real git repositories, and a STAND-IN ``pulumi``.

The Pulumi CLI is not installable here. ``standin_pulumi`` puts a small Python
script named ``pulumi`` first on PATH. It is NOT Pulumi: it answers ``version``
and ``stack select``, prints a canned history (set by the test, in the JSON shape
of ``pulumi stack history --json``: version, kind, startTime, endTime, result,
message, environment with ``git.head``/``git.headName``/``git.dirty``/``ci.*``,
resourceChanges) honouring ``--page-size``/``--page``, and for ``up`` records
what it was given to deploy (its arguments, working directory, that directory's
commit and ``Pulumi.<stack>.yaml``) without deploying anything (with
``$STANDIN_UP_LOCKED`` set, ``up`` refuses as a locked DIY stack does, naming that
lock). Every call is
appended to a JSON-lines log the test reads back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

STANDIN_SCRIPT = r'''#!{python}
"""STAND-IN for the Pulumi CLI, written by the mlstack tests. Not Pulumi."""
import json, os, subprocess, sys

state = os.environ["STANDIN_PULUMI_STATE"]
argv = sys.argv[1:]
# Global flags the Automation API puts first.
args = [a for a in argv if a not in ("--non-interactive",)]

def flag(name, default=None):
    return args[args.index(name) + 1] if name in args else default

record = {{"args": args, "argv": argv, "cwd": os.getcwd()}}
record["pythonpath"] = os.environ.get("PYTHONPATH", "")
stack = flag("--stack")
if args[:1] == ["up"]:
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    record["head"] = head.stdout.strip()
    stack_file = os.path.join(os.getcwd(), "Pulumi.%s.yaml" % stack)
    record["stackFile"] = open(stack_file).read() if os.path.exists(stack_file) else None
    record["venvIsLink"] = os.path.islink(os.path.join(os.getcwd(), ".venv"))
    record["venvTarget"] = os.path.realpath(os.path.join(os.getcwd(), ".venv"))
    # What the engine runs to decide git.dirty, with the environment it was given.
    status = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True)
    record["porcelain"] = status.stdout
with open(os.path.join(state, "calls.jsonl"), "a") as log:
    log.write(json.dumps(record) + "\n")

if args[:1] == ["version"]:
    print("v3.210.0")
elif args[:2] == ["stack", "select"]:
    pass
elif args[:2] == ["stack", "output"]:
    path = os.path.join(state, "outputs-%s.json" % stack)
    if not os.path.exists(path):
        sys.stderr.write("error: no stack named '%s' found\n" % stack)
        sys.exit(255)
    print(open(path).read())
elif args[:2] == ["stack", "history"]:
    path = os.path.join(state, "history-%s.json" % stack)
    if not os.path.exists(path):
        sys.stderr.write("error: no stack named '%s' found\n" % stack)
        sys.exit(255)
    entries = json.load(open(path))
    size = int(flag("--page-size", "10"))
    page = int(flag("--page", "1"))
    print(json.dumps(entries[(page - 1) * size : page * size]))
elif args[:1] == ["up"] and os.environ.get("STANDIN_UP_LOCKED"):
    # The DIY backend's refusal, in the shape of pulumi/pulumi pkg/backend/diy/lock.go
    # (checkForLock): the sentence, then one line per lock. Written for the tests.
    sys.stderr.write(
        "error: the stack is currently locked by 1 lock(s). Either wait for the other "
        "process(es) to end or delete the lock file with `pulumi cancel`.\n"
        "  " + os.environ["STANDIN_UP_LOCKED"] + "\n"
    )
    sys.exit(255)
elif args[:1] == ["up"]:
    print("stand-in: pretending to update stack %s" % stack)
    sys.exit(int(os.environ.get("STANDIN_UP_EXIT", "0")))
else:
    sys.stderr.write("stand-in pulumi: unexpected command %r\n" % (args,))
    sys.exit(99)
'''


@dataclass
class StandInPulumi:
    """Controls and observes the stand-in ``pulumi`` on PATH."""

    state: Path
    bin_dir: Path

    def set_history(self, stack: str, entries: list[dict[str, Any]]) -> None:
        """Newest first, as the CLI prints it."""
        ordered = sorted(entries, key=lambda e: e["version"], reverse=True)
        (self.state / f"history-{stack}.json").write_text(json.dumps(ordered))

    def set_outputs(self, stack: str, outputs: dict[str, Any]) -> None:
        """What `pulumi stack output --json --stack <stack>` prints."""
        (self.state / f"outputs-{stack}.json").write_text(json.dumps(outputs))

    def calls(self) -> list[dict[str, Any]]:
        log = self.state / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def calls_of(self, *prefix: str) -> list[dict[str, Any]]:
        return [c for c in self.calls() if c["args"][: len(prefix)] == list(prefix)]


def _tool_path(tmp: Path) -> str:
    """A PATH with git (and nothing named pulumi) for tests that need the CLI absent."""
    tools = tmp / "tools"
    tools.mkdir()
    git = shutil.which("git")
    assert git is not None, "git is needed by these tests"
    (tools / "git").symlink_to(git)
    return str(tools)


@pytest.fixture
def no_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PATH without any ``pulumi``, and an empty PULUMI_HOME."""
    monkeypatch.setenv("PATH", _tool_path(tmp_path))
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "pulumi-home"))


@pytest.fixture
def standin_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandInPulumi:
    """The stand-in ``pulumi`` (see module docstring) first on PATH."""
    bin_dir = tmp_path / "standin" / "bin"
    bin_dir.mkdir(parents=True)
    state = tmp_path / "standin" / "state"
    state.mkdir()
    script = bin_dir / "pulumi"
    script.write_text(STANDIN_SCRIPT.format(python=sys.executable))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + _tool_path(tmp_path))
    monkeypatch.setenv("STANDIN_PULUMI_STATE", str(state))
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "pulumi-home"))
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    return StandInPulumi(state=state, bin_dir=bin_dir)


# --------------------------------------------------------------------------- git repos


@dataclass
class DeployRepo:
    """A real git repository with a Pulumi project and several commits."""

    root: Path
    commits: dict[str, str] = field(default_factory=dict)

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.root, check=True, capture_output=True, text=True
        ).stdout.strip()

    def commit(self, label: str, files: dict[str, str]) -> str:
        for rel, text in files.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", label)
        sha = self.git("rev-parse", "HEAD")
        self.commits[label] = sha
        return sha

    def worktrees(self) -> list[str]:
        return [
            line.split(" ", 1)[1]
            for line in self.git("worktree", "list", "--porcelain").splitlines()
            if line.startswith("worktree ")
        ]


PYPROJECT = '[project]\nname = "toy"\nversion = "0"\ndependencies = ["pulumi>=3,<4"]\n'


def stack_yaml(replicas: int) -> str:
    return f"config:\n  mlstack:environment: dev\n  mlstack:replicas: {replicas}\n"


@pytest.fixture
def deploy_repo(tmp_path: Path) -> Iterator[DeployRepo]:
    """Commits: ``prod-only`` (no Pulumi.dev.yaml), ``dev-1``, ``dev-2``, ``dev-3``, ``dev-4``.

    ``constraints.txt`` pins ``pulumi==3.100.0`` up to ``dev-2`` and ``pulumi==3.200.0``
    from ``dev-3`` on (the environment a rollback builds must follow the target)."""
    root = tmp_path / "repo"
    root.mkdir()
    repo = DeployRepo(root)
    repo.git("init", "-q", "-b", "main")
    repo.git("config", "user.name", "Test")
    repo.git("config", "user.email", "test@example.com")
    repo.git("config", "commit.gpgsign", "false")
    # The OLD ignore pattern: `.venv/` matches a directory, never the rollback's symlink.
    (root / ".gitignore").write_text(".venv/\n")
    repo.commit(
        "prod-only",
        {
            "Pulumi.yaml": "name: mlstack\nruntime: python\nmain: stacks/\n",
            "constraints.txt": "pulumi==3.100.0\n",
            "pyproject.toml": PYPROJECT,
            "Pulumi.prod.yaml": "config:\n  mlstack:environment: prod\n",
            "stacks/__main__.py": "print('v1')\n",
        },
    )
    repo.commit("dev-1", {"Pulumi.dev.yaml": stack_yaml(1)})
    repo.commit("dev-2", {"Pulumi.dev.yaml": stack_yaml(2)})
    repo.commit(
        "dev-3",
        {"stacks/__main__.py": "print('v2')\n", "constraints.txt": "pulumi==3.200.0\n"},
    )
    repo.commit("dev-4", {"Pulumi.dev.yaml": stack_yaml(4)})
    yield repo


def history_entry(
    version: int,
    head: str | None,
    *,
    kind: str = "update",
    result: str = "succeeded",
    dirty: bool = False,
    branch: str = "refs/heads/main",
    message: str = "",
    ci: bool = True,
) -> dict[str, Any]:
    """One item in the CLI's ``stack history --json`` shape (times in its format)."""
    environment: dict[str, str] = {"exec.kind": "cli"}
    if head is not None:
        environment |= {
            "git.head": head,
            "git.headName": branch,
            "git.dirty": "true" if dirty else "false",
            "git.author": "Test",
            "git.author.email": "test@example.com",
            "vcs.kind": "github.com",
            "vcs.owner": "example-org",
            "vcs.repo": "mlstack",
        }
    if ci:
        environment |= {
            "ci.system": "GitHub",
            "ci.build.id": str(9000 + version),
            "ci.build.type": "push",
            "ci.build.url": f"https://github.com/example-org/mlstack/actions/runs/{9000 + version}",
        }
    entry: dict[str, Any] = {
        "version": version,
        "kind": kind,
        "startTime": f"2026-11-{version:02d}T10:00:00.000Z",
        "message": message or f"update {version}",
        "environment": environment,
        "config": {"mlstack:environment": {"value": "dev", "secret": False}},
        "result": result,
        "endTime": f"2026-11-{version:02d}T10:05:30.000Z",
        "resourceChanges": {"same": 40, "update": version},
    }
    return entry


# --------------------------------------------------------------------------- env builds

STANDIN_PYTHON = r'''#!{python}
"""STAND-IN for the interpreter that builds rollback environments. Not Python's venv/pip:
records what it was asked; `-m venv DIR` makes DIR/bin/python (a shell script that
answers `-m pip list --format json` with an empty list), `-m pip` reads `-c FILE`."""
import json, os, sys

state = os.environ["STANDIN_PYTHON_STATE"]
argv = sys.argv[1:]
record = {{"argv": argv}}
if argv[:2] == ["-m", "venv"]:
    target = argv[-1]
    os.makedirs(os.path.join(target, "bin"), exist_ok=True)
    with open(os.path.join(target, "bin", "python"), "w") as f:
        f.write('#!/bin/sh\ncase "$*" in *"pip list"*) echo "[]";; esac\nexit 0\n')
    os.chmod(os.path.join(target, "bin", "python"), 0o755)
elif argv[:2] == ["-m", "pip"]:
    record["constraints"] = open(argv[argv.index("-c") + 1]).read()
with open(os.path.join(state, "python-calls.jsonl"), "a") as log:
    log.write(json.dumps(record) + "\n")
sys.exit(int(os.environ.get("STANDIN_PIP_EXIT", "0")) if argv[:2] == ["-m", "pip"] else 0)
'''


@dataclass
class StandInPython:
    """Controls and observes the stand-in environment builder."""

    state: Path
    cache: Path

    def calls(self) -> list[dict[str, Any]]:
        log = self.state / "python-calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def standin_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandInPython:
    """``$MLSTACK_ENV_PYTHON`` = the stand-in above, ``$MLSTACK_ENV_CACHE`` = a temp dir."""
    state = tmp_path / "standin-python"
    state.mkdir()
    script = state / "python"
    script.write_text(STANDIN_PYTHON.format(python=sys.executable))
    script.chmod(0o755)
    cache = tmp_path / "env-cache"
    monkeypatch.setenv("MLSTACK_ENV_PYTHON", str(script))
    monkeypatch.setenv("MLSTACK_ENV_CACHE", str(cache))
    monkeypatch.setenv("STANDIN_PYTHON_STATE", str(state))
    return StandInPython(state=state, cache=cache)
