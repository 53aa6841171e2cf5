"""No workflow can cancel a queued deploy or rollback (issue 27, item 6).

GitHub keeps at most one running and, by default (``queue: single``), one pending job per
concurrency group: "any existing pending job or workflow in the same concurrency group
will be canceled and the new queued job or workflow will take its place"; ``queue: max``
lets up to 100 wait in order instead, and ``cancel-in-progress: true`` also cancels the
running one (docs.github.com, "Control the concurrency of workflows and jobs"). So:

* a job that does not change a stack (drift, preview, ...) must not share a group with a
  deploy or rollback job (its arrival would cancel the pending deploy or rollback), and
* every group a deploy or rollback job is in must be ``queue: max`` with
  ``cancel-in-progress: false`` (a later deploy must not cancel a pending rollback either).

Group names are expanded the way GitHub evaluates them for each job: ``matrix.*`` from the
job's matrix, ``inputs.*`` from ``workflow_dispatch`` choices and booleans; any other
expression may be anything (``*``). Names compare case-insensitively, as GitHub does.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = ROOT / ".github" / "workflows"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
CHANGES_STACK = re.compile(r"\bpulumi\s+(up|destroy)\b|\bmlstack\s+rollback\b")


@dataclass(frozen=True)
class Membership:
    """One job's place in one concurrency group (job-level or its workflow's)."""

    where: str  # "<file>:<job>" or "<file>" for a workflow-level group
    names: tuple[str, ...]  # the group's possible names, lower case, "*" for unknown parts
    cancel_in_progress: object
    queue: object
    deploys: bool


def _parse(text: str) -> dict[str, Any]:
    workflow = yaml.safe_load(text)
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads `on` as True
    return workflow


def _spec(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"group": value} if isinstance(value, str) else dict(value)


def _choices(workflow: dict[str, Any]) -> dict[str, list[str]]:
    """``inputs.<name>`` -> every value a ``workflow_dispatch`` choice or boolean can take."""
    on = workflow.get("on") or {}
    dispatch = (on.get("workflow_dispatch") or {}) if isinstance(on, dict) else {}
    found: dict[str, list[str]] = {}
    for name, spec in (dispatch.get("inputs") or {}).items():
        if spec.get("type") == "choice":
            found[f"inputs.{name}"] = [str(o) for o in spec["options"]]
        elif spec.get("type") == "boolean":
            found[f"inputs.{name}"] = ["true", "false"]
    return found


def _matrix_rows(job: dict[str, Any]) -> list[dict[str, str]]:
    matrix = (job.get("strategy") or {}).get("matrix") or {}
    if not isinstance(matrix, dict):
        return [{}]
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    include = list(matrix.get("include") or [])
    rows = [
        dict(zip(axes, combo, strict=True))
        for combo in itertools.product(*(v if isinstance(v, list) else [v] for v in axes.values()))
    ]
    rows = [*rows, *include] if axes else include or [{}]
    return [{f"matrix.{k}": str(v) for k, v in row.items()} for row in rows]


def expand(group: str, values: list[dict[str, str]]) -> tuple[str, ...]:
    """Every name ``group`` can evaluate to, given the known values of each row."""
    names = {
        EXPRESSION.sub(lambda m, row=row: row.get(m.group(1), "*"), group).lower() for row in values
    }
    return tuple(sorted(names))


def _changes_stack(job: dict[str, Any]) -> bool:
    """A deploy or rollback job: assumes the deploy role or runs what writes the state."""
    for step in job.get("steps") or []:
        with_ = step.get("with") or {}
        if "MLSTACK_DEPLOY_ROLE" in str(with_.get("role-to-assume", "")):
            return True
        if str(step.get("uses", "")).startswith("pulumi/actions@") and with_.get("command") in (
            "up",
            "destroy",
        ):
            return True
        if CHANGES_STACK.search(str(step.get("run", ""))):
            return True
    return False


def memberships(files: dict[str, str]) -> list[Membership]:
    """Every (job, concurrency group) pair of the workflows ``{file name: text}``."""
    found: list[Membership] = []
    for name, text in sorted(files.items()):
        workflow = _parse(text)
        choices = _choices(workflow)
        choice_rows = [
            dict(zip(choices, combo, strict=True)) for combo in itertools.product(*choices.values())
        ]
        jobs = workflow.get("jobs") or {}
        deploys = {job_id: _changes_stack(job) for job_id, job in jobs.items()}
        run_level = _spec(workflow.get("concurrency"))
        if run_level is not None:
            found.append(
                Membership(
                    name,
                    expand(str(run_level["group"]), choice_rows),
                    run_level.get("cancel-in-progress", False),
                    run_level.get("queue", "single"),
                    any(deploys.values()),
                )
            )
        for job_id, job in jobs.items():
            spec = _spec(job.get("concurrency"))
            if spec is None:
                continue
            rows = [{**c, **m} for c in choice_rows for m in _matrix_rows(job)]
            found.append(
                Membership(
                    f"{name}:{job_id}",
                    expand(str(spec["group"]), rows),
                    spec.get("cancel-in-progress", False),
                    spec.get("queue", "single"),
                    deploys[job_id],
                )
            )
    return found


def _overlap(a: str, b: str) -> bool:
    """Whether two group names (``*`` = any text) can be the same string."""
    return fnmatch.fnmatchcase(a.replace("*", ""), b) or fnmatch.fnmatchcase(b.replace("*", ""), a)


def cancellation_problems(files: dict[str, str]) -> list[str]:
    """Ways a queued deploy or rollback of these workflows can be canceled."""
    members = memberships(files)
    deploy_members = [m for m in members if m.deploys]
    problems: list[str] = []
    for member in deploy_members:
        if member.cancel_in_progress is not False:
            problems.append(
                f"{member.where}: group {list(member.names)} has cancel-in-progress "
                f"{member.cancel_in_progress!r}: a deploy or rollback group needs false"
            )
        if member.queue != "max":
            problems.append(
                f"{member.where}: group {list(member.names)} has queue {member.queue!r}: a "
                "newer job cancels the pending deploy or rollback; allowed: queue: max"
            )
    for other in members:
        if other.deploys:
            continue
        for member in deploy_members:
            shared = sorted(
                {a for a in other.names for b in member.names if _overlap(a, b)}
                | {b for a in other.names for b in member.names if _overlap(a, b)}
            )
            if shared:
                problems.append(
                    f"{other.where} shares concurrency group {shared} with the deploy/rollback "
                    f"job {member.where}: queuing it cancels a pending deploy or rollback"
                )
    return problems


def _repository_workflows() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(WORKFLOW_DIR.glob("*.yml"))}


def test_no_workflow_can_cancel_a_queued_deploy_or_rollback() -> None:
    assert cancellation_problems(_repository_workflows()) == []


def test_deploy_and_rollback_jobs_are_found_in_the_repository_workflows() -> None:
    """The check above is only as good as its classification of jobs."""
    deploys = {m.where for m in memberships(_repository_workflows()) if m.deploys}
    assert deploys == {"deploy.yml:dev", "deploy.yml:prod", "rollback.yml:rollback"}
    names = {n for m in memberships(_repository_workflows()) if m.deploys for n in m.names}
    assert names == {"pulumi-dev", "pulumi-prod"}


DEPLOY = """\
name: deploy
on:
  push:
    branches: [main]
