"""Each workflow's triggers, permissions, pinned actions and concurrency, and their
agreement with the stack files (the OIDC trust policies are built from those)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.delivery.ci_identity import DRIFT_WORKFLOW, SESSION_SECONDS
from stacks.config import load_config_file

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = ROOT / ".github" / "workflows"
STACKS = ("dev", "prod")
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)\s*(#.*)?$")


def load(name: str) -> dict[str, Any]:
    workflow = yaml.safe_load((WORKFLOW_DIR / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def all_workflows() -> list[str]:
    return sorted(p.name for p in WORKFLOW_DIR.glob("*.yml"))


def job_permissions() -> dict[tuple[str, str], dict[str, str]]:
    return {
        (name, job_id): job.get("permissions")
        for name in all_workflows()
        for job_id, job in load(name)["jobs"].items()
    }


# --------------------------------------------------------------------------- triggers


def test_triggers() -> None:
    default_branch = load_config_file("dev").delivery.default_branch
    assert load("preview.yml")["on"] == {"pull_request": {"branches": [default_branch]}}
    assert load("preview-comment.yml")["on"] == {
        "workflow_run": {"workflows": ["preview"], "types": ["completed"]}
    }
    assert load("deploy.yml")["on"] == {"push": {"branches": [default_branch]}}
    drift = load("drift.yml")["on"]
    # The drift role trusts only this workflow on the default branch: no other trigger.
    assert set(drift) == {"schedule"}
    assert len(drift["schedule"][0]["cron"].split()) == 5
    rollback = load("rollback.yml")["on"]
    assert set(rollback) == {"workflow_dispatch"}
    inputs = rollback["workflow_dispatch"]["inputs"]
    assert inputs["stack"]["type"] == "choice"
    assert inputs["stack"]["options"] == list(STACKS)
    assert inputs["to"] == {**inputs["to"], "type": "string", "required": True}
    assert inputs["dry-run"]["type"] == "boolean"


def test_the_workflow_run_trigger_names_the_preview_workflow() -> None:
    assert (
        load("preview.yml")["name"]
        in load("preview-comment.yml")["on"]["workflow_run"]["workflows"]
    )


@pytest.mark.parametrize("name", all_workflows())
def test_no_pull_request_target(name: str) -> None:
    assert "pull_request_target" not in load(name)["on"]


# --------------------------------------------------------------------------- permissions


@pytest.mark.parametrize("name", all_workflows())
def test_workflow_level_permissions_are_empty(name: str) -> None:
    assert load(name)["permissions"] == {}


def test_each_job_gets_exactly_what_it_needs() -> None:
    deploy = {"contents": "read", "id-token": "write"}
    assert job_permissions() == {
        ("deploy.yml", "dev"): deploy,
        ("deploy.yml", "prod"): deploy,
        ("rollback.yml", "rollback"): deploy,
        ("drift.yml", "drift"): {**deploy, "issues": "write"},
        ("preview.yml", "review"): {"contents": "read"},
        ("preview.yml", "pulumi-preview"): {**deploy, "pull-requests": "write"},
        ("preview-comment.yml", "comment"): {"actions": "read", "pull-requests": "write"},
        **{(name, "settings"): {"contents": "read"} for name in STACK_WORKFLOWS},
    }


def test_the_job_that_sees_fork_code_has_no_token_and_no_write() -> None:
    review = load("preview.yml")["jobs"]["review"]
    assert review["permissions"] == {"contents": "read"}
    assert "if" not in review  # runs for forks too, with nothing to leak
    preview = load("preview.yml")["jobs"]["pulumi-preview"]
    assert preview["if"] == "github.event.pull_request.head.repo.full_name == github.repository"


# --------------------------------------------------------------------------- pinned actions


def uses_lines() -> list[tuple[str, str, str]]:
    found = []
    for name in all_workflows():
        for line in (WORKFLOW_DIR / name).read_text().splitlines():
            match = USES_LINE.match(line)
            if match:
                found.append((name, match.group(1), match.group(2) or ""))
    return found


def test_every_action_is_pinned_to_a_full_commit_sha_with_its_version_noted() -> None:
    lines = uses_lines()
    assert len(lines) >= 20
    for name, ref, comment in lines:
        assert PINNED.match(ref), f"{name}: {ref} is not pinned to a commit SHA"
        assert re.match(r"^# v\d+\.\d+\.\d+$", comment), f"{name}: {ref} lacks a # vX.Y.Z note"


def test_one_sha_per_action_across_workflows() -> None:
    shas: dict[str, set[str]] = {}
    for _, ref, comment in uses_lines():
        action, sha = ref.split("@")
        shas.setdefault(action, set()).add(f"{sha} {comment}")
    assert {a: len(s) for a, s in shas.items() if len(s) != 1} == {}
    assert set(shas) == {
        "actions/checkout",
        "actions/setup-python",
        "actions/upload-artifact",
        "actions/download-artifact",
        "aws-actions/configure-aws-credentials",
        "pulumi/actions",
        "marocchino/sticky-pull-request-comment",
    }


def test_pulumi_cli_version_matches_the_pinned_sdk() -> None:
    constraints = (ROOT / "constraints.txt").read_text()
    sdk = re.search(r"^pulumi==(\S+)$", constraints, re.MULTILINE)
    assert sdk
    versions = {
        step["with"]["pulumi-version"]
        for name in all_workflows()
        for job in load(name)["jobs"].values()
        for step in job.get("steps", [])
        if str(step.get("uses", "")).startswith("pulumi/actions@")
    }
    assert versions == {sdk.group(1)}


# --------------------------------------------------------------------------- stacks, roles


def test_deploys_run_in_the_environments_the_deploy_role_trusts() -> None:
    jobs = load("deploy.yml")["jobs"]
    for stack in STACKS:
        delivery = load_config_file(stack).delivery
        assert jobs[stack]["environment"] in delivery.environments
        assert "MLSTACK_DEPLOY_ROLE" in str(jobs[stack]["steps"])
    assert jobs["prod"]["needs"] == ["settings", "dev"]
    rollback = load("rollback.yml")["jobs"]["rollback"]
    assert rollback["environment"] == "${{ inputs.stack }}"


def test_preview_jobs_have_no_environment_so_their_sub_is_pull_request() -> None:
    # With an environment, GitHub's `sub` would be environment:<name>, which the
    # preview role does not trust.
    assert "environment" not in load("preview.yml")["jobs"]["pulumi-preview"]
    assert "environment" not in load("drift.yml")["jobs"]["drift"]


def test_stack_regions_in_workflows_match_the_stack_files() -> None:
    regions = {stack: load_config_file(stack).region for stack in STACKS}
    for name, job_id in (("preview.yml", "pulumi-preview"), ("drift.yml", "drift")):
        job = load(name)["jobs"][job_id]
        matrix = {row["stack"]: row["region"] for row in job["strategy"]["matrix"]["include"]}
        assert matrix == regions
    deploy = load("deploy.yml")["jobs"]
    for stack in STACKS:
        creds = next(s for s in deploy[stack]["steps"] if "configure-aws" in s.get("uses", ""))
        assert creds["with"]["aws-region"] == regions[stack]


# --------------------------------------------------------------------------- concurrency


def test_deploys_and_rollbacks_share_one_queue_per_stack_and_never_cancel() -> None:
    deploy = load("deploy.yml")["jobs"]
    for stack in STACKS:
        assert deploy[stack]["concurrency"] == {
            "group": f"pulumi-{stack}",
            "cancel-in-progress": False,
            "queue": "max",
        }
    rollback = load("rollback.yml")["jobs"]["rollback"]["concurrency"]
    assert rollback == {
        "group": "pulumi-${{ inputs.stack }}",
        "cancel-in-progress": False,
        "queue": "max",
    }


def test_previews_are_grouped_per_stack_outside_the_deploy_queue() -> None:
    preview = load("preview.yml")["jobs"]["pulumi-preview"]["concurrency"]["group"]
    assert "${{ matrix.stack }}" in preview
    # A pending preview must never replace a pending deploy in the deploy queue.
    assert not preview.startswith("pulumi-")


def test_drift_is_grouped_per_stack_outside_the_deploy_queue() -> None:
    """A preview-only refresh takes no lock (tests/components/delivery/test_ci_identity.py):
    drift needs no place in the deploy queue, where it would cancel a pending deploy."""
    drift = load("drift.yml")["jobs"]["drift"]
    assert drift["concurrency"] == {
        "group": "drift-${{ matrix.stack }}",
        "cancel-in-progress": False,
    }
    assert {row["stack"] for row in drift["strategy"]["matrix"]["include"]} == set(STACKS)


STACK_WORKFLOWS = ("deploy.yml", "drift.yml", "preview.yml", "rollback.yml")


def test_every_job_with_aws_credentials_runs_on_its_stacks_runner() -> None:
    """12.5: prod's endpoint is CIDR-restricted; the runner is a per-stack setting."""
    expected = {
        ("deploy.yml", "dev"): "${{ fromJSON(needs.settings.outputs.stacks).dev.runsOn }}",
        ("deploy.yml", "prod"): "${{ fromJSON(needs.settings.outputs.stacks).prod.runsOn }}",
        ("rollback.yml", "rollback"): (
            "${{ fromJSON(needs.settings.outputs.stacks)[inputs.stack].runsOn }}"
        ),
        ("drift.yml", "drift"): (
            "${{ fromJSON(needs.settings.outputs.stacks)[matrix.stack].runsOn }}"
        ),
        ("preview.yml", "pulumi-preview"): (
            "${{ fromJSON(needs.settings.outputs.stacks)[matrix.stack].runsOn }}"
        ),
    }
    for (name, job_id), runs_on in expected.items():
        job = load(name)["jobs"][job_id]
        assert job["runs-on"] == runs_on, (name, job_id)
        assert "settings" in (job["needs"] if isinstance(job["needs"], list) else [job["needs"]])
    for name in STACK_WORKFLOWS:
        settings = load(name)["jobs"]["settings"]
        run = next(s["run"] for s in settings["steps"] if s.get("id") == "read")
        assert run == '.venv/bin/mlstack ci-settings dev prod --github-output "$GITHUB_OUTPUT"'
        assert settings["outputs"] == {"stacks": "${{ steps.read.outputs.stacks }}"}


