"""``diff_revisions`` and ``mlstack diff`` against a real repository with real commits.

Each revision is synthesized by its own code in a temporary worktree (a
subprocess per revision), so these tests take a few seconds each.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlstack.cli import main
from mlstack.review.diff import diff_revisions
from mlstack.review.gitrefs import (
    GitError,
    only_stack_files_changed,
    plans_at,
    resolve_ref,
    stack_file_plans,
    temporary_worktree,
)
from tests.mlstack.review.conftest import Repo, git

pytestmark = pytest.mark.slow


def _worktrees(repo: Repo) -> list[str]:
    return [line for line in repo.git("worktree", "list").splitlines() if line]


def test_diff_between_two_commits(repo: Repo) -> None:
    [result] = diff_revisions(["dev"], repo.first, repo.second, repo.root)
    assert result.ok
    assert result.base_ref == f"{repo.first} ({repo.first[:12]})"
    changes = {c.name: c for c in result.changes}
    nodes = changes["cluster-system-nodes"]
    assert nodes.action == "replace"
    paths = {(c.path, c.old, c.new, c.replaces) for c in nodes.changes}
    assert ("instanceTypes[0]", "m6i.large", "m6i.xlarge", True) in paths
    assert ("scalingConfig.maxSize", 3, 5, False) in paths
    assert set(changes) == {"cluster-system-nodes"}
    assert result.cost_base is not None and result.cost_head is not None
    assert result.cost_head.total_min > result.cost_base.total_min
    assert len(_worktrees(repo)) == 1  # the temporary worktrees are gone


def test_working_tree_against_a_commit_and_a_stack_new_in_the_working_tree(repo: Repo) -> None:
    dev = repo.root / "Pulumi.dev.yaml"
    staging = repo.root / "Pulumi.staging.yaml"
    original = dev.read_text()
    try:
        dev.write_text(original.replace("diskSizeGib: 50", "diskSizeGib: 80"))
        staging.write_text(original)
        dev_diff, staging_diff = diff_revisions(["dev", "staging"], "HEAD", None, repo.root)
    finally:
        dev.write_text(original)
        staging.unlink()
    assert dev_diff.head_ref == "working tree"
    [template] = [c for c in dev_diff.changes if c.name == "cluster-system-lt"]
    assert [(c.path, c.old, c.new) for c in template.changes] == [
        ("blockDeviceMappings[0].ebs.volumeSize", 50, 80)
    ]
    assert staging_diff.base_note == "Pulumi.staging.yaml does not exist here"
    created = [c for c in staging_diff.changes if c.action == "create" and c.custom]
    assert len(created) == staging_diff.head_resources
    assert {c.action for c in staging_diff.changes} == {"create"}
    assert len(created) > 40


def test_a_stack_failing_at_base_is_reported_and_head_still_shown(repo: Repo) -> None:
    [result] = diff_revisions(["dev"], "broken", "main", repo.root)
    assert result.base_error is not None
    assert "mlstack:cluster.systemNodeGroup.minSize" in result.base_error
    assert result.head_error is None
    assert result.head_resources is not None and result.head_resources > 40
    assert result.cost_head is not None


def test_cli_reports_a_stack_failing_at_head_and_exits_non_zero(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["diff", "dev", "--base", "main", "--against", "broken", "--format", "json"]
    code = main([*args, "--root", str(repo.root)])
    captured = capsys.readouterr()
    assert code == 1
    document = json.loads(captured.out)
    head = document["stacks"][0]["head"]
    assert "minSize" in head["error"]
    assert document["stacks"][0]["base"]["resources"] > 40
    assert "failed to synthesize" in captured.err


def test_unknown_ref_is_a_clear_usage_error(repo: Repo) -> None:
    with pytest.raises(GitError, match="unknown git ref 'no-such-branch'"):
        resolve_ref(repo.root, "no-such-branch")
    assert main(["diff", "dev", "--base", "no-such-branch", "--root", str(repo.root)]) == 2


def test_shallow_clone_missing_the_base_says_how_to_fix_it(repo: Repo, tmp_path: Path) -> None:
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo.root}", str(clone))
    with pytest.raises(GitError, match=r"shallow clone.*fetch-depth: 0"):
        resolve_ref(clone, repo.first)


def test_option_like_refs_are_refused(repo: Repo) -> None:
    with pytest.raises(GitError, match="invalid git ref"):
        resolve_ref(repo.root, "--all")


def test_only_stack_file_changes_are_told_apart_from_code_changes(repo: Repo) -> None:
    dev = repo.root / "Pulumi.dev.yaml"
    module = repo.root / "stacks" / "composition.py"
    extra = repo.root / "components" / "extra.py"
    original_dev, original_module = dev.read_text(), module.read_text()
    try:
        assert only_stack_files_changed(repo.root, repo.second)
        dev.write_text(original_dev.replace("diskSizeGib: 50", "diskSizeGib: 60"))
        assert only_stack_files_changed(repo.root, repo.second)
        assert only_stack_files_changed(repo.root, repo.first)  # first -> second: stack file only
        module.write_text(original_module + "\n# changed\n")
        assert not only_stack_files_changed(repo.root, repo.second)
        module.write_text(original_module)
        extra.write_text("X = 1\n")
        assert not only_stack_files_changed(repo.root, repo.second)
    finally:
        dev.write_text(original_dev)
        module.write_text(original_module)
        extra.unlink(missing_ok=True)


def test_in_process_base_plans_equal_the_worktree_subprocess_plans(repo: Repo) -> None:
    fast = stack_file_plans(repo.root, repo.first, ["dev", "staging"])
    _, slow = plans_at(repo.root, repo.first, ["dev"])
    assert fast["staging"].note == "Pulumi.staging.yaml does not exist here"
    fast_plan, slow_plan = fast["dev"].plan, slow["dev"].plan
    assert fast_plan is not None and slow_plan is not None
    assert fast_plan["resources"] == slow_plan["resources"]
    assert len(fast_plan["resources"]) > 40


def test_a_directory_outside_git_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="not inside a git repository"):
        resolve_ref(tmp_path, "main")


def test_a_temporary_worktree_left_locked_is_still_removed(tmp_path: Path) -> None:
    # A `git worktree add` stopped mid-way (SIGKILL after the grace period) leaves its
    # worktree locked "initializing"; `worktree remove --force` alone refuses it and
    # `worktree prune` skips it, so the repository would keep a stale entry.
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "commit", "-q", "--allow-empty", "-m", "first")
    sha = git(root, "rev-parse", "HEAD")
    with temporary_worktree(root, sha) as tree:
        git(root, "worktree", "lock", str(tree), "--reason", "initializing")
        holder = tree.parent
    assert not holder.exists()
    listed = git(root, "worktree", "list", "--porcelain").splitlines()
    assert [line for line in listed if line.startswith("worktree ")] == [f"worktree {root}"]
