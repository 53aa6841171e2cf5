"""``mlstack rollback``: git for real (temporary repositories, worktrees), Pulumi stand-in.

The ``pulumi`` these tests run is the STAND-IN from conftest.py, not Pulumi: it
serves canned history and records what ``up`` was asked to deploy (arguments,
working directory, that directory's commit and stack file).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import mlstack.delivery.rollback as rollback_module
from mlstack.cli import main
from mlstack.delivery.rollback import RollbackRefusedError, offline_diff, run_rollback
from tests.mlstack.delivery.conftest import DeployRepo, StandInPulumi, history_entry, stack_yaml


class RecordingDiff:
    """Stands in for the offline resource diff; records which revisions it compared."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, stack: str, base: str, head: str, root: Path, color: bool) -> str:
        self.calls.append((stack, base, head))
        return f"DIFF {stack} {base[:7]}..{head[:7]}"


@pytest.fixture
def diff(monkeypatch: pytest.MonkeyPatch) -> RecordingDiff:
    recorder = RecordingDiff()
    monkeypatch.setattr(rollback_module, "offline_diff", recorder)
    return recorder


@pytest.fixture
def dev_history(standin_pulumi: StandInPulumi, deploy_repo: DeployRepo) -> DeployRepo:
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
    ("target", "expected"),
    [
        ("3", "version 3 of stack dev failed; rolling back to a failed update is refused"),
        ("4", "version 4 of stack dev is a refresh, not an update"),
        ("42", "stack dev has no version 42; successful updates with a commit: 5, 2, 1"),
        ("deadbeef", "'deadbeef' is not a commit in this repository"),
        ("5", "stack dev already runs commit"),
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
) -> None:
    assert _rollback(dev_history, "--to", target, "--yes") == 1
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
    deploy_repo: DeployRepo, no_pulumi: None, capsys: pytest.CaptureFixture[str]
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
    assert deploy_repo.worktrees() == [str(deploy_repo.root)]


def test_dry_run_with_version_needs_cli_or_history_file(
    deploy_repo: DeployRepo,
    no_pulumi: None,
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
    deploy_repo: DeployRepo, no_pulumi: None, capsys: pytest.CaptureFixture[str]
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
    text = offline_diff("dev", c["dev-1"], c["dev-3"], deploy_repo.root, False)
    if importlib.util.find_spec("mlstack.review") is None:
        # Fallback until the review tooling is installed: changed files from git.
        assert "mlstack.review is not available" in text
        assert "Pulumi.dev.yaml" in text
        assert "stacks/__main__.py" in text
    else:  # the resource diff; this toy repository's stack files do not validate
        assert text.startswith("stack dev:")
        assert "base failed: invalid config in Pulumi.dev.yaml" in text