def test_ci_settings_reports_each_stacks_runner(tmp_path: Path, capsys) -> None:
    import json

    from mlstack.cli import main

    out = tmp_path / "github_output"
    assert (
        main(["ci-settings", "dev", "prod", "--github-output", str(out), "--root", str(ROOT)]) == 0
    )
    [line] = out.read_text().splitlines()
    key, _, value = line.partition("=")
    settings = json.loads(value)
    assert key == "stacks"
    for stack in STACKS:
        runner = load_config_file(stack).delivery.runner
        assert settings[stack]["runsOn"] == runner.labels
    assert settings["prod"]["runsOn"][0] == "self-hosted"
    assert json.loads(capsys.readouterr().out) == settings


_ROLE_VARS = {"DEPLOY": "deploy", "DRIFT": "drift", "PREVIEW": "preview"}


def _credential_steps() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    found = []
    for name in all_workflows():
        for job_id, job in load(name)["jobs"].items():
            for step in job.get("steps", []):
                if "configure-aws-credentials" in str(step.get("uses", "")):
                    found.append((name, job_id, job, step))
    return found


def _role_kind(job: dict[str, Any], step: dict[str, Any]) -> str:
    text = str(step["with"]["role-to-assume"]) + str(job.get("strategy", ""))
    kinds = {kind for var, kind in _ROLE_VARS.items() if f"MLSTACK_{var}_ROLE" in text}
    assert len(kinds) == 1, text
    return kinds.pop()


