"""The Python environment a rollback target runs on: its own, from its own ``constraints.txt``.

A rollback redeploys an older commit. Its program must run on the SDK and providers
that commit was written for, not on today's ``.venv`` (after a major bump an old
commit does not even import). So each target gets a virtualenv built from *its*
``constraints.txt`` and *its* ``[project].dependencies`` (read from the commit, not
from the working tree), cached under ``$MLSTACK_ENV_CACHE`` (default
``$XDG_CACHE_HOME/mlstack/envs``, i.e. ``~/.cache/mlstack/envs``) by

    sha256(constraints.txt) + sha256(the dependency list) + the Python minor version

Every dependency is pinned exactly in ``constraints.txt`` (a repository rule), so
two commits with the same file get the same environment. The project itself is not
installed: the target's worktree is first on ``PYTHONPATH``.

Building: ``<python> -m venv --without-pip <dir>``, then ``<python> -m pip --python
<dir>/bin/python install -c constraints.txt pip <dependencies>`` (``$MLSTACK_ENV_PYTHON``
picks the interpreter, default the one running mlstack). pip is installed into the
environment because Pulumi's Python language host runs ``<dir>/bin/python -m pip list
--format json`` in the virtualenv Pulumi.yaml names and the engine aborts ``up`` when
that fails; one pip run installs it with the dependencies (a ``pip==`` pin in
``constraints.txt`` applies; quicker than ``ensurepip``). Then the language host's own
commands (``--version``, ``-m pip list --format json``) as a check. One build at a
time per key (a lock file); a marker written last, naming the layout, makes a
half-built directory (killed build) or one of an older layout (built without pip)
rebuild instead of being used.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mlstack.errors import MlstackError

CONSTRAINTS = "constraints.txt"
PYPROJECT = "pyproject.toml"
COMPLETE_MARKER = ".mlstack-env.json"
CACHE_ENV = "MLSTACK_ENV_CACHE"
PYTHON_ENV = "MLSTACK_ENV_PYTHON"
LAYOUT = 2
"""Version of what a built environment holds (recorded in its marker): 2 = with pip.
Environments of another layout (1: without pip in them) are rebuilt."""
PIP_LIST = ("-m", "pip", "list", "--format", "json")
"""What the language host runs in the program's virtualenv to find the Pulumi packages
(pulumi/pulumi ``sdk/python/toolchain/pip.go``, ``(*pip).ListPackages``)."""


class EnvironmentBuildError(MlstackError):
    """The target's environment could not be built; nothing was deployed."""


@dataclass(frozen=True)
class EnvSpec:
    """What a commit needs installed: its constraints file and its runtime dependencies."""

    commit: str
    constraints: bytes
    dependencies: tuple[str, ...]

    def key(self, python_tag: str) -> str:
        """The cache key: the hash of ``constraints.txt`` and of the dependency list."""
        constraints = hashlib.sha256(self.constraints).hexdigest()[:16]
        deps = hashlib.sha256("\n".join(self.dependencies).encode()).hexdigest()[:8]
        return f"{python_tag}-{constraints}-{deps}"


def _show(root: Path, commit: str, path: str) -> bytes | None:
    result = subprocess.run(
        ["git", "show", f"{commit}:{path}"], cwd=root, capture_output=True, check=False
    )
    return result.stdout if result.returncode == 0 else None


def spec_at(root: Path, commit: str) -> EnvSpec:
    """The :class:`EnvSpec` of ``commit``; refuses a commit without the two files."""
    short = commit[:12]
    constraints = _show(root, commit, CONSTRAINTS)
    if constraints is None:
        raise EnvironmentBuildError(
            f"commit {short} has no {CONSTRAINTS}: its dependencies are not pinned, so its "
            "environment cannot be rebuilt; roll back to a commit that has one"
        )
    raw = _show(root, commit, PYPROJECT)
    if raw is None:
        raise EnvironmentBuildError(f"commit {short} has no {PYPROJECT}")
    try:
        project = tomllib.loads(raw.decode("utf-8")).get("project", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise EnvironmentBuildError(f"{PYPROJECT} at commit {short} is unreadable: {exc}") from exc
    deps = project.get("dependencies")
    if not isinstance(deps, list) or not deps or not all(isinstance(d, str) for d in deps):
        raise EnvironmentBuildError(
            f"{PYPROJECT} at commit {short}: [project].dependencies must be a non-empty list "
            f"of requirement strings, got {deps!r}"
        )
    return EnvSpec(commit=commit, constraints=constraints, dependencies=tuple(deps))


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV])
    base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mlstack" / "envs"


class Runner(Protocol):
    """Runs a command (``env``: its whole environment; None inherits this process's)."""

    def __call__(
        self, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]: ...


def _run(
    args: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        text=True,
        capture_output=True,
        check=False,
        env=None if env is None else dict(env),
    )


