"""``mlstack rollback <stack> --to <version|commit>``: redeploy a prior program + config.

Pulumi has no rollback command; its answer is "check out the old code and run
``pulumi up``". This does exactly that, safely:

1. refuses a working tree with uncommitted changes (what would be deployed and
   what the history records must be commits);
2. resolves the target to a commit: a history *version* through its
   ``git.head``, or a commit-ish that this stack deployed successfully before;
   refuses unknown versions and commits, failed updates, updates that ran from a
   dirty checkout, and commits this stack never deployed (naming the stack that
   did, where one did);
3. checks the commit out in a temporary ``git worktree`` (removed afterwards);
4. builds (or reuses) the target's own environment from its own ``constraints.txt``
   (:mod:`mlstack.delivery.environments`), with pip, which the language host runs;
5. shows the offline ``mlstack diff`` from the commit deployed now to the target (the
   target synthesized by its own code on that environment, so a target needing its
   own dependencies is not refused for failing on today's) and refuses, dry run or
   not, a cluster downgrade, a deleted/replaced protected resource, or a retained
   resource recreated under the same physical name
   (:mod:`mlstack.delivery.rollback_safety`);
6. unless ``--dry-run``: asks for confirmation (skipped with ``--yes``), links the
   environment as the worktree's ``.venv``, checks ``git status --porcelain`` of the
   worktree is empty, and runs ``pulumi up`` of that worktree's program and
   ``Pulumi.<stack>.yaml`` with a message naming the rollback; the engine records the
   target commit as ``git.head`` of the new update.

``--dry-run`` stops after the diff and the safety checks, changes no stack (it builds
the target's environment into the local cache: the diff needs it) and needs no
Pulumi CLI when the target is a commit (or when ``--history-file`` supplies a saved
history).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mlstack.delivery.environments import EnvBuilder, spec_at
from mlstack.delivery.history import Update, load_history
from mlstack.delivery.verdicts import Ledger, Verdicts, last_good, verdicts_for
from mlstack.errors import MlstackError, UsageError

VERSION_PATTERN = re.compile(r"^\d{1,6}$")
"""``--to`` values that are history versions; anything else is a git commit-ish."""
LAST_GOOD = "last-good"
"""``--to last-good``: the newest update whose bake passed (:func:`verdicts.last_good`)."""


class RollbackRefusedError(MlstackError):
    """The rollback cannot go ahead; the message says why and what to do."""

    exit_code = 1


# --------------------------------------------------------------------------- git


def git(root: Path, *args: str, check: bool = True) -> str:
    """Run git in ``root``; stdout without trailing whitespace. Raises MlstackError."""
    result = subprocess.run(["git", *args], cwd=root, text=True, capture_output=True, check=False)
    if check and result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise MlstackError(f"git {' '.join(args)}: {message[-1] if message else 'failed'}")
    return result.stdout.rstrip()


def repo_root(path: Path) -> Path:
    """The top of the git work tree containing ``path``."""
    result = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"],
        cwd=path,
        text=True,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise UsageError(f"{path} is not inside a git repository; rollback works on commits")
    return Path(result.stdout.strip())


def dirty_paths(root: Path) -> list[str]:
    """Tracked changes and untracked, not ignored files (``git status --porcelain``)."""
    result = subprocess.run(
        ["git", "status", "--porcelain"], cwd=root, text=True, capture_output=True, check=True
    )
    # Each line is "XY path": two status columns (either may be a space), then the path.
    return [line[3:] for line in result.stdout.splitlines() if line.strip()]


def resolve_commit(root: Path, ref: str) -> str | None:
    """The full SHA of ``ref`` if it names a commit here, else None."""
    if ref.startswith("-"):
        return None
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
        cwd=root,
        text=True,
        capture_output=True,
        check=False,
    )
    return result.stdout.strip() or None if result.returncode == 0 else None


def file_at(root: Path, commit: str, path: str) -> bool:
    """Whether ``path`` exists in ``commit``."""
    result = subprocess.run(
        ["git", "cat-file", "-e", f"{commit}:{path}"],
        cwd=root,
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


@contextmanager
def temporary_worktree(root: Path, commit: str) -> Iterator[Path]:
    """``commit`` checked out (detached) in a temporary worktree, removed on exit."""
    parent = Path(tempfile.mkdtemp(prefix="mlstack-rollback-"))
    path = parent / parent.name  # unique: see gitrefs.temporary_worktree
    git(root, "worktree", "add", "--detach", "--quiet", str(path), commit)
    try:
        yield path
    finally:
        venv_link = path / ".venv"
        if venv_link.is_symlink():
            venv_link.unlink()  # never let a recursive removal follow it (the cached env)
        git(root, "worktree", "remove", "--force", str(path), check=False)
        git(root, "worktree", "prune", check=False)
        shutil.rmtree(parent, ignore_errors=True)


# --------------------------------------------------------------------------- resolving


@dataclass(frozen=True)
class RollbackPlan:
    """What the rollback will deploy, and what is deployed now."""

    stack: str
    target_commit: str
    target_version: int | None
    current_commit: str | None
    current_version: int | None
    notes: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        """The update message recorded in the stack history."""
        target = f"commit {self.target_commit[:12]}"
        if self.target_version is not None:
            target = f"version {self.target_version} ({target})"
        was = ""
        if self.current_version is not None:
            was = f", replacing version {self.current_version}"
            if self.current_commit:
                was += f" (commit {self.current_commit[:12]})"
        return f"mlstack rollback of stack {self.stack} to {target}{was}"


def current_deployment(history: Sequence[Update]) -> Update | None:
    """The newest successful update: what is deployed now."""
    return next((u for u in history if u.is_update and u.succeeded), None)


def _versions_hint(history: Sequence[Update]) -> str:
    versions = [u.version for u in history if u.is_update and u.succeeded and u.commit]
    return ", ".join(str(v) for v in versions[:10]) or "none"


def _check_update_target(stack: str, update: Update, root: Path) -> str:
    """The commit of a history entry the stack may be rolled back to."""
    where = f"version {update.version} of stack {stack}"
    if not update.is_update:
        raise RollbackRefusedError(f"{where} is a {update.kind}, not an update; pick an update")
    if not update.succeeded:
        raise RollbackRefusedError(
            f"{where} {update.result}; rolling back to a failed update is refused "
            f"(successful updates: see `mlstack history {stack}`)"
        )
    if not update.commit:
        raise RollbackRefusedError(f"{where} records no git commit (it ran outside a git checkout)")
    if update.dirty:
        raise RollbackRefusedError(
            f"{where} ran from a checkout with uncommitted changes; "
            f"commit {update.commit[:12]} does not reproduce it"
        )
    commit = resolve_commit(root, update.commit)
    if commit is None:
        raise RollbackRefusedError(
            f"{where} ran from commit {update.commit[:12]}, which is not in this repository "
            "(fetch it, e.g. `git fetch --unshallow`)"
        )
    return commit


def resolve_plan(
    stack: str,
    target: str,
    root: Path,
    history: Sequence[Update] | None,
    other_histories: Callable[[], Mapping[str, Sequence[Update]]] | None = None,
    *,
    verdicts: Verdicts | None = None,
    allow_unbaked: bool = False,
) -> RollbackPlan:
    """Turn ``--to`` into a commit and check every refusal rule.

    ``history`` is None only for a dry run without the CLI; then a commit target
    is checked against git alone and the plan says so in its notes. ``verdicts``
    (the bake ledger) is None when no ledger is configured: ``last-good`` is then
    refused, and explicit targets are not checked for a passed bake (noted).
    """
    notes: list[str] = []
    current = current_deployment(history) if history is not None else None
    if target == LAST_GOOD:
        if history is None or verdicts is None:
            raise UsageError(
                "--to last-good needs the stack history (Pulumi CLI or --history-file) and "
                "the bake ledger (--ledger, $MLSTACK_BAKE_LEDGER or an s3:// / file:// "
                "PULUMI_BACKEND_URL)"
            )
        good = last_good(history, verdicts)
        if good is None:
            raise RollbackRefusedError(
                f"stack {stack} has no earlier update whose bake passed; pick a version "
                f"explicitly (see `mlstack history {stack}`)"
            )
        target = str(good.version)
        notes.append(f"last good update of stack {stack}: version {good.version}")
    if VERSION_PATTERN.match(target):
        if history is None:
            raise UsageError(
                f"--to {target} is a history version; reading it needs the Pulumi CLI "
                "or --history-file"
            )
        version = int(target)
        update = next((u for u in history if u.version == version), None)
        if update is None:  # bad input: naming a version the stack never had
            raise UsageError(
                f"--to {target}: stack {stack} has no version {version}; "
                f"successful updates with a commit: {_versions_hint(history)}"
            )
        commit = _check_update_target(stack, update, root)
        target_version: int | None = version
    else:
        commit = resolve_commit(root, target)
        if commit is None:  # bad input: neither a version nor a commit
            known = (
                f"successful updates with a commit: {_versions_hint(history)}"
                if history is not None
                else "see `mlstack history` for the versions"
            )
            raise UsageError(
                f"--to {target!r} is not a commit in this repository nor a version of "
                f"stack {stack} (a number, 0 or more); {known}"
            )
        target_version = None
        if history is None:
            notes.append(
                "no stack history (dry run without the Pulumi CLI): not checked that "
                f"stack {stack} deployed this commit before"
            )
        else:
            deployed = [u for u in history if u.is_update and u.commit == commit]
            good = [u for u in deployed if u.succeeded and not u.dirty]
            if good:
                target_version = good[0].version
            elif deployed:
                raise RollbackRefusedError(
                    f"commit {commit[:12]} was deployed to stack {stack} only by failed or "
                    f"dirty updates (versions {', '.join(str(u.version) for u in deployed)})"
                )
            else:
                elsewhere = _deployed_elsewhere(commit, stack, other_histories)
                detail = f"; it was deployed to {elsewhere}" if elsewhere else ""
                raise RollbackRefusedError(
                    f"commit {commit[:12]} was never deployed to stack {stack}{detail}; "
                    f"roll back only to a state this stack ran (see `mlstack history {stack}`)"
                )
    if verdicts is None:
        notes.append("no bake ledger: not checked that the target passed a bake")
    elif target_version is not None:
        verdict = verdicts.of(target_version)
        if verdict == "failed":
            raise RollbackRefusedError(
                f"version {target_version} of stack {stack} failed its bake; rolling back to "
                "it is refused"
            )
        if verdict is None and not allow_unbaked:
            raise RollbackRefusedError(
                f"version {target_version} of stack {stack} was never baked (no passed bake "
                "record); pass --allow-unbaked to roll back to it anyway"
            )
        if verdict is None:
            notes.append(f"version {target_version} was never baked (--allow-unbaked)")
    if not file_at(root, commit, f"Pulumi.{stack}.yaml"):
        raise RollbackRefusedError(
            f"commit {commit[:12]} has no Pulumi.{stack}.yaml: it belongs to another stack"
        )
    failed_since = history is not None and any(
        u.is_update and not u.succeeded and current is not None and u.version > current.version
        for u in history
    )
    if current is not None and current.commit == commit and not failed_since:
        raise RollbackRefusedError(
            f"stack {stack} already runs commit {commit[:12]} (version {current.version})"
        )
    if history is not None and history and not history[0].succeeded:
        notes.append(
            f"the latest operation (version {history[0].version}, {history[0].kind}) "
            f"{history[0].result}: resources may be between states"
        )
    return RollbackPlan(
        stack=stack,
        target_commit=commit,
        target_version=target_version,
        current_commit=current.commit if current else None,
        current_version=current.version if current else None,
        notes=tuple(notes),
    )


def _deployed_elsewhere(
    commit: str,
    stack: str,
    other_histories: Callable[[], Mapping[str, Sequence[Update]]] | None,
) -> str:
    if other_histories is None:
        return ""
    try:
        histories = other_histories()
    except MlstackError:
        return ""
    found = [
        f"stack {name} (version {u.version})"
        for name, updates in sorted(histories.items())
        if name != stack
        for u in updates
        if u.is_update and u.commit == commit
    ]
    return ", ".join(found[:3])


# --------------------------------------------------------------------------- diff


@dataclass(frozen=True)
class RollbackDiff:
    """The change from the deployed commit to the target: text for people, and both
    offline plans for the safety checks (None where that side did not synthesize)."""

    text: str
    base_plan: Mapping[str, Any] | None
    head_plan: Mapping[str, Any] | None
    problem: str | None = None


class DiffFn(Protocol):
    """``(stack, base_commit, head_commit, root, color, *, head_env, base_env) ->
    RollbackDiff``."""

    def __call__(
        self,
        stack: str,
        base: str,
        head: str,
        root: Path,
        color: bool,
        *,
        head_env: Path | None = None,
        base_env: Callable[[], Path] | None = None,
    ) -> RollbackDiff: ...


def offline_diff(
    stack: str,
    base: str,
    head: str,
    root: Path,
    color: bool,
    *,
    head_env: Path | None = None,
    base_env: Callable[[], Path] | None = None,
) -> RollbackDiff:
    """The ``mlstack diff`` of ``stack`` from ``base`` to ``head`` (both commits), with
    both plans (each synthesized with its commit's code in a temporary worktree; ``head``
    on the virtualenv ``head_env`` when given). ``base`` is synthesized on this
    interpreter first; when that fails and ``base_env`` is given (it builds or reuses the
    deployed commit's own environment), again there: a stack that runs an older commit
    (an earlier rollback, a failed deploy) may need its own dependencies too."""
    from concurrent.futures import ThreadPoolExecutor

    from mlstack.review import diff as review_diff
    from mlstack.review import gitrefs

    with ThreadPoolExecutor(max_workers=2) as pool:
        base_job = pool.submit(gitrefs.plans_at, root, base, [stack])
        head_job = pool.submit(gitrefs.plans_at, root, head, [stack], virtualenv=head_env)
        head_outcome = head_job.result()[1][stack]
        base_outcome = base_job.result()[1][stack]
    if base_outcome.error and base_env is not None:
        base_outcome = gitrefs.plans_at(root, base, [stack], virtualenv=base_env())[1][stack]
    result = review_diff.diff_outcomes(
        stack, base_outcome, head_outcome, gitrefs.short(base), gitrefs.short(head)
    )
    problem = None
    if base_outcome.error or head_outcome.error:
        side = "deployed commit" if base_outcome.error else "target"
        problem = f"the {side} did not synthesize: {base_outcome.error or head_outcome.error}"
    return RollbackDiff(
        str(review_diff.render_text([result], color)),
        base_outcome.plan,
        head_outcome.plan,
        problem,
    )


def safety_check(shown: RollbackDiff, *, dry_run: bool, echo: Callable[[str], None]) -> None:
    """Refuse (both with and without ``--dry-run``) what :mod:`rollback_safety` finds.

    When a side did not synthesize the checks cannot run: a dry run warns, a real
    rollback refuses.
    """
    from mlstack.delivery.rollback_safety import check_rollback

    if shown.base_plan is None or shown.head_plan is None:
        reason = shown.problem or "a plan is missing"
        if dry_run:
            echo(f"warning: safety checks not run ({reason}); a real rollback would refuse")
            return
        raise RollbackRefusedError(f"safety checks cannot run ({reason}); nothing deployed")
    findings = check_rollback(shown.base_plan, shown.head_plan)
    for finding in findings:
        echo(f"refused: {finding.render()}")
    if findings:
        raise RollbackRefusedError(
            f"rollback refused before any change: {len(findings)} problem(s) "
            f"({', '.join(sorted({f.kind for f in findings}))}); nothing deployed"
        )
    echo("safety checks: no cluster downgrade, no protected deletion, no retained-name collision")


# --------------------------------------------------------------------------- deploy


def up_environment(worktree: Path, root: Path, base: Mapping[str, str]) -> dict[str, str]:
    """Environment for ``pulumi up`` in the worktree: its code first on ``PYTHONPATH``
    (the target's own environment has the dependencies only, not the project), and a
    relative ``file://`` backend resolved against the project root."""
    env: dict[str, str] = {}
    python_path = [str(worktree)]
    if base.get("PYTHONPATH"):
        python_path.append(base["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(python_path)
    backend = base.get("PULUMI_BACKEND_URL", "")
    if backend.startswith("file://") and not backend.startswith(("file:///", "file://~")):
        env["PULUMI_BACKEND_URL"] = "file://" + str((root / backend[len("file://") :]).resolve())
    return env


def link_virtualenv(worktree: Path, env_dir: Path) -> None:
    """Point the worktree's ``.venv`` (Pulumi.yaml's runtime virtualenv) at the target's
    own environment (:mod:`mlstack.delivery.environments`)."""
    target = worktree / ".venv"
    if target.is_symlink() or target.exists():
        raise RollbackRefusedError(
            f"{target} exists in the target's checkout; refusing to replace it"
        )
    target.symlink_to(env_dir.resolve(), target_is_directory=True)


VENV_EXCLUDE = "/.venv\n"
"""Ignore pattern for the link. ``.venv/`` (older commits' .gitignore) matches only a
directory, never a symlink, so the link is excluded through ``core.excludesFile``."""


def git_exclude_environment(exclude_file: Path, base: Mapping[str, str]) -> dict[str, str]:
    """Environment that makes every git run (ours, and the engine's ``git status
    --porcelain`` behind ``git.dirty``) ignore the worktree's ``.venv`` link."""
    exclude_file.write_text(VENV_EXCLUDE, encoding="utf-8")
    count = int(base.get("GIT_CONFIG_COUNT", "0") or "0")
    return {
        "GIT_CONFIG_COUNT": str(count + 1),
        f"GIT_CONFIG_KEY_{count}": "core.excludesFile",
        f"GIT_CONFIG_VALUE_{count}": str(exclude_file),
    }


def assert_clean_worktree(worktree: Path, env: Mapping[str, str]) -> None:
    """Refuse to run ``up`` from a checkout ``git status --porcelain`` calls dirty: the
    engine would record the update as ``git.dirty`` and it could never be a target."""
    result = subprocess.run(
        ["git", "status", "--porcelain"],
        cwd=worktree,
        env={**os.environ, **env},
        text=True,
        capture_output=True,
        check=False,
    )
    paths = [line[3:] for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0 or paths:
        raise RollbackRefusedError(
            "the target's checkout is not clean before `pulumi up` ("
            + (", ".join(paths[:5]) or result.stderr.strip())
            + "); the update would be recorded as dirty; nothing deployed"
        )


@dataclass(frozen=True)
class RollbackResult:
    plan: RollbackPlan
    diff: str
    deployed: bool
    environment: Path | None = None


def run_rollback(
    stack: str,
    target: str,
    root: Path,
    *,
    dry_run: bool,
    assume_yes: bool,
    history_file: Path | None,
    echo: Callable[[str], None],
    confirm: Callable[[str], bool],
    color: bool = False,
    diff: DiffFn | None = None,
    env_builder: EnvBuilder | None = None,
    history: Sequence[Update] | None = None,
    ledger: Ledger | None = None,
    allow_unbaked: bool = False,
) -> RollbackResult:
    """The whole rollback (see module docstring). ``echo``/``confirm`` talk to the user;
    ``diff`` renders the change (default :func:`offline_diff`); ``env_builder`` builds
    the target's environment (default from ``$MLSTACK_ENV_CACHE``/``$MLSTACK_ENV_PYTHON``);
    ``history`` skips reading it (the caller already has it)."""
    from mlstack.delivery.history import read_history_file
    from mlstack.delivery.pulumi_cli import PulumiCliMissingError, find_pulumi

    root = repo_root(root)
    dirty = dirty_paths(root)
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise RollbackRefusedError(
            f"the working tree has uncommitted changes ({shown}); commit or stash them first"
        )

    cli = None
    if not dry_run:
        cli = find_pulumi(f"mlstack rollback {stack}")
    updates: list[Update] | None
    if history is not None:
        updates = list(history)
    elif history_file is not None:
        updates = read_history_file(history_file)
    else:
        try:
            updates = load_history(stack, root)
        except PulumiCliMissingError:
            if not dry_run:
                raise
            updates = None

    def others() -> dict[str, list[Update]]:
        if history_file is not None or history is not None or (dry_run and updates is None):
            return {}
        names = [p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml")]
        return {name: load_history(name, root) for name in names if name != stack}

    verdicts = (
        verdicts_for(stack, updates, ledger.records(stack))
        if ledger is not None and updates is not None
        else None
    )
    if verdicts is not None:
        for problem in verdicts.mismatched:
            echo(f"note: ignored bake record: {problem}")
    plan = resolve_plan(
        stack, target, root, updates, others, verdicts=verdicts, allow_unbaked=allow_unbaked
    )
    for note in plan.notes:
        echo(f"note: {note}")
    builder = env_builder or EnvBuilder.from_environment()
    spec = spec_at(root, plan.target_commit)
    base = plan.current_commit or git(root, "rev-parse", "HEAD")
    if plan.current_commit is None:
        echo("note: no successful update in the history; diffing against HEAD")
    echo(f"rollback of stack {stack}: {base[:12]} (deployed) -> {plan.target_commit[:12]} (target)")
    # Before the diff: the target synthesizes for the safety checks on the environment
    # it will deploy with (its own constraints.txt), not on today's.
    echo(f"environment of the target (its own constraints.txt): {builder.path_for(spec)}")
    env_dir = builder.ensure(spec, echo)
    with temporary_worktree(root, plan.target_commit) as worktree:

        def deployed_env() -> Path:
            # Only when the deployed commit did not synthesize here: its own environment.
            deployed = spec_at(root, base)
            echo(f"environment of the deployed commit: {builder.path_for(deployed)}")
            return builder.ensure(deployed, echo)

        shown = (diff or offline_diff)(
            stack, base, plan.target_commit, root, color, head_env=env_dir, base_env=deployed_env
        )
        echo(shown.text)
        safety_check(shown, dry_run=dry_run, echo=echo)
        if dry_run:
            echo("dry run: nothing deployed")
            return RollbackResult(plan, shown.text, deployed=False, environment=env_dir)
        assert cli is not None
        if not assume_yes and not confirm(
            f"Deploy commit {plan.target_commit[:12]} to stack {stack} with pulumi up?"
        ):
            raise RollbackRefusedError("rollback cancelled; nothing deployed")
        link_virtualenv(worktree, env_dir)
        env = up_environment(worktree, root, os.environ)
        env |= git_exclude_environment(worktree.parent / "git-exclude", os.environ)
        assert_clean_worktree(worktree, env)
        cli.run(
            ["up", "--stack", stack, "--yes", "--message", plan.message],
            cwd=worktree,
            env=env,
            echo=echo,
        )
    echo(f"stack {stack} rolled back to commit {plan.target_commit[:12]}")
    return RollbackResult(plan, shown.text, deployed=True, environment=env_dir)


def describe(plan: RollbackPlan) -> dict[str, Any]:
    """The plan as JSON (for CI logs)."""
    return {
        "stack": plan.stack,
        "targetCommit": plan.target_commit,
        "targetVersion": plan.target_version,
        "currentCommit": plan.current_commit,
        "currentVersion": plan.current_version,
        "message": plan.message,
        "notes": list(plan.notes),
    }
