"""The CLI: plan JSON contract, exit codes, one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlstack.cli import main
from stacks.config import PROJECT_ROOT


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for stack in ("dev", "prod"):
        shutil.copy(PROJECT_ROOT / f"Pulumi.{stack}.yaml", tmp_path)
    return tmp_path


def test_plan_writes_the_documented_contract(project: Path, capsys) -> None:
    out = project / "plan.json"
    assert main(["plan", "dev", "--root", str(project), "--out", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["stack"] == "dev"
    assert document["resources"]
    for resource in document["resources"]:
        assert {"urn", "type", "name", "parent", "inputs"} <= set(resource)
    printed = capsys.readouterr().out
    custom = sum(r["custom"] for r in document["resources"])
    components = len(document["resources"]) - custom
    assert f"stack dev: {custom} cloud resources (+{components} components" in printed


def test_plan_defaults_to_build_plan_under_the_root(project: Path) -> None:
    assert main(["plan", "prod", "--root", str(project)]) == 0
    assert (project / "build/plan/prod.json").is_file()


def test_plan_check_json_reports_no_findings(project: Path, capsys) -> None:
    out = project / "p.json"
    assert (
        main(["plan", "dev", "--check", "--json", "--root", str(project), "--out", str(out)]) == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["findings"] == []
    assert summary["byComponent"]["network"] > 0


def test_validate_ok(project: Path, capsys) -> None:
    assert main(["validate", "prod", "--root", str(project)]) == 0
    assert "Pulumi.prod.yaml: valid (prod, us-east-1)" in capsys.readouterr().out


def test_invalid_config_exits_2_with_the_problems_and_no_traceback(project: Path, capsys) -> None:
    path = project / "Pulumi.dev.yaml"
    path.write_text(path.read_text().replace('version: "1.33"', "version: 1.30"))
    assert main(["plan", "dev", "--root", str(project)]) == 2
    err = capsys.readouterr().err
    assert "mlstack:cluster.version" in err
    assert "1.3" in err
    assert "Traceback" not in err
    assert not (project / "build").exists()


def test_unknown_stack_exits_2(project: Path, capsys) -> None:
    assert main(["validate", "qa", "--root", str(project)]) == 2
    assert "stacks here: dev, prod" in capsys.readouterr().err


def test_usage_error_exits_2(capsys) -> None:
    assert main(["plan"]) == 2
    assert "Missing argument" in capsys.readouterr().err


def test_unexpected_errors_exit_1_in_one_line(project: Path, capsys, monkeypatch) -> None:
    def boom(*_args, **_kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr("mlstack.synth.synth_config", boom)
    assert main(["plan", "dev", "--root", str(project)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: RuntimeError: kaboom (rerun with --debug for a traceback)"
    with pytest.raises(RuntimeError):
        main(["--debug", "plan", "dev", "--root", str(project)])


def test_schema_command_writes_the_committed_schema(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    assert main(["schema", "--out", str(out)]) == 0
    committed = PROJECT_ROOT / "schema/stack-config.schema.json"
    assert out.read_text() == committed.read_text(), "run `mlstack schema` and commit"


# --------------------------------------------------------------------------- issue 13 CLI


def test_version_prints_the_installed_version(capsys) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mlstack {version('mlstack')}"


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "prdo"],
        ["plan", "prdo"],
        ["policy", "dev", "prdo"],
        ["cost", "prdo"],
        ["parity", "dev", "prdo"],
    ],
    ids=lambda a: a[0],
)
def test_unknown_stacks_exit_2_with_one_line(project: Path, capsys, args: list[str]) -> None:
    assert main([*args, "--root", str(project)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "prdo" in lines[0] and "dev, prod" in lines[0]
    assert "prdo" not in captured.out


@pytest.mark.parametrize(
    "target",
    [
        lambda p: p / "Pulumi.dev.yaml" / "plan.json",  # under a file
        lambda p: p,  # a directory
    ],
    ids=["under-a-file", "a-directory"],
)
def test_unwritable_out_fails_first_in_one_line(project: Path, capsys, monkeypatch, target) -> None:
    import mlstack.synth

    def no_synth(*_args, **_kwargs):
        raise AssertionError("synthesized before checking --out")

    monkeypatch.setattr(mlstack.synth, "synth_config", no_synth)
    out = target(project)
    assert main(["plan", "dev", "--root", str(project), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --out {out}:"), err


def test_a_writable_out_check_leaves_nothing_behind_when_the_config_fails(project: Path) -> None:
    path = project / "Pulumi.dev.yaml"
    path.write_text(path.read_text().replace('version: "1.33"', "version: 1.30"))
    out = project / "deep" / "er" / "plan.json"
    assert main(["plan", "dev", "--root", str(project), "--out", str(out)]) == 2
    assert not (project / "deep").exists()


def test_a_non_utf8_stack_file_exits_2_in_one_line(project: Path, capsys) -> None:
    path = project / "Pulumi.dev.yaml"
    path.write_bytes(path.read_bytes() + b"# caf\xe9\n")
    assert main(["validate", "dev", "--root", str(project)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Pulumi.dev.yaml" in err[0] and "UTF-8" in err[0], err


def test_duplicate_keys_exit_2_naming_the_key(project: Path, capsys) -> None:
    path = project / "Pulumi.dev.yaml"
    text = path.read_text()
    path.write_text(
        text.replace("  mlstack:region: us-west-2\n", "  mlstack:region: us-west-2\n" * 2)
    )
    assert main(["validate", "dev", "--root", str(project)]) == 2
    assert "duplicate key 'mlstack:region'" in capsys.readouterr().err


def test_parity_errors_print_once(project: Path, capsys) -> None:
    path = project / "Pulumi.prod.yaml"
    path.write_text(path.read_text().replace("minSize: 3", "minSize: 0"))
    assert main(["parity", "dev", "prod", "--root", str(project)]) == 2
    captured = capsys.readouterr()
    assert (captured.out + captured.err).count("minSize") == 1


# --------------------------------------------------------------------------- CRD schemas


def test_plan_check_without_schemas_counts_what_it_could_not_validate(
    project: Path, tmp_path: Path, capsys
) -> None:
    empty = tmp_path / "no-schemas"
    empty.mkdir()
    out = project / "p.json"
    args = ["plan", "dev", "--check", "--root", str(project), "--out", str(out)]
    assert main([*args, "--crd-schemas", str(empty)]) == 0
    printed = capsys.readouterr().out
    assert f"CRD schemas: {empty} (--crd-schemas): 0 kind(s)" in printed
    document = json.loads(out.read_text())
    custom = [
        r
        for r in document["resources"]
        if r["type"].split(":")[1].split("/")[0]
        in (
            "karpenter.sh",
            "karpenter.k8s.aws",
            "keda.sh",
            "monitoring.coreos.com",
            "elbv2.k8s.aws",
        )
    ]
    assert custom
    assert f"custom resources: {len(custom)} not validated" in printed
    assert "not validated (no schema for karpenter.sh/v1/NodePool)" in printed


def test_strict_crds_makes_a_missing_schema_a_failure(
    project: Path, tmp_path: Path, capsys
) -> None:
    empty = tmp_path / "no-schemas"
    empty.mkdir()
    out = project / "p.json"
    args = ["plan", "dev", "--check", "--json", "--root", str(project), "--out", str(out)]
    assert main([*args, "--crd-schemas", str(empty), "--strict-crds"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["findings"]
    assert all(
        "[crd-schema]" in f and "not validated (no schema for" in f for f in report["findings"]
    )
    assert "render check finding(s) in stack dev" in captured.err


def test_plan_check_json_lists_the_unvalidated(project: Path, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "none"
    empty.mkdir()
    out = project / "p.json"
    args = ["plan", "dev", "--check", "--json", "--root", str(project), "--out", str(out)]
    assert main([*args, "--crd-schemas", str(empty)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["crdSchemas"] == str(empty)
    assert any("keda.sh/v1alpha1/ScaledObject" in line for line in report["notValidated"])


def test_plan_check_strict_passes_with_the_schemas(project: Path, crd_schemas, capsys) -> None:
    assert crd_schemas.where is not None
    out = project / "p.json"
    args = ["plan", "prod", "--check", "--strict-crds", "--root", str(project), "--out", str(out)]
    assert main([*args, "--crd-schemas", str(crd_schemas.where.path)]) == 0
    printed = capsys.readouterr().out
    assert "render checks: 0 finding(s)" in printed
    assert "not validated" not in printed


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--check", "--crd-schemas", "/nonexistent/crds"],
            "/nonexistent/crds (from --crd-schemas) does not exist",
        ),
        (["--strict-crds"], "--crd-schemas and --strict-crds need --check"),
    ],
)
def test_bad_crd_schema_options_exit_2_before_any_work(
    project: Path, capsys, extra: list[str], message: str
) -> None:
    out = project / "never.json"
    assert main(["plan", "dev", "--root", str(project), "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
