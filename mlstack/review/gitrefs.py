"""Plans at a git revision: a temporary ``git worktree``, the synth run there in a subprocess.

The program at another revision may differ from the one running now, so each
stack is synthesized by *that* revision's code: ``mlstack.cli.main(["plan", ...])``
of the worktree, in one subprocess with the worktree on ``PYTHONPATH`` and as the
working directory, each stack's errors kept apart so a stack file that fails at
one revision is reported for that stack alone. The worktree is removed
afterwards, whatever happens. The subprocess runs on this interpreter, or on a given
virtualenv's (a rollback synthesizes its target on the environment built from the
target's own ``constraints.txt``, :mod:`mlstack.delivery.environments`).

Fast path: when the working tree differs from the base only in stack files (and
docs, tests, workflows), the base's code *is* the running code, so the base's
stack files are synthesized in this process (:func:`stack_file_plans`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstack import interrupt
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
    return interrupt.run(["git", *args], cwd=cwd, text=True, timeout=120)


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
    repo_toplevel(root)  # a clear error outside a repository
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


WORKTREE_PREFIX = "mlstack-rev-"
"""Temp directories holding a revision's worktree: ``mlstack-rev-<pid>-<random>/<same name>``
(a unique basename: git names the worktree's admin directory after it)."""


def _remove_worktree(root: Path, holder: Path) -> None:
    """Remove the worktree in ``holder`` (and git's record of it), then ``holder``."""

    # Plain subprocess.run: also called by the interrupt handler, after it has
    # stopped every tracked child (a half-done `git worktree add` included).
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, capture_output=True, check=False, timeout=60)

    # Twice --force: a `git worktree add` stopped mid-way leaves its worktree locked
    # ("initializing"), and once --force does not remove a locked one.
    git("worktree", "remove", "--force", "--force", str(holder / holder.name))
    shutil.rmtree(holder, ignore_errors=True)
    git("worktree", "prune")


@contextmanager
def temporary_worktree(root: Path, sha: str) -> Iterator[Path]:
    """A detached worktree of ``sha`` in a temp directory, removed on exit and on a
    caught signal; worktrees left by killed runs (SIGKILL, a second Ctrl-C) are swept
    first (:func:`mlstack.interrupt.sweep_stale`)."""
    interrupt.sweep_stale(WORKTREE_PREFIX, lambda stale: _remove_worktree(root, stale))
    holder = interrupt.owned_mkdtemp(WORKTREE_PREFIX)
    # A unique basename: git names the worktree's admin directory after it, and two
    # concurrent `worktree add`s of the same basename race for one name ("failed to
    # read .git/worktrees/tree/commondir") - the diff checks out base and head at once.
    path = holder / holder.name

    def remove() -> None:
        _remove_worktree(root, holder)

    with interrupt.cleanup(remove):
        added = _git(root, "worktree", "add", "--detach", "--force", str(path), sha)
        if added.returncode != 0:
            remove()
            raise GitError(f"cannot check out {short(sha)}: {added.stderr.strip()}")
        try:
            yield path
        finally:
            remove()


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


def synth_plans(
    project: Path, stacks: Sequence[str], *, virtualenv: Path | None = None
) -> dict[str, PlanOutcome]:
    """Plan every stack with the code and stack files under ``project``, in a subprocess
    (on ``virtualenv``'s interpreter, activated, when given; else on this one)."""
    with interrupt.temporary_directory("mlstack-plans-") as out_dir:
        return _synth_plans(project, stacks, out_dir, virtualenv)


