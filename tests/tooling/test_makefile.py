"""The Makefile checks the interpreter before it creates or installs anything.

The interpreters here are stand-ins, not real Pythons: small scripts run by the test's
own interpreter that report a chosen version (``sys.version_info``) and their own path
(``sys.executable``) to the code the Makefile passes with ``-c``. Make runs with ``-n``
(the interpreter check still runs: its recipe line is marked ``+``), so nothing is
installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def stand_in_python(where: Path, version: str, name: str = "python3") -> Path:
    """A stand-in interpreter reporting ``version`` (a test double, not a Python)."""
    major, minor, micro = (int(part) for part in version.split("."))
    path = where / name
    path.write_text(
        f"#!{sys.executable}\n"
        f'"""Stand-in for Python {version}: runs `-c CODE` reporting that version."""\n'
        "import sys\n"
        f"sys.version_info = ({major}, {minor}, {micro}, 'final', 0)\n"
        "sys.executable = __file__\n"
        "if sys.argv[1:2] != ['-c']:\n"
        "    sys.exit('stand-in python: only -c is supported')\n"
        "exec(sys.argv[2])\n",
        encoding="utf-8",
    )
    path.chmod(0o755)
    return path


def make_n(target: str, python: Path | str, venv: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-n", "-C", str(ROOT), target, f"PYTHON={python}", f"VENV={venv}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def fake_venv(venv: Path, version: str, executable: Path) -> None:
    """A venv as ``python -m venv`` leaves it (pyvenv.cfg, bin/python), already installed."""
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(
        f"home = {executable.parent}\ninclude-system-site-packages = false\n"
        f"version = {version}\nexecutable = {executable}\n",
        encoding="utf-8",
    )
    (venv / "bin" / "python").symlink_to(executable)
    (venv / ".installed").touch()  # newer than pyproject.toml / constraints.txt


@pytest.mark.parametrize("version", ["3.10.12", "3.9.2", "3.13.0"])
def test_make_plan_refuses_an_unsupported_python_before_creating_the_venv(
    tmp_path: Path, version: str
) -> None:
    python = stand_in_python(tmp_path, version)
    venv = tmp_path / ".venv"
    result = make_n("plan", python, venv)
    assert result.returncode != 0
    assert f"{python} (Python {version})" in result.stderr
    assert "needs Python 3.11 or 3.12" in result.stderr
    assert "make PYTHON=python3.12 plan" in result.stderr
    assert "-m venv" not in result.stdout
    assert "pip install" not in result.stdout
    assert not venv.exists()


def test_make_plan_names_the_fix_when_python_is_missing(tmp_path: Path) -> None:
    result = make_n("plan", tmp_path / "no-such-python", tmp_path / ".venv")
    assert result.returncode != 0
    assert f"PYTHON={tmp_path / 'no-such-python'} does not run" in result.stderr
    assert "make PYTHON=python3.12 plan" in result.stderr
    assert "-m venv" not in result.stdout


@pytest.mark.parametrize("version", ["3.11.2", "3.12.3"])
def test_make_plan_accepts_debian12_and_ubuntu2404_stock_python(
    tmp_path: Path, version: str
) -> None:
    python = stand_in_python(tmp_path, version)
    result = make_n("plan", python, tmp_path / ".venv")
    assert result.returncode == 0, result.stderr
    assert f"{python} -m venv {tmp_path / '.venv'}" in result.stdout


def test_make_rebuilds_a_venv_built_by_another_interpreter(tmp_path: Path) -> None:
    python = stand_in_python(tmp_path, "3.12.3", "python3.12")
    other = stand_in_python(tmp_path, "3.11.2", "python3.11")
    venv = tmp_path / ".venv"
    fake_venv(venv, "3.11.2", other)
    result = make_n("plan", python, venv)
    assert result.returncode == 0, result.stderr
    assert f"{venv} was built by {other} (Python 3.11.2), not {python}" in result.stdout
    lines = result.stdout.splitlines()
    rm = lines.index(f"rm -rf {venv}")
    assert any(f"{python} -m venv {venv}" in line for line in lines[rm:])


def test_make_keeps_a_venv_built_by_the_same_interpreter(tmp_path: Path) -> None:
    python = stand_in_python(tmp_path, "3.11.2")
    venv = tmp_path / ".venv"
    fake_venv(venv, "3.11.2", python)
    result = make_n("plan", python, venv)
    assert result.returncode == 0, result.stderr
    assert "rm -rf" not in result.stdout
    assert "pip install" not in result.stdout
    assert f"{venv}/bin/mlstack plan dev --check" in result.stdout


def _requires_python() -> SpecifierSet:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return SpecifierSet(project["project"]["requires-python"])


def test_makefile_supported_pythons_match_requires_python() -> None:
    declared = re.search(r"^PY_SUPPORTED := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert declared
    spec = _requires_python()
    allowed = [f"3.{minor}" for minor in range(6, 20) if Version(f"3.{minor}.0") in spec]
    assert declared.group(1).split() == allowed


def test_requires_python_admits_debian12_and_ubuntu2404_stock_python() -> None:
    spec = _requires_python()
    assert Version("3.11.2") in spec  # Debian 12 (bookworm)
    assert Version("3.12.3") in spec  # Ubuntu 24.04 (noble)


def test_every_pin_installed_here_installs_on_debian12_stock_python() -> None:
    """Each distribution installed at its constraints.txt pin declares a Requires-Python
    that admits 3.11.2 (pip reads it from the index's ``data-requires-python`` and
    refuses the pin, reporting only ResolutionImpossible); soupsieve 3.0 and later
    declare ``>=3.11.5``."""
    pins = dict(
        line.split("==", 1)
        for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.startswith("#")
    )
    refused = []
    for name, pinned in pins.items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        requires = dist.metadata["Requires-Python"]
        if dist.version == pinned and requires:
            for python in ("3.11.2", "3.12.3"):
                if Version(python) not in SpecifierSet(requires):
                    refused.append(f"{name}=={pinned} (Requires-Python {requires}) on {python}")
    assert not refused
