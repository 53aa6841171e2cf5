"""`mlstack coldstart`: per-model report, JSON, and the review section."""

from __future__ import annotations

import json
from dataclasses import replace

from mlstack import coldstart
from mlstack.cli import main
from stacks.config import load_config_file, parse_config
from tests.conftest import raw_stack_config, set_path


def test_text_report_lists_both_paths_per_model_and_numbers_the_sources(capsys) -> None:
    assert main(["coldstart", "dev"]) == 0
    out = capsys.readouterr().out
    for model in load_config_file("dev").models:
        assert f"  {model.name}: from zero " in out
    assert "from zero (new node, empty cache):" in out
    assert "warm node, cache hit:" in out
    assert "sources:\n  [1] " in out


def test_json_report_carries_phases_and_budget(capsys) -> None:
    assert main(["coldstart", "prod", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stack"] == "prod"
    for model in report["models"]:
        assert abs(model["coldSeconds"] - sum(p["seconds"] for p in model["cold"])) < 1
        assert model["withinBudget"] is (model["coldSeconds"] <= model["budgetSeconds"])
        assert all(p["sources"] for p in model["cold"] if p["seconds"] > 0)


def test_unknown_stack_is_a_usage_error(capsys) -> None:
    assert main(["coldstart", "nope"]) == 2


def test_review_section_is_empty_when_nothing_changed_and_shows_a_changed_budget() -> None:
    head = coldstart.model_startups(load_config_file("dev"))
    assert coldstart.review_section("dev", head, head) == ""
    changed = [replace(head[0], budget_seconds=head[0].budget_seconds + 60), *head[1:]]
    section = coldstart.review_section("dev", head, changed)
    assert head[0].model in section
    assert all(s.model not in section for s in head[1:])
    assert "removed" in coldstart.review_section("dev", head, head[1:])


def test_review_shows_models_whose_estimate_a_commit_changes(tmp_path) -> None:
    import shutil
    import subprocess

    from stacks.config import PROJECT_ROOT

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    shutil.copy(PROJECT_ROOT / "Pulumi.dev.yaml", tmp_path / "Pulumi.dev.yaml")
    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-qm", "base")
    base = git("rev-parse", "HEAD")
    assert coldstart.review_markdown(tmp_path, base, ["dev"]) == ""

    stack_file = tmp_path / "Pulumi.dev.yaml"
    text = stack_file.read_text()
    assert "modelSizeGib: 15 " in text
    stack_file.write_text(text.replace("modelSizeGib: 15 ", "modelSizeGib: 60 ", 1))
    section = coldstart.review_markdown(tmp_path, base, ["dev"])
    model = load_config_file("dev").models[0].name
    assert "#### Start-up estimates: dev" in section
    assert f"| {model} |" in section
    assert sum(line.startswith("| ") for line in section.splitlines()) == 2  # header + 1 row


def test_a_pod_scoped_cache_is_reported_as_a_refetch_on_warm_nodes() -> None:
    raw = set_path(raw_stack_config("dev"), "gpuPools[0].modelCache", {"scope": "pod"})
    startups = coldstart.model_startups(parse_config(raw, "Pulumi.dev.yaml"))
    text = coldstart.render_text("dev", startups)
    assert "warm node, image cached (per-pod model cache: weights fetched again):" in text
    assert "warm node, cache hit:" not in text
