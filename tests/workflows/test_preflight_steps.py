"""deploy.yml and rollback.yml run ``mlstack preflight`` with the job's AWS credentials and
before anything changes, and a FAIL stops the job."""

from __future__ import annotations

from typing import Any

import pytest

from tests.workflows.test_workflows import load


def _index(steps: list[dict[str, Any]], predicate: Any) -> int:
    return next(i for i, step in enumerate(steps) if predicate(step))


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_deploy_runs_preflight_after_credentials_and_before_pulumi_up(stack: str) -> None:
    steps = load("deploy.yml")["jobs"][stack]["steps"]
    creds = _index(steps, lambda s: "configure-aws-credentials" in s.get("uses", ""))
    check = _index(steps, lambda s: "mlstack preflight" in s.get("run", ""))
    up = _index(steps, lambda s: str(s.get("uses", "")).startswith("pulumi/actions@"))
    assert creds < check < up
    step = steps[check]
    assert step["run"].split() == [".venv/bin/mlstack", "preflight", stack]
    assert "continue-on-error" not in step and "if" not in step


def test_rollback_preflights_the_target_commit_before_rolling_back() -> None:
    steps = load("rollback.yml")["jobs"]["rollback"]["steps"]
    creds = _index(steps, lambda s: "configure-aws-credentials" in s.get("uses", ""))
    check = _index(steps, lambda s: "mlstack preflight" in s.get("run", ""))
    roll = _index(steps, lambda s: s.get("name") == "Roll back")
    assert creds < check < roll
    step = steps[check]
    script = step["run"]
    assert "continue-on-error" not in step
    # The target commit as `mlstack rollback` itself resolves it (same refusals), then the
    # target's own stack file, from a worktree of that commit.
    assert '.venv/bin/mlstack rollback "$STACK" --to "$TARGET" --dry-run' in script
    assert '.venv/bin/mlstack preflight "$STACK" --root "$target"' in script
    assert 'git worktree add --detach "$target" "$commit"' in script
    # Inputs reach the script through the environment, never as template text.
    assert "${{" not in script
    assert step["env"]["TARGET"] == "${{ inputs.to }}"
    # A real rollback stops on FAIL; only a dry run goes on.
    assert 'exit "$status"' in script


def test_the_rollback_target_line_the_workflow_parses_is_what_rollback_prints() -> None:
    """rollback.yml greps `-> <12 hex> (target)` from the dry run's output."""
    import re

    from tests.workflows.test_workflows import ROOT

    source = (ROOT / "mlstack" / "delivery" / "rollback.py").read_text()
    assert "(deployed) -> {plan.target_commit[:12]} (target)" in source
    line = "rollback of stack dev: 0123456789ab (deployed) -> ba9876543210 (target)"
    assert re.search(r"-> [0-9a-f]{12} \(target\)", line)