jobs:
  prod:
    runs-on: ubuntu-24.04
    concurrency:
      group: pulumi-prod
      cancel-in-progress: false
      queue: max
    steps:
      - run: pulumi up --stack prod --yes
"""

ROLLBACK = """\
name: rollback
on:
  workflow_dispatch:
    inputs:
      stack:
        type: choice
        options: [dev, prod]
jobs:
  rollback:
    runs-on: ubuntu-24.04
    concurrency:
      group: pulumi-${{ inputs.stack }}
      cancel-in-progress: false
      queue: max
    steps:
      - run: mlstack rollback "${{ inputs.stack }}" --to last-good --yes
"""

DRIFT_IN_THE_QUEUE = """\
name: drift
on:
  schedule:
    - cron: "17 6 * * *"
jobs:
  drift:
    runs-on: ubuntu-24.04
    strategy:
      matrix:
        include:
          - stack: dev
          - stack: prod
    concurrency:
      group: Pulumi-${{ matrix.stack }}
      cancel-in-progress: false
    steps:
      - run: pulumi refresh --stack "${{ matrix.stack }}" --preview-only
"""


def test_the_check_accepts_queued_deploys_and_rollbacks_alone() -> None:
    assert cancellation_problems({"deploy.yml": DEPLOY, "rollback.yml": ROLLBACK}) == []


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {"deploy.yml": DEPLOY, "drift.yml": DRIFT_IN_THE_QUEUE},
            "drift.yml:drift shares concurrency group ['pulumi-prod']",
            id="drift-in-the-deploy-queue-case-insensitive",
        ),
        pytest.param(
            {
                "deploy.yml": DEPLOY,
                "lint.yml": DRIFT_IN_THE_QUEUE.replace(
                    "Pulumi-${{ matrix.stack }}", "${{ github.workflow }}-prod"
                ),
            },
            "lint.yml:drift shares concurrency group",
            id="unknown-expression-may-name-the-deploy-group",
        ),
        pytest.param(
            {"deploy.yml": DEPLOY.replace("      queue: max\n", "")},
            "deploy.yml:prod: group ['pulumi-prod'] has queue 'single'",
            id="deploy-without-queue-max",
        ),
        pytest.param(
            {
                "rollback.yml": ROLLBACK.replace(
                    "cancel-in-progress: false", "cancel-in-progress: true"
                )
            },
            "rollback.yml:rollback: group ['pulumi-dev', 'pulumi-prod'] has cancel-in-progress",
            id="rollback-cancels-in-progress",
        ),
        pytest.param(
            {
                "deploy.yml": "concurrency: pulumi-prod\n"
                + DEPLOY.replace(
                    "    concurrency:\n      group: pulumi-prod\n"
                    "      cancel-in-progress: false\n      queue: max\n",
                    "",
                )
            },
            "deploy.yml: group ['pulumi-prod'] has queue 'single'",
            id="workflow-level-group-of-a-deploy",
        ),
    ],
)
def test_the_check_flags_every_way_a_deploy_can_be_canceled(
    files: dict[str, str], expected: str
) -> None:
    problems = cancellation_problems(files)
    assert any(p.startswith(expected) for p in problems), problems
