"""``mlstack rollback``: git for real (temporary repositories, worktrees), Pulumi stand-in.

The ``pulumi`` these tests run is the STAND-IN from conftest.py, not Pulumi (the CLI
cannot be installed here): it serves canned history and records what ``up`` was
asked to deploy (arguments, working directory, that directory's commit, stack file,
``.venv`` link and ``git status --porcelain``). Environment builds go to the
STAND-IN interpreter (``standin_python``), which records the venv/pip commands;
one test builds a real small virtualenv.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import mlstack.delivery.rollback as rollback_module
from mlstack.cli import main
from mlstack.delivery.environments import EnvBuilder, EnvironmentBuildError, spec_at
from mlstack.delivery.rollback import (
    RollbackRefusedError,
    RollbackResult,
    offline_diff,
    run_rollback,
)
from mlstack.delivery.rollback_safety import check_rollback
from tests.mlstack.delivery.conftest import (
    PYPROJECT,
    DeployRepo,
    StandInPulumi,
    StandInPython,
    history_entry,
    stack_yaml,
)


def plan_of(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"stack": "dev", "resources": list(resources)}


def resource(
    name: str, type_: str, inputs: dict[str, Any], *, protect: bool = False, retain: bool = False
) -> dict[str, Any]:
    return {
        "urn": f"urn:pulumi:dev::mlstack::{type_}::{name}",
        "type": type_,
        "name": name,
        "inputs": inputs,
        "protect": protect,
        "retainOnDelete": retain,
    }


CLUSTER = "aws:eks/cluster:Cluster"


class RecordingDiff:
    """Stands in for the offline resource diff; records which revisions it compared and
    answers with the plans the test set (by default two equal one-resource plans)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.head_envs: list[Path | None] = []
        same = plan_of(resource("c", CLUSTER, {"name": "c", "version": "1.33"}))
        self.base_plan: dict[str, Any] | None = same
        self.head_plan: dict[str, Any] | None = same

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
    ) -> rollback_module.RollbackDiff:
        self.calls.append((stack, base, head))
        self.head_envs.append(head_env)
        return rollback_module.RollbackDiff(
            f"DIFF {stack} {base[:7]}..{head[:7]}",
            self.base_plan,
            self.head_plan,
            None if self.base_plan and self.head_plan else "stand-in: no plan",
        )


@pytest.fixture
def diff(monkeypatch: pytest.MonkeyPatch) -> RecordingDiff:
    recorder = RecordingDiff()
    monkeypatch.setattr(rollback_module, "offline_diff", recorder)
    return recorder


@pytest.fixture
def dev_history(
    standin_pulumi: StandInPulumi, deploy_repo: DeployRepo, standin_python: StandInPython
) -> DeployRepo:
    """dev: v1 dev-1, v2 dev-2, v3 dev-3 FAILED, v4 refresh, v5 dev-4 (deployed now)."""
    c = deploy_repo.commits
    standin_pulumi.set_history(
        "dev",
        [
            history_entry(1, c["dev-1"]),
            history_entry(2, c["dev-2"]),
            history_entry(3, c["dev-3"], result="failed"),
            history_entry(4, c["dev-3"], kind="refresh"),
            history_entry(5, c["dev-4"]),
        ],
    )
    standin_pulumi.set_history("prod", [history_entry(1, c["prod-only"])])
    return deploy_repo


def _rollback(repo: DeployRepo, *args: str) -> int:
    return main(["rollback", "dev", *args, "--root", str(repo.root)])


