"""``mlstack promote``: the real stack files copied into a temporary git repository;
bake evidence from a file ledger; the bucket check against a moto server."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from mlstack.cli import main
from mlstack.delivery.promote import planned_spec
from mlstack.delivery.verdicts import BakeRecord, FileLedger
from stacks.config import PROJECT_ROOT, load_config_file

LLAMA = "llama-3-8b-instruct"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Both stack files in a git repository; dev pins llama at 2099-01-01 (prod does not)."""
    root = tmp_path / "project"
    root.mkdir()
    for stack in ("dev", "prod"):
        shutil.copy(PROJECT_ROOT / f"Pulumi.{stack}.yaml", root)
    dev = root / "Pulumi.dev.yaml"
    text = dev.read_text()
    current = load_config_file("dev", root).models[0].artifact_version
    dev.write_text(text.replace(f'artifactVersion: "{current}"', 'artifactVersion: "2099-01-01"'))
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.email", "t@example.com")
    _git(root, "config", "user.name", "T")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "stack files")
    monkeypatch.delenv("MLSTACK_BAKE_LEDGER", raising=False)
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    monkeypatch.delenv("MLSTACK_MODEL_BUCKET", raising=False)
    # No AWS credentials unless a test sets them: the bucket is then not checked.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return root


def _dev_specs(project: Path) -> dict[str, dict[str, Any]]:
    """What `mlstack bake dev --record` records of dev's checkout: each model's spec."""
    cfg = load_config_file("dev", project)
    return {m.name: planned_spec(cfg, "dev", m.name).to_json() for m in cfg.models}


def _ledger_with_pass(
    project: Path, tmp_path: Path, specs: dict[str, dict[str, Any]] | None = None
) -> Path:
    """A passed bake of dev's HEAD, recording ``specs`` (default: dev's as it is now)."""
    ledger = FileLedger(tmp_path / "ledger")
    now = datetime(2026, 12, 1, tzinfo=UTC)
    commit = _git(project, "rev-parse", "HEAD")
    recorded = _dev_specs(project) if specs is None else specs
    ledger.put(BakeRecord("dev", 9, commit, "passed", now, now, 5, serving_specs=recorded))
    return ledger.root


def _promote(project: Path, *args: str) -> int:
    return main(["promote", LLAMA, "--root", str(project), *args])


def _prod_version(project: Path) -> str:
    cfg = load_config_file("prod", project)
    return next(m.artifact_version for m in cfg.models if m.name == LLAMA)


