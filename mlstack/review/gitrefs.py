"""Plans at a git revision: a temporary ``git worktree``, the synth run there in a subprocess.

The program at another revision may differ from the one running now, so each
stack is synthesized by *that* revision's code: ``python -m mlstack.cli plan
<stack> --out <tmp> --root <dir>`` with the worktree on ``PYTHONPATH`` and as the
working directory. Stacks run in parallel, one process each, so a stack file that
fails at one revision is reported for that stack alone. The worktree is removed
afterwards, whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstack.errors import MlstackError, UsageError

SYNTH_TIMEOUT_S = 600
_ERROR_CHARS = 4000


class GitError(UsageError):
    """A git ref that cannot be used (unknown, missing from a shallow clone...)."""


@dataclass(frozen=True)
class PlanOutcome:
    """The plan of one stack at one revision, or why there is none."""

    plan: dict[str, Any] | None
    error: str | None = None
    note: str | None = None
    """E.g. the stack did not exist at that revision (plan is then empty)."""


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


def repo_toplevel(root: Path) -> Path:
    """The git work tree containing ``root``."""
    result = _git(root, "rev-parse", "--show-toplevel")
    if result.returncode != 0:
        raise GitError(f"{root} is not inside a git repository: {result.stderr.strip()}")
    return Path(result.stdout.strip()).resolve()


def is_shallow(root: Path) -> bool:
    result = _git(root, "rev-parse", "--is-shallow-repository")
    return result.returncode == 0 and result.stdout.strip() == "true"


def resolve_ref(root: Path, ref: str) -> str:
    """The commit SHA of ``ref``; a clear error for unknown refs and shallow clones."""
    if not ref or ref.startswith("-"):
        raise GitError(f"invalid git ref {ref!r}")
    result = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if result.returncode == 0:
        return result.stdout.strip()
    if is_shallow(root):
        raise GitError(
            f"git ref {ref!r} is not in this shallow clone; fetch the history "
            "(actions/checkout with fetch-depth: 0, or `git fetch --unshallow`) and retry"
        )
    raise GitError(f"unknown git ref {ref!r} (not a branch, tag or commit in {root})")


def short(sha: str) -> str:
    return sha[:12]


@contextmanager
def temporary_worktree(root: Path, sha: str) -> Iterator[Path]:
    """A detached worktree of ``sha`` in a temp directory, removed on exit."""
    holder = Path(tempfile.mkdtemp(prefix="mlstack-rev-"))
    path = holder / "tree"
    added = _git(root, "worktree", "add", "--detach", "--force", str(path), sha)
    if added.returncode != 0:
        shutil.rmtree(holder, ignore_errors=True)
        raise GitError(f"cannot check out {short(sha)}: {added.stderr.strip()}")
    try:
        yield path
    finally:
        _git(root, "worktree", "remove", "--force", str(path))
        shutil.rmtree(holder, ignore_errors=True)
        _git(root, "worktree", "prune")


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _ERROR_CHARS else "..." + text[-_ERROR_CHARS:]


_DRIVER = """
import contextlib, io, json, sys
from mlstack.cli import main
results = {}
for stack, out in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(["plan", stack, "--out", out, "--root", sys.argv[2]])
        except BaseException as exc:
            code = 1
            err.write(f"{type(exc).__name__}: {exc}")
    results[stack] = {"code": code, "stderr": err.getvalue()}
print("MLSTACK-PLANS " + json.dumps(results))
"""
"""Runs in the revision's own code: ``mlstack.cli.main(["plan", ...])`` once per stack, in
one process (imports are paid once), each stack's error output kept apart."""