def test_credentials_last_the_role_maximum_and_outlive_the_job() -> None:
    """The 1 h default of configure-aws-credentials expired mid-update (jobs ran 90 min)."""
    steps = _credential_steps()
    assert {(n, j) for n, j, _, _ in steps} == {
        ("deploy.yml", "dev"),
        ("deploy.yml", "prod"),
        ("rollback.yml", "rollback"),
        ("drift.yml", "drift"),
        ("preview.yml", "pulumi-preview"),
    }
    for name, job_id, job, step in steps:
        kind = _role_kind(job, step)
        duration = int(step["with"]["role-duration-seconds"])
        assert duration == SESSION_SECONDS[kind], (name, job_id)
        assert int(job["timeout-minutes"]) * 60 < duration, (name, job_id)


def test_drift_assumes_the_drift_role_and_previews_the_preview_role() -> None:
    drift = load("drift.yml")["jobs"]["drift"]["strategy"]["matrix"]["include"]
    assert {row["role"] for row in drift} == {
        "${{ vars.MLSTACK_DRIFT_ROLE_DEV }}",
        "${{ vars.MLSTACK_DRIFT_ROLE_PROD }}",
    }
    preview = load("preview.yml")["jobs"]["pulumi-preview"]["strategy"]["matrix"]["include"]
    assert all("MLSTACK_PREVIEW_ROLE_" in row["role"] for row in preview)