def test_unbaked_version_is_refused_and_nothing_written(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (project / "Pulumi.prod.yaml").read_text()
    (tmp_path / "empty-ledger").mkdir()
    assert _promote(project, "--ledger", f"file://{tmp_path / 'empty-ledger'}") == 1
    err = capsys.readouterr().err
    assert f"{LLAMA} 2099-01-01 has not passed a bake in stack dev with its serving spec" in err
    assert (project / "Pulumi.prod.yaml").read_text() == before


def test_a_version_baked_in_dev_is_promoted_keeping_every_comment(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (project / "Pulumi.prod.yaml").read_text()
    ledger = _ledger_with_pass(project, tmp_path)
    assert _promote(project, "--ledger", f"file://{ledger}") == 0
    after = (project / "Pulumi.prod.yaml").read_text()
    assert _prod_version(project) == "2099-01-01"
    # Only the version line changed; comments, order and quoting stay.
    changed = [
        (a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b
    ]
    assert len(changed) == 1
    assert changed[0][1].strip() == 'artifactVersion: "2099-01-01"'
    assert "bucket not checked" in capsys.readouterr().out


def test_a_failed_bake_of_the_same_update_is_no_evidence(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger_root = _ledger_with_pass(project, tmp_path)
    ledger = FileLedger(ledger_root)
    later = datetime(2026, 12, 2, tzinfo=UTC)
    ledger.put(BakeRecord("dev", 9, _git(project, "rev-parse", "HEAD"), "failed", later, later, 5))
    assert _promote(project, "--ledger", f"file://{ledger_root}") == 1
    assert "has not passed a bake" in capsys.readouterr().err


def test_an_inconclusive_bake_is_no_promotion_evidence(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bake during which the new version served nothing proves nothing."""
    ledger = FileLedger(tmp_path / "ledger")
    now = datetime(2026, 12, 1, tzinfo=UTC)
    commit = _git(project, "rev-parse", "HEAD")
    ledger.put(BakeRecord("dev", 9, commit, "inconclusive", now, now, 5))
    before = (project / "Pulumi.prod.yaml").read_text()
    assert _promote(project, "--ledger", f"file://{ledger.root}") == 1
    assert f"{LLAMA} 2099-01-01 has not passed a bake in stack dev" in capsys.readouterr().err
    assert (project / "Pulumi.prod.yaml").read_text() == before


def test_force_needs_a_reason_and_records_it_as_a_comment(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _promote(project, "--force") == 2
    assert "--force needs --reason" in capsys.readouterr().err
    assert _promote(project, "--force", "--reason", "CVE fix, dev bake pending") == 0
    text = (project / "Pulumi.prod.yaml").read_text()
    assert (
        'artifactVersion: "2099-01-01" # promoted from dev with --force (not baked there): '
        "CVE fix, dev bake pending"
    ) in text
    assert _prod_version(project) == "2099-01-01"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--from", "staging"], "no stack file"),
        (["--to", "dev"], "--from and --to are both 'dev'"),
    ],
)
def test_usage_errors_exit_2(
    project: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    assert _promote(project, *args) == 2
    assert expected in capsys.readouterr().err


def test_unknown_model_is_exit_2_listing_the_models(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["promote", "nope", "--root", str(project)]) == 2
    err = capsys.readouterr().err
    assert "model 'nope' is not in Pulumi.dev.yaml" in err
    assert LLAMA in err


def test_a_result_the_schema_rejects_is_not_written(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new model on a pool prod does not have: copied whole, rejected, file unchanged."""
    dev = project / "Pulumi.dev.yaml"
    text = dev.read_text()
    extra = (
        "    - name: ranker\n      artifactVersion: v1\n      runtime: triton\n      pool: burst\n"
        '      cpu: "2"\n      memory: 8Gi\n      shmSize: 1Gi\n'
    )
    pool = (
        "    - name: burst\n"
        "      provisioner: karpenter\n"
        "      instanceTypes: [g6.xlarge]\n"
        "      ami:\n"
        "        family: al2023\n"
        "        release: v20260714\n"
        "      maxNodes: 2\n"
    )
    text = text.replace("  mlstack:models:\n", "  mlstack:models:\n" + extra, 1)
    text = text.replace("  mlstack:gpuPools:\n", "  mlstack:gpuPools:\n" + pool, 1)
    dev.write_text(text)
    load_config_file("dev", project)  # dev itself is valid
    before = (project / "Pulumi.prod.yaml").read_text()
    code = main(["promote", "ranker", "--root", str(project), "--force", "--reason", "try"])
    assert code == 1
    assert "not promoted, Pulumi.prod.yaml left unchanged" in capsys.readouterr().err
    assert (project / "Pulumi.prod.yaml").read_text() == before


def test_with_credentials_a_version_missing_in_the_bucket_is_refused(
    project: Path,
    moto_reset: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_reset)
    s3.create_bucket(Bucket="models-prod")
    ledger = _ledger_with_pass(project, tmp_path)
    args = ["--ledger", f"file://{ledger}", "--bucket", "models-prod", "--endpoint-url", moto_reset]
    before = (project / "Pulumi.prod.yaml").read_text()
    assert _promote(project, *args) == 1
    assert "version 2099-01-01 of model llama-3-8b-instruct is not in bucket models-prod" in (
        capsys.readouterr().err
    )
    assert (project / "Pulumi.prod.yaml").read_text() == before

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "weights.bin").write_bytes(b"w" * 1024)
    push = ["model", "push", str(model_dir), "--name", LLAMA, "--version", "2099-01-01"]
    assert main([*push, "--bucket", "models-prod", "--endpoint-url", moto_reset]) == 0
    assert _promote(project, *args) == 0
    assert "bucket checked: models-prod" in capsys.readouterr().out
    assert _prod_version(project) == "2099-01-01"


# --------------------------------------------------------------------------- serving spec


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def _commit(project: Path, message: str) -> None:
    _git(project, "commit", "-qam", message)


LLAMA_DEV_ARGS = '      args: ["--max-model-len", "8192"]\n      autoscaling:\n        # Dev'


def test_every_serving_knob_is_copied_and_prod_runs_the_spec_dev_baked(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Dev baked another image, other args and SLO; prod asked for 2 GPUs: prod gets dev's
    image, args, SLO and GPU count, comments and sizing knobs (cpu, memory) stay."""
    dev, prod = project / "Pulumi.dev.yaml", project / "Pulumi.prod.yaml"
    _edit(
        dev,
        LLAMA_DEV_ARGS,
        '      args: ["--max-model-len", "4096"] # shorter context\n'
        "      image: vllm/vllm-openai:v0.27.1\n"
        "      latencySloSeconds: 30\n"
        "      autoscaling:\n        # Dev",
    )
    _edit(prod, '      gpus: 1\n      cpu: "6"', '      gpus: 2 # prod-only\n      cpu: "6"')
    _commit(project, "dev runs another image")
    ledger = _ledger_with_pass(project, tmp_path)
    baked = _dev_specs(project)[LLAMA]["digest"]

    assert _promote(project, "--ledger", f"file://{ledger}") == 0
    out = capsys.readouterr().out
    assert f"serving spec: {baked}" in out
    assert "also copied from dev: image, gpus, args, latencySloSeconds" in out
    cfg = load_config_file("prod", project)
    llama = next(m for m in cfg.models if m.name == LLAMA)
    assert (llama.image, llama.gpus, llama.args, llama.latency_slo_seconds) == (
        "vllm/vllm-openai:v0.27.1",
        1,
        ["--max-model-len", "4096"],
        30,
    )
    assert (llama.cpu, llama.memory) == ("6", "48Gi")  # sizing stays prod's
    assert planned_spec(cfg, "prod", LLAMA).digest == baked
    text = prod.read_text()
    assert "# Promote a version baked in dev with `mlstack promote <name>`" in text
    assert "# 8B parameters in bf16; `mlstack coldstart` uses it" in text


def test_a_change_in_dev_after_its_bake_is_not_evidence(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bake vouches for the spec it ran: new args in dev (same version) are unbaked."""
    ledger = _ledger_with_pass(project, tmp_path)
    _edit(project / "Pulumi.dev.yaml", '["--max-model-len", "8192"]', '["--max-model-len", "2048"]')
    before = (project / "Pulumi.prod.yaml").read_text()
    assert _promote(project, "--ledger", f"file://{ledger}") == 1
    assert "has not passed a bake in stack dev with its serving spec" in capsys.readouterr().err
    assert (project / "Pulumi.prod.yaml").read_text() == before


def test_a_bake_record_without_serving_specs_is_not_evidence(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Records written before specs were recorded (or from another checkout) vouch for
    no spec: the version alone is not what ran."""
    ledger = _ledger_with_pass(project, tmp_path, specs={})
    assert _promote(project, "--ledger", f"file://{ledger}") == 1
    assert "has not passed a bake in stack dev" in capsys.readouterr().err


def test_a_prod_only_override_is_refused_naming_what_differs(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Prod runs blue/green whose active color pins another image: after the copy prod
    would still run an image dev never baked. Refused, the field and both values named."""
    prod = project / "Pulumi.prod.yaml"
    _edit(
        prod,
        "        maxReplicas: 6\n        target: 4\n",
        "        maxReplicas: 6\n        target: 4\n"
        "      rollout:\n"
        "        strategy: blueGreen\n"
        "        blueGreen:\n"
        "          activeColor: blue\n"
        "          blue:\n"
        "            image: vllm/vllm-openai:v0.26.0\n",
    )
    # Two colors and a rollout's next version of the LLM in a node's model cache.
    _edit(
        prod, "      maxGpus: 12\n", "      maxGpus: 12\n      modelCache:\n        sizeGib: 150\n"
    )
    load_config_file("prod", project)  # a valid prod
    _commit(project, "prod pins an image on its active color")
    ledger = _ledger_with_pass(project, tmp_path)
    before = prod.read_text()
    assert _promote(project, "--ledger", f"file://{ledger}") == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "not promoted, Pulumi.prod.yaml left unchanged" in err
    assert (
        'containers.server.image: "docker.io/vllm/vllm-openai:v0.28.0" -> '
        '"docker.io/vllm/vllm-openai:v0.26.0"'
    ) in err
    assert prod.read_text() == before
