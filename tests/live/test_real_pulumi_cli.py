"""With the real Pulumi CLI: the program loads under the engine, history reads a real stack."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mlstack.delivery.history import load_history
from stacks.config import PROJECT_ROOT

pytestmark = pytest.mark.pulumi_cli


@pytest.fixture
def local_backend(tmp_path: Path) -> dict[str, str]:
    """A file backend and passphrase secrets in a temp dir: no account, no network."""
    state = tmp_path / "state"
    state.mkdir()
    return {
        **os.environ,
        "PULUMI_BACKEND_URL": f"file://{state}",
        "PULUMI_CONFIG_PASSPHRASE": "test-only",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }


def test_history_of_a_fresh_stack_is_empty(local_backend: dict[str, str], tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(PROJECT_ROOT / "Pulumi.yaml", project)
    subprocess.run(
        ["pulumi", "stack", "init", "live-test", "--non-interactive"],
        cwd=project,
        env=local_backend,
        check=True,
        capture_output=True,
    )
    assert load_history("live-test", project, local_backend) == []


def _project_copy(tmp_path: Path) -> Path:
    """The project's Pulumi files in a temp dir, with the program and .venv linked in, so
    `stack init` may write its secrets salt without touching the repository."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml"):
        shutil.copy(PROJECT_ROOT / name, project)
    for name in ("stacks", ".venv"):
        (project / name).symlink_to(PROJECT_ROOT / name)
    # The shipped file carries no ciphertext (only its secretsprovider, which the
    # passphrase `stack init` below replaces), so it needs no editing here.
    return project


def test_the_engine_runs_the_program_with_the_stack_config(
    local_backend: dict[str, str], tmp_path: Path
) -> None:
    """`pulumi preview` runs stacks/__main__.py under the real engine. Without AWS
    credentials the AWS provider fails at its first resource, but by then the config has
    been loaded from the engine and validated, and the components registered."""
    project = _project_copy(tmp_path)
    subprocess.run(
        ["pulumi", "stack", "init", "dev", "--non-interactive"],
        cwd=project,
        env=local_backend,
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        ["pulumi", "preview", "--stack", "dev", "--non-interactive"],
        cwd=project,
        env=local_backend,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = result.stdout + result.stderr
    assert "invalid config in Pulumi.dev.yaml" not in output
    assert "mlstack:network:Network" in output, output[-2000:]