def test_the_drift_role_trusts_exactly_this_workflow_file() -> None:
    assert (WORKFLOW_DIR / "drift.yml").relative_to(ROOT).as_posix() == DRIFT_WORKFLOW


# --------------------------------------------------------------------------- commands


def test_deploys_record_the_commit_in_the_update_message() -> None:
    for job_id, job in load("deploy.yml")["jobs"].items():
        if job_id == "settings":
            continue
        [up] = [s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@")]
        assert up["with"]["command"] == "up"
        assert "${{ github.sha }}" in up["with"]["message"]


def test_preview_runs_diff_with_policy_pack_and_comments() -> None:
    job = load("preview.yml")["jobs"]["pulumi-preview"]
    [preview] = [s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert preview["with"]["command"] == "preview"
    assert preview["with"]["diff"] is True
    assert preview["with"]["comment-on-pr"] is True
    assert preview["with"]["policyPacks"] == "policy"


def test_offline_review_writes_the_report_the_comment_workflow_posts() -> None:
    steps = load("preview.yml")["jobs"]["review"]["steps"]
    run = next(s["run"] for s in steps if "mlstack review" in s.get("run", ""))
    assert '--base "$BASE_SHA" --out review/review.md' in run
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    comment_steps = load("preview-comment.yml")["jobs"]["comment"]["steps"]
    download = next(
        s for s in comment_steps if str(s.get("uses", "")).startswith("actions/download-artifact@")
    )
    sticky = next(s for s in comment_steps if "sticky-pull-request-comment" in s.get("uses", ""))
    assert download["with"]["name"] == upload["with"]["name"]
    assert sticky["with"]["path"] == f"{download['with']['path']}/review.md"
    assert upload["with"]["path"] == "review/"


def test_drift_uses_refresh_preview_only_expect_no_changes() -> None:
    steps = load("drift.yml")["jobs"]["drift"]["steps"]
    script = next(s["run"] for s in steps if s.get("id") == "refresh")
    assert "pulumi refresh" in script
    assert "--preview-only" in script
    assert "--expect-no-changes" in script
    issue = next(s for s in steps if "gh issue" in s.get("run", ""))
    assert issue["if"] == "steps.refresh.outputs.drift == 'true'"


def test_rollback_runs_mlstack_rollback_with_inputs_through_the_environment() -> None:
    steps = load("rollback.yml")["jobs"]["rollback"]["steps"]
    run = next(s for s in steps if "mlstack rollback" in s.get("run", ""))
    assert '"$STACK" --to "$TARGET"' in run["run"]
    assert "${{" not in run["run"]  # inputs reach the shell only as environment variables
    assert run["env"]["TARGET"] == "${{ inputs.to }}"
    checkout = next(s for s in steps if str(s.get("uses", "")).startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0


# --------------------------------------------------------------------------- guarded deploys


def test_deploy_bakes_then_rolls_back_to_last_good_bakes_that_and_pages_never_loops() -> None:
    jobs = load("deploy.yml")["jobs"]
    stacks = {"dev", "prod"}
    assert stacks <= set(jobs)  # plus the runner-settings job (mlstack ci-settings)
    for stack, job in jobs.items():
        if stack not in stacks:
            continue
        steps = job["steps"]
        ids = [s.get("id") for s in steps]
        order = ["baseline", "up", "bake", "rollback", "bake-rollback", "page"]
        assert [i for i in ids if i in order] == order, stack
        by_id = {s.get("id"): s for s in steps if s.get("id")}
        assert (
            f"mlstack bake {stack} --baseline-out build/bake-baseline.json"
            in (by_id["baseline"]["run"])
        )
        assert by_id["baseline"]["continue-on-error"] is True
        assert f"mlstack bake {stack} --record --kind deploy" in by_id["bake"]["run"]
        assert "--baseline build/bake-baseline.json" in by_id["bake"]["run"]
        assert "if" not in by_id["bake"]  # runs only when `up` succeeded
        assert f"mlstack rollback {stack} --to last-good --yes" in by_id["rollback"]["run"]
        assert by_id["bake-rollback"]["if"] == "failure() && steps.rollback.outcome == 'success'"
        assert "--kind rollback" in by_id["bake-rollback"]["run"]
        # Exactly one rollback per run: nothing after the rollback's bake rolls back again.
        after = steps[ids.index("bake-rollback") + 1 :]
        assert not any("mlstack rollback" in s.get("run", "") for s in after)
        assert (
            "exit 1" in next(s for s in after if "GITHUB_STEP_SUMMARY" in s.get("run", ""))["run"]
        )
        checkout = next(s for s in steps if str(s.get("uses", "")).startswith("actions/checkout@"))
        assert checkout["with"]["fetch-depth"] == 0  # the rollback needs the older commits


def _runs(condition: str, outcomes: dict[str, str]) -> bool:
    """Evaluate a step condition of deploy.yml for given step outcomes (``failure()`` is
    true: every case here follows a failed step). Supports what the conditions use:
    ``steps.<id>.outcome == '<value>'``, ``&&``, ``||`` and parentheses."""
    import re

    expression = condition.replace("failure()", "True").replace("&&", " and ")
    expression = expression.replace("||", " or ")
    expression = re.sub(
        r"steps\.([\w-]+)\.outcome == '(\w+)'",
        lambda m: str(outcomes.get(m.group(1), "skipped") == m.group(2)),
        expression,
    )
    assert set(re.sub(r"True|False|and|or|[()\s]", "", expression)) == set(), condition
    return bool(eval(expression))


@pytest.mark.parametrize("stack", STACKS)
def test_a_failed_update_rolls_back_and_pages(stack: str) -> None:
    """`pulumi up` failed (the bake is then skipped): roll back to last good and page."""
    steps = {s.get("id"): s for s in load("deploy.yml")["jobs"][stack]["steps"] if s.get("id")}
    failed_up = {"up": "failure", "bake": "skipped"}
    assert _runs(steps["rollback"]["if"], failed_up)
    assert _runs(steps["page"]["if"], failed_up | {"rollback": "success"})
    assert _runs(steps["page"]["if"], failed_up | {"rollback": "failure"})
    summary = next(
        s for s in load("deploy.yml")["jobs"][stack]["steps"] if s.get("name") == "Summary"
    )
    assert _runs(summary["if"], failed_up)
    # The stale lock is reported (the rollback's `pulumi up` names it, mlstack never retries).
    assert "currently locked by" in steps["page"]["run"]


@pytest.mark.parametrize("stack", STACKS)
def test_a_rollback_bake_that_exits_non_zero_pages_and_only_then_the_summary_says_paged(
    stack: str,
) -> None:
    steps = {s.get("id"): s for s in load("deploy.yml")["jobs"][stack]["steps"] if s.get("id")}
    bake_failed = {"up": "success", "bake": "failure", "rollback": "success"}
    # Exit 1 or exit 2 of the rollback's bake are both a failed step: both page.
    assert _runs(steps["page"]["if"], bake_failed | {"bake-rollback": "failure"})
    # A rollback that baked clean (or inconclusive, exit 0) does not page.
    assert not _runs(steps["page"]["if"], bake_failed | {"bake-rollback": "success"})
    summary = next(
        s for s in load("deploy.yml")["jobs"][stack]["steps"] if s.get("name") == "Summary"
    )
    assert summary["env"]["PAGED"] == "${{ steps.page.outcome }}"
    script = summary["run"]
    assert 'if [ "$PAGED" = "success" ]; then' in script
    paged_lines = [line for line in script.splitlines() if "aged" in line and "echo" in line]
    assert all(
        "PAGED" in line or "Not paged" in line or "Paged the" in line or "nobody" in line
        for line in paged_lines
    )
    assert "stopped and paged" not in script


@pytest.mark.parametrize("stack", STACKS)
def test_the_rollback_is_baked_with_the_target_commits_plan(stack: str) -> None:
    steps = {s.get("id"): s for s in load("deploy.yml")["jobs"][stack]["steps"] if s.get("id")}
    run = steps["bake-rollback"]["run"]
    assert '--plan-commit "$target"' in run
    assert r"-> [0-9a-f]{12} \(target\)" in run  # what `mlstack rollback` prints
    assert "--page-on-failure" not in run  # the Page step pages, once


def test_manual_rollback_is_baked_with_the_target_plan_and_pages_on_any_failed_bake() -> None:
    steps = load("rollback.yml")["jobs"]["rollback"]["steps"]
    names = [s.get("name") for s in steps]
    bake = steps[names.index("Bake the rollback")]
    assert names.index("Bake the rollback") > names.index("Roll back")
    assert bake["if"] == "${{ !inputs.dry-run }}"
    assert '"$STACK" --record --kind rollback --plan-commit "$TARGET_COMMIT"' in bake["run"]
    target = next(s for s in steps if s.get("id") == "target")
    assert 'echo "commit=$commit" >> "$GITHUB_OUTPUT"' in target["run"]
    assert bake["env"]["TARGET_COMMIT"] == "${{ steps.target.outputs.commit }}"
    page = steps[names.index("Bake the rollback") + 1]
    assert "mlstack page" in page["run"]
    assert _runs(page["if"].removeprefix("${{ ").removesuffix(" }}"), {"bake": "failure"})
    assert not _runs(page["if"].removeprefix("${{ ").removesuffix(" }}"), {"bake": "success"})


def test_prod_deploys_only_after_a_dev_bake_that_passed() -> None:
    """Review finding: an inconclusive dev bake (dev served nothing) exits 0, and prod
    deployed the commit anyway; an inconclusive bake is no evidence (issue 29 item 14)."""
    jobs = load("deploy.yml")["jobs"]
    assert jobs["prod"]["if"] == "needs.dev.outputs.bake-verdict == 'passed'"
    assert jobs["dev"]["outputs"]["bake-verdict"] == "${{ steps.bake.outputs.verdict }}"
    [bake] = [s for s in jobs["dev"]["steps"] if s.get("id") == "bake"]
    assert 'echo "verdict=${verdict}" >> "$GITHUB_OUTPUT"' in bake["run"]
    assert bake["run"].rstrip().endswith('exit "$status"')  # a failed bake still fails the job