def _synth_plans(
    project: Path, stacks: Sequence[str], out_dir: Path, virtualenv: Path | None
) -> dict[str, PlanOutcome]:
    base: Mapping[str, str] = os.environ
    python = sys.executable
    if virtualenv is not None:
        from mlstack.delivery.environments import activated

        python = str(virtualenv / "bin" / "python")
        if not Path(python).is_file():
            reason = f"{virtualenv} is not a virtualenv (no bin/python)"
            return {s: PlanOutcome(None, f"the synth could not run: {reason}") for s in stacks}
        base = activated(os.environ, virtualenv)
    env = {
        **base,
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
    if jobs:
        outcomes.update(_run_driver(project, jobs, env, python))
    return {stack: outcomes[stack] for stack in stacks}


def _run_driver(
    project: Path, jobs: list[tuple[str, str]], env: Mapping[str, str], python: str
) -> dict[str, PlanOutcome]:
    command = [python, "-c", _DRIVER, json.dumps(jobs), str(project)]
    try:
        done = interrupt.run(
            command, cwd=project, env=dict(env), text=True, timeout=SYNTH_TIMEOUT_S
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


def plans_at(
    root: Path, ref: str, stacks: Sequence[str], *, virtualenv: Path | None = None
) -> tuple[str, dict[str, PlanOutcome]]:
    """(SHA, plans) of ``stacks`` at ``ref`` of the repository holding project dir ``root``
    (synthesized on ``virtualenv``'s interpreter when given, see :func:`synth_plans`)."""
    root = root.resolve()
    sha = resolve_ref(root, ref)
    relative = root.relative_to(repo_toplevel(root))
    with temporary_worktree(root, sha) as tree:
        return sha, synth_plans(tree / relative, stacks, virtualenv=virtualenv)


NOT_CODE = re.compile(r"^(Pulumi\.[^/]+\.yaml|docs/.*|[^/]*\.md|tests/.*|\.github/.*)$")
"""Project paths the synth never reads as code: stack files, docs, tests, workflows."""


def runs_this_code(root: Path) -> bool:
    """Whether ``root`` is the project whose code this process imported."""
    from stacks.config import PROJECT_ROOT

    return root.resolve() == PROJECT_ROOT.resolve()


def only_stack_files_changed(root: Path, sha: str) -> bool:
    """Whether the working tree under ``root`` differs from ``sha`` in stack files
    (and docs/tests) only, so ``sha``'s stack files can be synthesized by this code."""
    root = root.resolve()
    relative = root.relative_to(repo_toplevel(root))
    scope = str(relative) if str(relative) != "." else "."
    changed = _git(root, "diff", "--name-only", "--relative", sha, "--", scope)
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "--", scope)
    if changed.returncode != 0 or untracked.returncode != 0:
        return False
    paths = [p for p in (changed.stdout + untracked.stdout).splitlines() if p]
    return all(NOT_CODE.match(p) for p in paths)


def stack_files_at(root: Path, sha: str, stacks: Sequence[str], into: Path) -> None:
    """Write ``sha``'s ``Pulumi.<stack>.yaml`` files (those that exist) into ``into``."""
    relative = root.resolve().relative_to(repo_toplevel(root))
    for stack in stacks:
        path = (relative / f"Pulumi.{stack}.yaml").as_posix().removeprefix("./")
        shown = _git(root, "show", f"{sha}:{path}")
        if shown.returncode == 0:
            (into / f"Pulumi.{stack}.yaml").write_text(shown.stdout, encoding="utf-8")


def stack_exists_at(root: Path, sha: str, stack: str) -> bool:
    """Whether revision ``sha`` has ``Pulumi.<stack>.yaml`` in the project dir ``root``."""
    relative = root.resolve().relative_to(repo_toplevel(root))
    path = (relative / f"Pulumi.{stack}.yaml").as_posix().removeprefix("./")
    return _git(root, "cat-file", "-e", f"{sha}:{path}").returncode == 0


def same_code_as(root: Path, sha: str) -> bool:
    """Whether this process runs ``root``'s code and only stack files changed since ``sha``."""
    return runs_this_code(root) and only_stack_files_changed(root, sha)


def stack_file_plans(root: Path, sha: str, stacks: Sequence[str]) -> dict[str, PlanOutcome]:
    """Plans of ``sha``'s stack files synthesized by the code of this process (use only
    when :func:`same_code_as` holds: no worktree, no subprocess, warm imports)."""
    with interrupt.temporary_directory("mlstack-stackfiles-") as holder:
        stack_files_at(root, sha, stacks, holder)
        return plans_in_process(holder, stacks, same_code=True)


def plans_in_process(
    root: Path, stacks: Sequence[str], *, same_code: bool = False
) -> dict[str, PlanOutcome]:
    """Plans of the stack files under ``root`` with the code already imported.

    ``root`` must be the project this code comes from, or hold stack files meant
    for this same code (``same_code``); otherwise the synth runs in a subprocess.
    """
    from mlstack.synth import synth_config
    from stacks.config import ConfigError, load_config_file

    if not same_code and not runs_this_code(root):
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