@dataclass(frozen=True)
class EnvBuilder:
    """Builds (or reuses) the environment of an :class:`EnvSpec` under ``cache_dir``."""

    cache_dir: Path
    python: str
    run: Runner = _run
    python_tag: str = f"py{sys.version_info.major}.{sys.version_info.minor}"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> EnvBuilder:
        env = os.environ if environ is None else environ
        return cls(cache_dir=default_cache_dir(env), python=env.get(PYTHON_ENV) or sys.executable)

    def path_for(self, spec: EnvSpec) -> Path:
        return self.cache_dir / spec.key(self.python_tag)

    def is_cached(self, spec: EnvSpec) -> bool:
        return is_complete(self.path_for(spec))

    def ensure(self, spec: EnvSpec, echo: Callable[[str], None]) -> Path:
        """The environment's directory, built first when it is not cached."""
        target = self.path_for(spec)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with _locked(self.cache_dir / f"{target.name}.lock"):
            if is_complete(target):
                echo(f"environment of commit {spec.commit[:12]}: cached at {target}")
                return target
            if target.exists():
                shutil.rmtree(target)  # a build that did not finish, or an older layout
            echo(f"building the environment of commit {spec.commit[:12]} at {target}")
            try:
                self._build(spec, target)
            except BaseException:
                shutil.rmtree(target, ignore_errors=True)
                raise
        return target

    def _build(self, spec: EnvSpec, target: Path) -> None:
        self._check(self.run([self.python, "-m", "venv", "--without-pip", str(target)]), "venv")
        constraints = target / CONSTRAINTS
        constraints.write_bytes(spec.constraints)
        python = target / "bin" / "python"
        self._check(
            self.run(
                [
                    self.python,
                    "-m",
                    "pip",
                    "--python",
                    str(python),
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--quiet",
                    "-c",
                    str(constraints),
                    # pip itself (the language host runs it), in the same resolution:
                    # a pip pin in constraints.txt applies.
                    "pip",
                    *spec.dependencies,
                ]
            ),
            "pip install",
        )
        # What the language host runs there before the program (pulumi/pulumi
        # sdk/python/cmd/pulumi-language-python/main.go: validateVersion, then
        # listPulumiPackageInfos -> ListPackages), in the environment it activates.
        host_env = activated(os.environ, target)
        self._check(self.run([str(python), "--version"], host_env), "python --version")
        listed = self.run([str(python), *PIP_LIST], host_env)
        self._check(listed, "python -m pip list --format json")
        check_pip_list(listed.stdout)
        record = {
            "commit": spec.commit,
            "dependencies": list(spec.dependencies),
            "layout": LAYOUT,
        }
        (target / COMPLETE_MARKER).write_text(json.dumps(record, indent=2) + "\n")

    def _check(self, result: subprocess.CompletedProcess[str], step: str) -> None:
        if result.returncode != 0:
            tail = (result.stderr or result.stdout or "").strip().splitlines()[-1:]
            raise EnvironmentBuildError(
                f"building the rollback environment failed at {step} (exit {result.returncode})"
                + (f": {tail[0]}" if tail else "")
                + "; nothing was deployed"
            )


def is_complete(env_dir: Path) -> bool:
    """Whether ``env_dir`` finished building with the current :data:`LAYOUT`."""
    try:
        record = json.loads((env_dir / COMPLETE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("layout") == LAYOUT


def check_pip_list(output: str) -> list[dict[str, str]]:
    """The packages of a ``pip list --format json`` output, decoded as the language host
    does (a list of objects with string ``name`` and ``version``); refuses anything else."""
    try:
        packages = json.loads(output)
    except ValueError as exc:
        raise EnvironmentBuildError(
            f"`python -m pip list --format json` in the rollback environment printed no JSON "
            f"({exc}); the Pulumi language host would fail on it; nothing was deployed"
        ) from exc
    if not isinstance(packages, list) or not all(
        isinstance(p, dict) and isinstance(p.get("name"), str) and isinstance(p.get("version"), str)
        for p in packages
    ):
        raise EnvironmentBuildError(
            "`python -m pip list --format json` in the rollback environment printed "
            f"{output.strip()[:200]!r}, not a list of {{name, version}} objects; "
            "nothing was deployed"
        )
    return packages


def activated(environ: Mapping[str, str], env_dir: Path) -> dict[str, str]:
    """``environ`` with ``env_dir`` activated as the language host does it (pulumi/pulumi
    ``sdk/python/toolchain/toolchain.go``, ``ActivateVirtualEnv``): its ``bin`` first on
    ``PATH``, ``VIRTUAL_ENV`` set to it, ``PYTHONHOME`` removed."""
    env = {
        k: v for k, v in environ.items() if k.upper() not in {"PATH", "PYTHONHOME", "VIRTUAL_ENV"}
    }
    path = next((v for k, v in environ.items() if k.upper() == "PATH"), None)
    bin_dir = str(env_dir / "bin")
    env["PATH"] = f"{bin_dir}{os.pathsep}{path}" if path is not None else bin_dir
    env["VIRTUAL_ENV"] = str(env_dir)
    return env


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
