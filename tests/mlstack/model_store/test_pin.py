"""``mlstack model pin``: one value changes in Pulumi.<stack>.yaml, comments and layout stay."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest

from stacks.config import PROJECT_ROOT, load_config_file
from stacks.stack_yaml import load_stack_yaml
from tests.mlstack.model_store.conftest import Run


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.prod.yaml"):
        shutil.copy(PROJECT_ROOT / name, tmp_path / name)
    return tmp_path


def _changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def _model(project: Path, stack: str, name: str) -> dict[str, object]:
    document = load_stack_yaml((project / f"Pulumi.{stack}.yaml").read_text())
    return next(m for m in document["config"]["mlstack:models"] if m["name"] == name)


def test_pin_changes_exactly_one_line(run: Run, project: Path) -> None:
    path = project / "Pulumi.dev.yaml"
    before = path.read_text()
    old = _model(project, "dev", "resnet50")["artifactVersion"]

    code, out, err = run("model", "pin", "dev", "resnet50", "v9", "--root", str(project))

    assert code == 0, err
    assert f"resnet50 artifactVersion {old} -> v9" in out
    changed = _changed_lines(before, path.read_text())
    assert len(changed) == 2
    assert changed[0].startswith("-") and f"artifactVersion: {old}" in changed[0]
    assert changed[1].startswith("+") and "artifactVersion: v9" in changed[1]
    assert load_config_file("dev", project).models[1].artifact_version == "v9"


def test_pin_keeps_quotes_and_quotes_number_like_versions(run: Run, project: Path) -> None:
    path = project / "Pulumi.prod.yaml"
    assert (
        run("model", "pin", "prod", "llama-3-8b-instruct", "2025-07-01", "--root", str(project))[0]
        == 0
    )
    assert run("model", "pin", "prod", "resnet50", "1.10", "--root", str(project))[0] == 0

    text = path.read_text()
    assert 'artifactVersion: "2025-07-01"' in text
    assert 'artifactVersion: "1.10"' in text
    versions = [m.artifact_version for m in load_config_file("prod", project).models]
    assert versions == ["2025-07-01", "1.10"]


@pytest.mark.parametrize("version", ["../v1", "v1/extra", ".hidden", "has space", "x" * 129])
def test_pin_to_a_version_the_schema_rejects_leaves_the_file_untouched(
    run: Run, project: Path, version: str
) -> None:
    path = project / "Pulumi.dev.yaml"
    before = path.read_bytes()

    code, _, err = run("model", "pin", "dev", "resnet50", version, "--root", str(project))

    assert code == 2
    assert "left unchanged" in err
    assert "mlstack:models[1].artifactVersion" in err
    assert path.read_bytes() == before


def test_pin_unknown_model_or_stack_is_a_usage_error(run: Run, project: Path) -> None:
    code, _, err = run("model", "pin", "dev", "gpt-9", "v1", "--root", str(project))
    assert code == 2
    assert "'gpt-9' is not in mlstack:models" in err and "resnet50" in err

    code, _, err = run("model", "pin", "staging", "resnet50", "v1", "--root", str(project))
    assert code == 2
    assert "no stack file" in err and "dev, prod" in err


def test_pin_to_the_current_version_changes_nothing(run: Run, project: Path) -> None:
    path = project / "Pulumi.dev.yaml"
    before = path.read_bytes()
    current = str(_model(project, "dev", "resnet50")["artifactVersion"])

    code, out, _ = run("model", "pin", "dev", "resnet50", current, "--root", str(project))

    assert code == 0
    assert "already pinned" in out
    assert path.read_bytes() == before


def test_pin_adds_a_missing_artifact_version_after_the_name(run: Run, project: Path) -> None:
    path = project / "Pulumi.dev.yaml"
    lines = path.read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if "- name: resnet50" in line)
    assert "artifactVersion" in lines[index + 1]
    del lines[index + 1]
    path.write_text("".join(lines))

    code, _, err = run("model", "pin", "dev", "resnet50", "v5", "--root", str(project))

    assert code == 0, err
    new_lines = path.read_text().splitlines()
    assert new_lines[index].strip().startswith("- name: resnet50")
    assert new_lines[index + 1].strip() == "artifactVersion: v5"
    assert load_config_file("dev", project).models[1].artifact_version == "v5"


def test_pin_refuses_a_stack_file_with_duplicate_keys_in_one_line(run: Run, project: Path) -> None:
    path = project / "Pulumi.dev.yaml"
    line = "  mlstack:owner: ml-platform@example.com\n"
    before = path.read_text().replace(line, line + "  mlstack:owner: someone-else\n")
    path.write_text(before)
    code, _, err = run("model", "pin", "dev", "resnet50", "v9", "--root", str(project))
    assert code == 2
    assert err.strip().count("\n") == 0 and "duplicate key 'mlstack:owner'" in err
    assert path.read_text() == before


def test_pin_on_a_symlinked_stack_file_edits_the_real_file_and_keeps_the_link(
    run: Run, project: Path
) -> None:
    """Issue 26 item 12: the link used to be replaced by a regular file (and the file it
    pointed to left unchanged)."""
    real = project / "config" / "Pulumi.dev.yaml"
    real.parent.mkdir()
    (project / "Pulumi.dev.yaml").replace(real)
    link = project / "Pulumi.dev.yaml"
    link.symlink_to(Path("config") / "Pulumi.dev.yaml")

    code, _, err = run("model", "pin", "dev", "resnet50", "v9", "--root", str(project))

    assert code == 0, err
    assert link.is_symlink() and link.resolve() == real
    assert _model(project, "dev", "resnet50")["artifactVersion"] == "v9"
    assert [p.name for p in real.parent.iterdir()] == ["Pulumi.dev.yaml"]  # no temp left


def test_pin_on_a_stack_file_linked_to_a_fifo_exits_2_naming_it(run: Run, project: Path) -> None:
    import os

    (project / "Pulumi.dev.yaml").unlink()
    fifo = project / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a writer's open never blocks
    (project / "Pulumi.dev.yaml").symlink_to(fifo)
    try:
        code, _, err = run("model", "pin", "dev", "resnet50", "v9", "--root", str(project))
    finally:
        os.close(reader)

    assert code == 2
    assert "Pulumi.dev.yaml" in err and "Traceback" not in err


@pytest.mark.parametrize("version", ["*x", '"', "v\tx"])
def test_a_version_yaml_cannot_read_plain_is_refused_with_exit_2_not_a_parser_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str
) -> None:
    """Review finding: `model pin dev resnet50 '*x'` exited 1 with a raw ScannerError."""
    import shutil

    from mlstack.cli import main
    from stacks.config import PROJECT_ROOT

    shutil.copy(PROJECT_ROOT / "Pulumi.dev.yaml", tmp_path / "Pulumi.dev.yaml")
    before = (tmp_path / "Pulumi.dev.yaml").read_bytes()
    code = main(["model", "pin", "dev", "resnet50", version, "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Error" not in err.split(":")[0] and "rerun with --debug" not in err
    assert (tmp_path / "Pulumi.dev.yaml").read_bytes() == before