def synth_plans(project: Path, stacks: Sequence[str]) -> dict[str, PlanOutcome]:
    """Plan every stack with the code and stack files under ``project``, in a subprocess."""
    out_dir = Path(tempfile.mkdtemp(prefix="mlstack-plans-"))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(project), os.environ.get("PYTHONPATH", "")) if p
        ),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    outcomes: dict[str, PlanOutcome] = {}
    jobs: list[tuple[str, str]] = []
    for stack in stacks:
        if (project / f"Pulumi.{stack}.yaml").is_file():
            jobs.append((stack, str(out_dir / f"{stack}.json")))
        else:
            outcomes[stack] = PlanOutcome(
                plan=_empty_plan(stack), note=f"Pulumi.{stack}.yaml does not exist here"
            )
    try:
        if jobs:
            outcomes.update(_run_driver(project, jobs, env))
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return {stack: outcomes[stack] for stack in stacks}


def _run_driver(
    project: Path, jobs: list[tuple[str, str]], env: Mapping[str, str]
) -> dict[str, PlanOutcome]:
    command = [sys.executable, "-c", _DRIVER, json.dumps(jobs), str(project)]
    try:
        done = subprocess.run(
            command,
            cwd=project,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=SYNTH_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {s: PlanOutcome(None, f"synth timed out after {SYNTH_TIMEOUT_S}s") for s, _ in jobs}
    marker = next(
        (line for line in done.stdout.splitlines() if line.startswith("MLSTACK-PLANS ")), None
    )
    if marker is None:
        reason = _tail(done.stderr) or f"exit code {done.returncode}"
        return {s: PlanOutcome(None, f"the synth could not run: {reason}") for s, _ in jobs}
    results = json.loads(marker.removeprefix("MLSTACK-PLANS "))
    outcomes: dict[str, PlanOutcome] = {}
    for stack, out in jobs:
        result = results.get(stack, {})
        path = Path(out)
        if result.get("code") != 0 or not path.is_file():
            message = _tail(str(result.get("stderr", ""))) or f"exit code {result.get('code')}"
            outcomes[stack] = PlanOutcome(None, message.removeprefix("error: "))
        else:
            outcomes[stack] = PlanOutcome(json.loads(path.read_text(encoding="utf-8")))
    return outcomes


def _empty_plan(stack: str) -> dict[str, Any]:
    return {"schemaVersion": 1, "stack": stack, "resources": [], "outputs": {}, "warnings": []}


def plans_at(root: Path, ref: str, stacks: Sequence[str]) -> tuple[str, dict[str, PlanOutcome]]:
    """(SHA, plans) of ``stacks`` at ``ref`` of the repository holding project dir ``root``."""
    root = root.resolve()
    sha = resolve_ref(root, ref)
    relative = root.relative_to(repo_toplevel(root))
    with temporary_worktree(root, sha) as tree:
        return sha, synth_plans(tree / relative, stacks)


def plans_in_process(root: Path, stacks: Sequence[str]) -> dict[str, PlanOutcome]:
    """Plans of the working tree with the code already imported (``root`` must be its project)."""
    from mlstack.synth import synth_config
    from stacks.config import PROJECT_ROOT, ConfigError, load_config_file

    if root.resolve() != PROJECT_ROOT.resolve():
        return synth_plans(root.resolve(), stacks)
    outcomes: dict[str, PlanOutcome] = {}
    for stack in stacks:
        if not (root / f"Pulumi.{stack}.yaml").is_file():
            outcomes[stack] = PlanOutcome(
                plan=_empty_plan(stack), note=f"Pulumi.{stack}.yaml does not exist here"
            )
            continue
        try:
            graph = synth_config(load_config_file(stack, root), stack)
        except (ConfigError, MlstackError) as exc:
            outcomes[stack] = PlanOutcome(None, str(exc))
            continue
        except Exception as exc:
            outcomes[stack] = PlanOutcome(None, f"{type(exc).__name__}: {exc}")
            continue
        outcomes[stack] = PlanOutcome(json.loads(json.dumps(graph.to_json())))
    return outcomes


def outcome_map(outcomes: Mapping[str, PlanOutcome]) -> dict[str, dict[str, Any] | None]:
    return {stack: o.plan for stack, o in outcomes.items()}