def test_version_target_deploys_that_commit_and_config_from_a_temporary_worktree(
    dev_history: DeployRepo,
    standin_pulumi: StandInPulumi,
    diff: RecordingDiff,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = dev_history
    (repo.root / ".venv").mkdir()  # git-ignored, like the project's virtualenv

    assert _rollback(repo, "--to", "2", "--yes") == 0

    [up] = standin_pulumi.calls_of("up")
    target = repo.commits["dev-2"]
    assert up["head"] == target
    assert up["stackFile"] == stack_yaml(2)
    assert Path(up["cwd"]) != repo.root
    assert up["pythonpath"].split(":")[0] == up["cwd"]
    assert up["venvIsLink"] is True
    args = up["args"]
    assert args[:5] == ["up", "--stack", "dev", "--yes", "--message"]
    assert args[5] == (
        f"mlstack rollback of stack dev to version 2 (commit {target[:12]}), "
        f"replacing version 5 (commit {repo.commits['dev-4'][:12]})"
    )
    # The diff went from what is deployed now (v5) to the target, and was shown.
    assert diff.calls == [("dev", repo.commits["dev-4"], target)]
    out = capsys.readouterr().out
    assert f"DIFF dev {repo.commits['dev-4'][:7]}..{target[:7]}" in out
    # The worktree is gone again, and the project's virtualenv survived its removal.
    assert repo.worktrees() == [str(repo.root)]
    assert not Path(up["cwd"]).exists()
    assert (repo.root / ".venv").is_dir()


def test_commit_target_is_matched_to_its_successful_version(
    dev_history: DeployRepo, standin_pulumi: StandInPulumi, diff: RecordingDiff
) -> None:
    short = dev_history.commits["dev-1"][:9]
    assert _rollback(dev_history, "--to", short, "--yes") == 0
    [up] = standin_pulumi.calls_of("up")
    assert up["head"] == dev_history.commits["dev-1"]
    assert "to version 1 (commit" in up["args"][5]


@pytest.mark.parametrize(
    ("target", "expected", "code"),
    [
        ("3", "version 3 of stack dev failed; rolling back to a failed update is refused", 1),
        ("4", "version 4 of stack dev is a refresh, not an update", 1),
        ("42", "stack dev has no version 42; successful updates with a commit: 5, 2, 1", 2),
        ("deadbeef", "--to 'deadbeef' is not a commit in this repository", 2),
        ("5", "stack dev already runs commit", 1),
    ],
)
def test_refusals_deploy_nothing_and_leave_no_worktree(
    *,
    dev_history: DeployRepo,
    standin_pulumi: StandInPulumi,
    diff: RecordingDiff,
    capsys: pytest.CaptureFixture[str],
    target: str,
    expected: str,
    code: int,
) -> None:
    """An unknown target is bad input (exit 2); a known one refused is a failure (1)."""
    assert _rollback(dev_history, "--to", target, "--yes") == code
    err = capsys.readouterr().err
    assert expected in err
    assert standin_pulumi.calls_of("up") == []
    assert diff.calls == []
    assert dev_history.worktrees() == [str(dev_history.root)]


def test_commit_deployed_only_by_another_stack_is_refused_naming_that_stack(
    dev_history: DeployRepo,
    standin_pulumi: StandInPulumi,
    diff: RecordingDiff,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prod_commit = dev_history.commits["prod-only"]
    assert _rollback(dev_history, "--to", prod_commit, "--yes") == 1
    err = capsys.readouterr().err
    assert f"commit {prod_commit[:12]} was never deployed to stack dev" in err
    assert "it was deployed to stack prod (version 1)" in err
    assert standin_pulumi.calls_of("up") == []


def test_version_whose_commit_has_no_stack_file_belongs_to_another_stack(
    deploy_repo: DeployRepo,
    standin_pulumi: StandInPulumi,
    diff: RecordingDiff,
    capsys: pytest.CaptureFixture[str],
) -> None:
    c = deploy_repo.commits
    standin_pulumi.set_history(
        "dev", [history_entry(1, c["prod-only"]), history_entry(2, c["dev-4"])]
    )
    assert _rollback(deploy_repo, "--to", "1", "--yes") == 1
    assert "has no Pulumi.dev.yaml: it belongs to another stack" in capsys.readouterr().err


def test_update_from_a_dirty_checkout_or_outside_git_is_refused(
    deploy_repo: DeployRepo,
    standin_pulumi: StandInPulumi,
    diff: RecordingDiff,
    capsys: pytest.CaptureFixture[str],
) -> None:
    c = deploy_repo.commits
    standin_pulumi.set_history(
        "dev",
        [
            history_entry(1, c["dev-1"], dirty=True),
            history_entry(2, None),
            history_entry(3, "f" * 40),
            history_entry(4, c["dev-4"]),
        ],
    )
    assert _rollback(deploy_repo, "--to", "1", "--yes") == 1
    assert "ran from a checkout with uncommitted changes" in capsys.readouterr().err
    assert _rollback(deploy_repo, "--to", "2", "--yes") == 1
    assert "records no git commit" in capsys.readouterr().err
    assert _rollback(deploy_repo, "--to", "3", "--yes") == 1
    assert "which is not in this repository" in capsys.readouterr().err
    assert standin_pulumi.calls_of("up") == []


@pytest.mark.parametrize("change", ["modified", "untracked"])
def test_dirty_working_tree_is_refused_before_anything_runs(
    dev_history: DeployRepo,
    standin_pulumi: StandInPulumi,
    diff: RecordingDiff,
    capsys: pytest.CaptureFixture[str],
    change: str,
) -> None:
    if change == "modified":
        (dev_history.root / "Pulumi.dev.yaml").write_text(stack_yaml(99))
        expected = "Pulumi.dev.yaml"
    else:
        (dev_history.root / "notes.txt").write_text("scratch")
        expected = "notes.txt"
    assert _rollback(dev_history, "--to", "2", "--yes") == 1
    err = capsys.readouterr().err
    assert "the working tree has uncommitted changes" in err
    assert expected in err
    assert standin_pulumi.calls() == []


def test_dry_run_without_cli_shows_the_diff_and_deploys_nothing(
    deploy_repo: DeployRepo,
    no_pulumi: None,
    standin_python: StandInPython,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The real default diff (no stand-in diff): it must run without any Pulumi CLI.
    code = main(
        [
            "rollback",
            "dev",
            "--to",
            deploy_repo.commits["dev-1"],
            "--dry-run",
            "--root",
            str(deploy_repo.root),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "not checked that stack dev deployed this commit before" in out
    assert "diffing against HEAD" in out
    assert "dry run: nothing deployed" in out
    # The toy stack files do not synthesize: the safety checks say they did not run.
    assert "warning: safety checks not run (the deployed commit did not synthesize" in out
    assert deploy_repo.worktrees() == [str(deploy_repo.root)]
    # What a dry run writes: the target's environment, into the local cache (the target is
    # synthesized there for the diff), then, as the deployed commit did not synthesize on
    # this interpreter, the deployed commit's own environment (tried there too).
    calls = standin_python.calls()
    assert len(calls) == 4 and "environment of the deployed commit" in out
    venv_call, pip_call = calls[:2]
    assert venv_call["argv"][:2] == ["-m", "venv"]
    assert Path(venv_call["argv"][-1]).parent == standin_python.cache
    assert pip_call["constraints"] == "pulumi==3.100.0\n"  # dev-1's own


def test_dry_run_with_version_needs_cli_or_history_file(
    *,
    deploy_repo: DeployRepo,
    no_pulumi: None,
    standin_python: StandInPython,
    diff: RecordingDiff,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _rollback(deploy_repo, "--to", "1", "--dry-run") == 2
    assert "needs the Pulumi CLI or --history-file" in capsys.readouterr().err

    saved = tmp_path / "dev-history.json"
    c = deploy_repo.commits
    saved.write_text(json.dumps([history_entry(1, c["dev-1"]), history_entry(2, c["dev-4"])]))
    code = _rollback(deploy_repo, "--to", "1", "--dry-run", "--history-file", str(saved))
    assert code == 0
    assert diff.calls == [("dev", c["dev-4"], c["dev-1"])]


def test_missing_cli_without_dry_run_is_one_line_exit_2(
    deploy_repo: DeployRepo,
    no_pulumi: None,
    standin_python: StandInPython,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _rollback(deploy_repo, "--to", "1", "--yes") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "mlstack rollback dev needs the Pulumi CLI" in err


def test_declined_confirmation_deploys_nothing(
    dev_history: DeployRepo, standin_pulumi: StandInPulumi, diff: RecordingDiff
) -> None:
    questions: list[str] = []

    def decline(question: str) -> bool:
        questions.append(question)
        return False

    with pytest.raises(RollbackRefusedError, match="cancelled"):
        run_rollback(
            "dev",
            "2",
            dev_history.root,
            dry_run=False,
            assume_yes=False,
            history_file=None,
            echo=lambda _: None,
            confirm=decline,
        )
    assert questions == [
        f"Deploy commit {dev_history.commits['dev-2'][:12]} to stack dev with pulumi up?"
    ]
    assert standin_pulumi.calls_of("up") == []
    assert dev_history.worktrees() == [str(dev_history.root)]


def test_failed_up_is_reported_and_the_worktree_still_removed(
    dev_history: DeployRepo,
    standin_pulumi: StandInPulumi,
    diff: RecordingDiff,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("STANDIN_UP_EXIT", "255")
    assert _rollback(dev_history, "--to", "2", "--yes") == 1
    assert "`pulumi up --stack` exited with 255" in capsys.readouterr().err
    assert len(standin_pulumi.calls_of("up")) == 1
    assert dev_history.worktrees() == [str(dev_history.root)]


def test_a_locked_stack_is_reported_with_the_lock_and_not_retried(
    dev_history: DeployRepo,
    standin_pulumi: StandInPulumi,
    diff: RecordingDiff,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The STAND-IN `pulumi` (conftest.py, not Pulumi) refuses `up` with the DIY backend's
    lock message (pulumi/pulumi pkg/backend/diy/lock.go, checkForLock: the sentence, then
    `  <lock URL>: created by <user>@<host> (pid <n>) at <time>` per lock)."""
    lock = (
        "s3://mlstack-state/.pulumi/locks/organization/mlstack/dev/4f1c.json: created by "
        "runner@gha-17 (pid 2231) at 2026-12-01T10:00:00Z"
    )
    monkeypatch.setenv("STANDIN_UP_LOCKED", lock)
    assert _rollback(dev_history, "--to", "2", "--yes") == 1
    err = capsys.readouterr().err
    assert "`pulumi up --stack` refused: the stack is currently locked by 1 lock(s)." in err
    assert lock in err
    assert "Not retried." in err
    assert len(standin_pulumi.calls_of("up")) == 1
    assert dev_history.worktrees() == [str(dev_history.root)]


def test_relative_file_backend_is_resolved_against_the_project(
    dev_history: DeployRepo,
    standin_pulumi: StandInPulumi,
    diff: RecordingDiff,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = rollback_module.up_environment(
        Path("/tmp/wt"), dev_history.root, {"PULUMI_BACKEND_URL": "file://.pulumi-state"}
    )
    assert env["PULUMI_BACKEND_URL"] == f"file://{dev_history.root}/.pulumi-state"
    absolute = rollback_module.up_environment(
        Path("/tmp/wt"), dev_history.root, {"PULUMI_BACKEND_URL": "file:///srv/state"}
    )
    assert "PULUMI_BACKEND_URL" not in absolute


def test_offline_diff_between_two_commits(deploy_repo: DeployRepo) -> None:
    c = deploy_repo.commits
    shown = offline_diff("dev", c["dev-1"], c["dev-3"], deploy_repo.root, False)
    # The resource diff; this toy repository's stack files do not validate.
    assert shown.text.startswith("stack dev:")
    assert "base failed: invalid config in Pulumi.dev.yaml" in shown.text
    assert shown.base_plan is None
    assert shown.problem is not None
    assert "deployed commit did not synthesize" in shown.problem


# --------------------------------------------------------------------------- item 17: own env


def test_target_runs_on_its_own_environment_built_from_its_own_constraints(
    dev_history: DeployRepo,
    standin_pulumi: StandInPulumi,
    standin_python: StandInPython,
    diff: RecordingDiff,
) -> None:
    repo = dev_history
    (repo.root / ".venv").mkdir()  # today's environment: must NOT be what the target runs on

    assert _rollback(repo, "--to", "2", "--yes") == 0

    venv_call, pip_call = standin_python.calls()
    assert venv_call["argv"][:2] == ["-m", "venv"]
    # pip goes in with the dependencies: the language host runs `-m pip list` there.
    assert pip_call["argv"][-2:] == ["pip", "pulumi>=3,<4"]
    # dev-2's constraints (pulumi 3.100.0), not the working tree's (3.200.0 since dev-3).
    assert pip_call["constraints"] == "pulumi==3.100.0\n"
    assert pip_call["argv"][-1] == "pulumi>=3,<4"  # dev-2's [project].dependencies
    env_dir = Path(venv_call["argv"][-1])
    assert env_dir.parent == standin_python.cache
    [up] = standin_pulumi.calls_of("up")
    assert up["venvIsLink"] is True
    assert Path(up["venvTarget"]) == env_dir.resolve()
    assert Path(up["venvTarget"]) != (repo.root / ".venv").resolve()
    assert diff.head_envs == [env_dir]  # the safety diff synthesized the target there too
    assert (env_dir / ".mlstack-env.json").is_file()
    assert env_dir.is_dir()  # the worktree's removal did not follow the link


def test_environment_is_cached_by_the_constraints_hash(
    deploy_repo: DeployRepo, standin_python: StandInPython
) -> None:
    c = deploy_repo.commits
    builder = EnvBuilder.from_environment()
    first = builder.ensure(spec_at(deploy_repo.root, c["dev-1"]), lambda _: None)
    again = builder.ensure(spec_at(deploy_repo.root, c["dev-2"]), lambda _: None)
    newer = builder.ensure(spec_at(deploy_repo.root, c["dev-4"]), lambda _: None)
    assert first == again  # same constraints.txt: one build
    assert newer != first  # constraints changed in dev-3
    venv_builds = [call for call in standin_python.calls() if call["argv"][1] == "venv"]
    assert [Path(call["argv"][-1]) for call in venv_builds] == [first, newer]


def test_failed_environment_build_deploys_nothing_and_leaves_no_half_env(
    *,
    dev_history: DeployRepo,
    standin_pulumi: StandInPulumi,
    standin_python: StandInPython,
    diff: RecordingDiff,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("STANDIN_PIP_EXIT", "1")
    assert _rollback(dev_history, "--to", "2", "--yes") == 1
    assert "building the rollback environment failed at pip install" in capsys.readouterr().err
    assert standin_pulumi.calls_of("up") == []
    assert not any(p.is_dir() for p in standin_python.cache.iterdir())
    assert dev_history.worktrees() == [str(dev_history.root)]


def test_target_without_constraints_is_refused_naming_the_commit(
    deploy_repo: DeployRepo,
) -> None:
    deploy_repo.git("rm", "-q", "constraints.txt")
    deploy_repo.git("commit", "-q", "-m", "drop constraints")
    sha = deploy_repo.git("rev-parse", "HEAD")
    with pytest.raises(EnvironmentBuildError, match=rf"commit {sha[:12]} has no constraints.txt"):
        spec_at(deploy_repo.root, sha)


def _tiny_wheel(where: Path) -> Path:
    """A real, minimal wheel (no network: pip installs it with --no-index)."""
    wheel = where / "tinydep-1.0-py3-none-any.whl"
    files = {
        "tinydep/__init__.py": "VALUE = 42\n",
        "tinydep-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinydep\nVersion: 1.0\n",
        "tinydep-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        record = "".join(f"{name},,\n" for name in files) + "tinydep-1.0.dist-info/RECORD,,\n"
        archive.writestr("tinydep-1.0.dist-info/RECORD", record)
    return wheel


def _offline_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip without network: ``--no-index``, finding only ``tinydep`` and the pip wheel this
    Python bundles (``ensurepip``), which every environment build installs."""
    import ensurepip

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _tiny_wheel(wheels)
    # Debian's python3 strips ensurepip's wheels and ships them in python3-pip-whl
    # (/usr/share/python-wheels), which its python3-venv needs anyway.
    places = [Path(ensurepip.__file__).parent / "_bundled", Path("/usr/share/python-wheels")]
    bundled = sorted(w for place in places for w in place.glob("pip-*.whl"))
    if not bundled:
        pytest.skip("no pip wheel for this Python (ensurepip's or /usr/share/python-wheels)")
    shutil.copy(bundled[-1], wheels)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))


@pytest.mark.slow
def test_real_virtualenv_is_built_from_the_commit_constraints(
    deploy_repo: DeployRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real `python -m venv` + real pip (a local wheel, --no-index: no network)."""
    _offline_index(tmp_path, monkeypatch)
    sha = deploy_repo.commit(
        "tiny",
        {
            "constraints.txt": "tinydep==1.0\n",
            "pyproject.toml": PYPROJECT.replace('"pulumi>=3,<4"', '"tinydep"'),
        },
    )
    builder = EnvBuilder(cache_dir=tmp_path / "cache", python=sys.executable)
    env_dir = builder.ensure(spec_at(deploy_repo.root, sha), lambda _: None)
    out = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", "import tinydep, sys; print(tinydep.VALUE)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "42"
    assert builder.is_cached(spec_at(deploy_repo.root, sha))


# --------------------------------------------------------------------------- issue 27, item 7: pip


def _pulumi_yaml_virtualenv() -> str:
    """The ``runtime.options.virtualenv`` of the project's Pulumi.yaml (what the language
    host resolves against the project root)."""
    import yaml

    project = yaml.safe_load((Path(__file__).resolve().parents[3] / "Pulumi.yaml").read_text())
    return str(project["runtime"]["options"]["virtualenv"])


def _language_host_environment(virtualenv: Path) -> dict[str, str]:
    """The environment the language host gives commands in the virtualenv (pulumi/pulumi
    ``sdk/python/toolchain/toolchain.go``, ``ActivateVirtualEnv``): its bin first on
    PATH, ``VIRTUAL_ENV`` set, ``PYTHONHOME`` dropped."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = f"{virtualenv / 'bin'}:{os.environ.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(virtualenv)
    return env


@pytest.mark.slow
def test_language_host_pip_list_succeeds_in_the_rollback_environment(
    deploy_repo: DeployRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command Pulumi's Python language host runs before the program, run exactly so.

    pulumi/pulumi ``sdk/python/cmd/pulumi-language-python/main.go``: ``GetRequiredPackages``
    -> ``listPulumiPackageInfos`` -> ``tc.ListPackages(ctx, true)``; with the pip toolchain
    ``sdk/python/toolchain/pip.go`` ``(*pip).ListPackages`` runs
    ``<virtualenv>/bin/python -m pip list --format json`` (``ModuleCommand`` -> ``Command``,
    ``virtualenvPath`` = ``resolveVirtualEnvironmentPath(root, "<Pulumi.yaml virtualenv>")``)
    and returns the error when it fails, decoding stdout as ``[{name, version}]``. The
    environment is built for real (venv + pip, offline from a local wheel) and linked as
    the rollback links it.
    """
    _offline_index(tmp_path, monkeypatch)
    sha = deploy_repo.commit(
        "tiny",
        {
            "constraints.txt": "tinydep==1.0\n",
            "pyproject.toml": PYPROJECT.replace('"pulumi>=3,<4"', '"tinydep"'),
        },
    )
    builder = EnvBuilder(cache_dir=tmp_path / "cache", python=sys.executable)
    env_dir = builder.ensure(spec_at(deploy_repo.root, sha), lambda _: None)
    tree = tmp_path / "tree"
    deploy_repo.git("worktree", "add", "--detach", "-q", str(tree), sha)
    rollback_module.link_virtualenv(tree, env_dir)

    virtualenv = tree / _pulumi_yaml_virtualenv()  # relative: joined to the project root
    listed = subprocess.run(
        [str(virtualenv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
        cwd=tree,
        env=_language_host_environment(virtualenv),
        capture_output=True,
        text=True,
        check=False,
    )

    assert listed.returncode == 0, listed.stderr
    packages = {p["name"]: p["version"] for p in json.loads(listed.stdout)}
    assert packages["tinydep"] == "1.0"  # the commit's own pin
    assert "pip" in packages


def test_environment_cached_without_pip_is_rebuilt(
    deploy_repo: DeployRepo, standin_python: StandInPython
) -> None:
    """An environment an older mlstack built ``--without-pip`` (marker without a layout)
    is rebuilt, not reused: the language host would fail in it."""
    builder = EnvBuilder.from_environment()
    spec = spec_at(deploy_repo.root, deploy_repo.commits["dev-1"])
    old = builder.path_for(spec)
    (old / "bin").mkdir(parents=True)
    (old / ".mlstack-env.json").write_text(json.dumps({"commit": spec.commit}))
    assert not builder.is_cached(spec)

    assert builder.ensure(spec, lambda _: None) == old
    venv_call = standin_python.calls()[0]
    assert venv_call["argv"] == ["-m", "venv", "--without-pip", str(old)]
    assert "pip" in standin_python.calls()[1]["argv"]
    assert builder.is_cached(spec)


@pytest.mark.parametrize(
    ("printed", "expected"),
    [("", "printed no JSON"), ('{"pip": "23"}', "not a list of {name, version} objects")],
)
def test_environment_whose_pip_list_the_language_host_cannot_read_is_refused(
    printed: str, expected: str
) -> None:
    from mlstack.delivery.environments import check_pip_list

    with pytest.raises(EnvironmentBuildError, match=expected):
        check_pip_list(printed)
    assert check_pip_list('[{"name": "pip", "version": "23.2.1"}]') == [
        {"name": "pip", "version": "23.2.1"}
    ]


# --------------------------------------------------------------------------- issue 27, item 8


TOY_CLI = """import json


def main(argv):
    {imports}
    stack, out = argv[1], argv[argv.index("--out") + 1]
    topic = {{
        "urn": "urn:pulumi:dev::mlstack::aws:sns/topic:Topic::alerts",
        "type": "aws:sns/topic:Topic",
        "name": "alerts",
        "inputs": {{"name": "alerts", "displayName": {display}}},
        "protect": False,
        "retainOnDelete": False,
    }}
    plan = {{"schemaVersion": 1, "stack": stack, "resources": [topic], "outputs": {{}},
             "warnings": []}}
    with open(out, "w") as handle:
        json.dump(plan, handle)
    return 0
"""
"""A toy ``mlstack.cli`` (what the synth driver imports from the commit): writes a one-topic
plan; ``imports`` lets a commit need a package only its own environment has."""


def _roll_back_to_version_1(
    deploy_repo: DeployRepo, tmp_path: Path
) -> tuple[EnvBuilder, RollbackResult, list[str]]:
    """A real rollback of stack dev to version 1 (real environment builds in a cache under
    ``tmp_path``): (the builder, the result, what it said)."""
    builder = EnvBuilder(cache_dir=tmp_path / "cache", python=sys.executable)
    said: list[str] = []
    result = run_rollback(
        "dev",
        "1",
        deploy_repo.root,
        dry_run=False,
        assume_yes=True,
        history_file=None,
        echo=said.append,
        confirm=lambda _: True,
        env_builder=builder,
    )
    return builder, result, said


@pytest.mark.slow
def test_target_needing_its_own_environment_is_synthesized_there_and_rolled_back(
    *,
    deploy_repo: DeployRepo,
    standin_pulumi: StandInPulumi,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The target's program imports ``tinydep``, pinned in its constraints.txt and absent
    from today's interpreter; the safety diff synthesizes it on its own environment
    (``offline_diff`` -> ``gitrefs.plans_at(..., virtualenv=...)``), so the rollback is
    not refused. The real environment build and the real offline diff run; ``pulumi``
    is the STAND-IN."""
    _offline_index(tmp_path, monkeypatch)
    with pytest.raises(ImportError):
        __import__("tinydep")  # today's environment lacks it
    target = deploy_repo.commit(
        "needs-own-env",
        {
            "constraints.txt": "tinydep==1.0\n",
            "pyproject.toml": PYPROJECT.replace('"pulumi>=3,<4"', '"tinydep"'),
            "mlstack/__init__.py": "",
            "mlstack/cli.py": TOY_CLI.format(
                imports="import tinydep", display="f'v{tinydep.VALUE}'"
            ),
            "Pulumi.dev.yaml": stack_yaml(7),
        },
    )
    deployed = deploy_repo.commit(
        "deployed",
        {
            "constraints.txt": "pulumi==3.200.0\n",
            "mlstack/cli.py": TOY_CLI.format(imports="pass", display="'now'"),
            "Pulumi.dev.yaml": stack_yaml(8),
        },
    )
    standin_pulumi.set_history("dev", [history_entry(1, target), history_entry(2, deployed)])
    builder, result, said = _roll_back_to_version_1(deploy_repo, tmp_path)

    assert result.deployed
    assert "displayName" in result.diff and "v42" in result.diff  # the target's own synth
    assert "safety checks: no cluster downgrade" in "\n".join(said)
    [up] = standin_pulumi.calls_of("up")
    assert up["head"] == target
    assert Path(up["venvTarget"]) == builder.path_for(spec_at(deploy_repo.root, target))
    assert deploy_repo.worktrees() == [str(deploy_repo.root)]


def test_deployed_commit_needing_its_own_environment_is_synthesized_there_too(
    *,
    deploy_repo: DeployRepo,
    standin_pulumi: StandInPulumi,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Review finding: the stack runs an older commit (an earlier rollback deployed it) whose
    program imports ``tinydep``, absent from today's interpreter; a second rollback, further
    back, synthesizes that deployed commit on its own environment once today's interpreter
    cannot, instead of refusing every rollback away from it. Real environment builds, real
    offline diff; ``pulumi`` is the STAND-IN."""
    _offline_index(tmp_path, monkeypatch)
    own_env = {
        "constraints.txt": "tinydep==1.0\n",
        "pyproject.toml": PYPROJECT.replace('"pulumi>=3,<4"', '"tinydep"'),
        "mlstack/__init__.py": "",
    }
    target = deploy_repo.commit(
        "target-needs-own-env",
        {
            **own_env,
            "mlstack/cli.py": TOY_CLI.format(imports="import tinydep", display="'old'"),
            "Pulumi.dev.yaml": stack_yaml(7),
        },
    )
    deployed = deploy_repo.commit(
        "deployed-needs-own-env",
        {
            **own_env,
            "mlstack/cli.py": TOY_CLI.format(
                imports="import tinydep", display="f'v{tinydep.VALUE}'"
            ),
            "Pulumi.dev.yaml": stack_yaml(8),
        },
    )
    deploy_repo.commit(  # today's checkout: a later commit on today's dependencies
        "head",
        {
            "constraints.txt": "pulumi==3.200.0\n",
            "mlstack/cli.py": TOY_CLI.format(imports="pass", display="'head'"),
        },
    )
    standin_pulumi.set_history("dev", [history_entry(1, target), history_entry(2, deployed)])
    _, result, said = _roll_back_to_version_1(deploy_repo, tmp_path)

    assert result.deployed
    assert "environment of the deployed commit" in "\n".join(said)
    assert "safety checks: no cluster downgrade" in "\n".join(said)
    [up] = standin_pulumi.calls_of("up")
    assert up["head"] == target


def test_synth_on_a_directory_that_is_no_virtualenv_names_it(tmp_path: Path) -> None:
    from mlstack.review.gitrefs import synth_plans

    (tmp_path / "Pulumi.dev.yaml").write_text(stack_yaml(1))
    outcome = synth_plans(tmp_path, ["dev"], virtualenv=tmp_path / "no-env")["dev"]
    assert outcome.plan is None
    assert outcome.error == (
        f"the synth could not run: {tmp_path / 'no-env'} is not a virtualenv (no bin/python)"
    )


# --------------------------------------------------------------------------- item 18: clean


def test_project_gitignore_ignores_the_venv_symlink(tmp_path: Path) -> None:
    """`.venv/` matches only a directory; the project's pattern must match the link too."""
    project_ignore = Path(__file__).resolve().parents[3] / ".gitignore"
    repo = tmp_path / "r"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    shutil.copy(project_ignore, repo / ".gitignore")
    (tmp_path / "some-env").mkdir()
    (repo / ".venv").symlink_to(tmp_path / "some-env", target_is_directory=True)
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True
    )
    assert status.stdout.splitlines() == ["?? .gitignore"]


def test_engine_sees_a_clean_checkout_even_when_the_target_ignores_only_venv_dirs(
    dev_history: DeployRepo, standin_pulumi: StandInPulumi, diff: RecordingDiff
) -> None:
    # The fixture's commits carry the old `.venv/` pattern.
    assert (dev_history.root / ".gitignore").read_text() == ".venv/\n"
    assert _rollback(dev_history, "--to", "2", "--yes") == 0
    [up] = standin_pulumi.calls_of("up")
    assert up["venvIsLink"] is True
    assert up["porcelain"] == ""  # the engine's git.dirty check finds nothing


def test_dirty_target_checkout_is_refused_before_up(
    dev_history: DeployRepo, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    dev_history.git("worktree", "add", "--detach", "-q", str(tree), dev_history.commits["dev-2"])
    (tmp_path / "env").mkdir()
    rollback_module.link_virtualenv(tree, tmp_path / "env")
    # Without the exclusion the old `.venv/` pattern leaves the link untracked.
    with pytest.raises(RollbackRefusedError, match=r"not clean before `pulumi up` \(\.venv\)"):
        rollback_module.assert_clean_worktree(tree, {})
    env = rollback_module.git_exclude_environment(tmp_path / "exclude", {})
    rollback_module.assert_clean_worktree(tree, env)
    (tree / "stray.txt").write_text("x")
    with pytest.raises(RollbackRefusedError, match=r"stray\.txt"):
        rollback_module.assert_clean_worktree(tree, env)


# --------------------------------------------------------------------------- item 19: refusals


BUCKET = "aws:s3/bucket:Bucket"
DOWNGRADE = (
    plan_of(resource("c", CLUSTER, {"name": "c", "version": "1.33"})),
    plan_of(resource("c", CLUSTER, {"name": "c", "version": "1.32"})),
    "cluster-downgrade",
)
PROTECTED_DELETE = (
    plan_of(resource("key", "aws:kms/key:Key", {}, protect=True)),
    plan_of(),
    "protected",
)
RETAINED_RECREATE = (
    plan_of(resource("logs", BUCKET, {"bucket": "acme-logs"}, retain=True)),
    plan_of(resource("logs-v2", BUCKET, {"bucket": "acme-logs"})),
    "retained-name-collision",
)
RETAINED_REPLACE = (
    plan_of(resource("c", CLUSTER, {"name": "c", "roleArn": "a"}, retain=True)),
    plan_of(resource("c", CLUSTER, {"name": "c", "roleArn": "b"}, retain=True)),
    "retained-name-collision",
)


@pytest.mark.parametrize(
    ("base", "head", "kind"), [DOWNGRADE, PROTECTED_DELETE, RETAINED_RECREATE, RETAINED_REPLACE]
)
@pytest.mark.parametrize("dry_run", [True, False])
def test_unsafe_target_is_refused_before_anything_changes(
    *,
    dev_history: DeployRepo,
    standin_pulumi: StandInPulumi,
    standin_python: StandInPython,
    diff: RecordingDiff,
    capsys: pytest.CaptureFixture[str],
    base: dict[str, Any],
    head: dict[str, Any],
    kind: str,
    dry_run: bool,
) -> None:
    diff.base_plan, diff.head_plan = base, head
    args = ["--to", "2", "--dry-run" if dry_run else "--yes"]
    assert _rollback(dev_history, *args) == 1
    captured = capsys.readouterr()
    assert f"refused: {kind}:" in captured.out
    assert "rollback refused before any change" in captured.err
    assert standin_pulumi.calls_of("up") == []
    # Only the target's environment (for its synth) was built, into the cache.
    assert [c["argv"][:2] for c in standin_python.calls()] == [["-m", "venv"], ["-m", "pip"]]
    assert dev_history.worktrees() == [str(dev_history.root)]


def test_safe_changes_are_not_refused() -> None:
    base = plan_of(
        resource("c", CLUSTER, {"name": "c", "version": "1.32"}, protect=True, retain=True),
        resource("auto", BUCKET, {"bucketPrefix": "x"}, retain=True),
        resource("gone", "aws:sns/topic:Topic", {"name": "t"}),
    )
    head = plan_of(
        resource("c", CLUSTER, {"name": "c", "version": "1.33"}, protect=True, retain=True),
        resource("auto2", BUCKET, {"bucketPrefix": "x"}),
    )
    # Upgrade, auto-named retained bucket recreated (new random suffix), unprotected delete.
    assert check_rollback(base, head) == []


def test_unsynthesizable_side_warns_in_a_dry_run_and_refuses_a_real_rollback(
    dev_history: DeployRepo,
    standin_pulumi: StandInPulumi,
    diff: RecordingDiff,
    capsys: pytest.CaptureFixture[str],
) -> None:
    diff.head_plan = None
    assert _rollback(dev_history, "--to", "2", "--dry-run") == 0
    assert "warning: safety checks not run" in capsys.readouterr().out
    assert _rollback(dev_history, "--to", "2", "--yes") == 1
    assert "safety checks cannot run" in capsys.readouterr().err
    assert standin_pulumi.calls_of("up") == []


def test_refusals_on_the_real_prod_plan(prod_graph: Any) -> None:
    """The prod plan: its cluster, its protected and retained resources."""
    import copy

    base = json.loads(json.dumps(prod_graph.to_json()))
    assert check_rollback(base, copy.deepcopy(base)) == []
    cluster = next(r for r in base["resources"] if r["type"] == CLUSTER)
    assert cluster["protect"] and cluster["retainOnDelete"]

    older = copy.deepcopy(base)
    major, minor = cluster["inputs"]["version"].split(".")
    for r in older["resources"]:
        if r["urn"] == cluster["urn"]:
            r["inputs"]["version"] = f"{major}.{int(minor) - 1}"
    assert [f.kind for f in check_rollback(base, older)] == ["cluster-downgrade"]

    protected = next(r for r in base["resources"] if r["protect"] and r["type"] != CLUSTER)
    without = copy.deepcopy(base)
    without["resources"] = [r for r in without["resources"] if r["urn"] != protected["urn"]]
    kinds = {(f.kind, f.urn) for f in check_rollback(base, without)}
    assert ("protected", protected["urn"]) in kinds

    renamed = copy.deepcopy(base)  # same cluster under a new logical name: retained + same name
    for r in renamed["resources"]:
        if r["urn"] == cluster["urn"]:
            r["urn"] = cluster["urn"] + "-v2"
    kinds = {f.kind for f in check_rollback(base, renamed)}
    assert {"protected", "retained-name-collision"} <= kinds
