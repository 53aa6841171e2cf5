"""Shared fixtures: stack configs, synthesized graphs (cached per session), a moto server."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlstack.custom_resources import PROVIDE_HINT, SchemaStore, load_schema_dir, resolve_schema_dir
from mlstack.synth import ResourceGraph, synth_config
from mlstack.testing import moto_server as moto
from mlstack.upstream import FETCH_COMMAND, find_upstream
from mlstack.upstream import HINT as UPSTREAM_HINT
from stacks.config import (
    PROJECT_ROOT,
    StackConfig,
    _offline_secrets,  # pyright: ignore[reportPrivateUsage]
    load_config_file,
    parse_config,
)
from stacks.stack_yaml import load_stack_yaml

STACKS = ("dev", "prod")

_GRAPHS: dict[str, ResourceGraph] = {}


def raw_stack_config(stack: str) -> dict[str, Any]:
    """The ``mlstack:`` mapping of a real stack file, namespace stripped (a deep copy);
    ``secure:`` values become the offline placeholder, as ``load_config_file`` does."""
    document = load_stack_yaml((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())
    return {
        key.removeprefix("mlstack:"): _offline_secrets(copy.deepcopy(value))
        for key, value in document["config"].items()
        if key.startswith("mlstack:")
    }


def set_path(raw: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """Set ``a.b[1].c`` in a raw config mapping (creating maps on the way); returns raw."""
    parts: list[str | int] = []
    for piece in dotted.replace("]", "").split("."):
        name, *indexes = piece.split("[")
        if name:
            parts.append(name)
        parts += [int(i) for i in indexes]
    target: Any = raw
    for part in parts[:-1]:
        target = target[part] if isinstance(part, int) else target.setdefault(part, {})
    target[parts[-1]] = value
    return raw


@pytest.fixture(scope="session")
def stack_configs() -> dict[str, StackConfig]:
    return {stack: load_config_file(stack) for stack in STACKS}


def graph_for(stack: str) -> ResourceGraph:
    """The synthesized graph of a real stack file, synthesized once per test process."""
    if stack not in _GRAPHS:
        _GRAPHS[stack] = synth_config(load_config_file(stack), stack)
    return _GRAPHS[stack]


@pytest.fixture(scope="session")
def dev_graph() -> ResourceGraph:
    return graph_for("dev")


@pytest.fixture(scope="session")
def prod_graph() -> ResourceGraph:
    return graph_for("prod")


@pytest.fixture(params=STACKS)
def any_graph(request: pytest.FixtureRequest) -> ResourceGraph:
    return graph_for(request.param)


SynthEdited = Callable[..., ResourceGraph]


@pytest.fixture(scope="session")
def upstream() -> Path:
    """The shared upstream reference data (``shared/upstream``: chart values, IAM
    reference policies, CRD schemas); read from there, never copied into the repo."""
    found = find_upstream()
    if found is None:
        pytest.skip(f"upstream reference data not found: {UPSTREAM_HINT}")
    return found


@pytest.fixture
def synth_edited() -> SynthEdited:
    """Synthesize a real stack file with edits, e.g. ``run("dev", {"cluster.version": "1.32"})``."""

    def run(stack: str, edits: dict[str, Any] | None = None) -> ResourceGraph:
        raw = raw_stack_config(stack)
        for dotted, value in (edits or {}).items():
            set_path(raw, dotted, value)
        return synth_config(parse_config(raw, f"Pulumi.{stack}.yaml"), stack)

    return run


# --------------------------------------------------------------------------- CRD schemas


@pytest.fixture(scope="session")
def crd_schemas() -> SchemaStore:
    """The CRD schemas of ``$MLSTACK_CRD_SCHEMAS`` (``make test``: ../shared/upstream/crds).

    Tests that validate custom resources strictly skip, saying why and how to get
    schemas, when no schema directory holds any (a clone on a machine without them).
    """
    where = resolve_schema_dir()
    store = load_schema_dir(where)
    fetched = find_upstream()
    if not store.schemas and "MLSTACK_CRD_SCHEMAS" not in os.environ and fetched is not None:
        where = resolve_schema_dir(fetched / "crds")
        store = load_schema_dir(where)
    if not store.schemas:
        pytest.skip(
            f"no CRD schemas in {where.describe()}: `make test` sets MLSTACK_CRD_SCHEMAS to "
            f"../shared/upstream/crds when it exists; otherwise {PROVIDE_HINT}"
        )
    return store


# --------------------------------------------------------------------------- moto server


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real moto server on 127.0.0.1 (free port) for boto3 code; stopped by its PID.

    Yields the endpoint URL. Tests reset its state with ``moto_reset``.
    """
    with moto.moto_server() as url:
        yield url


@pytest.fixture
def moto_reset(moto_server: str) -> str:
    """The moto server, emptied before the test; also sets dummy AWS credentials."""
    moto.reset(moto_server, timeout_s=5)
    return moto_server


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and region so boto3 never reaches for real ones."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(Path(os.devnull)))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(Path(os.devnull)))


# --------------------------------------------------------------------------- rendered releases

_RENDERED: dict[str, list[Any]] = {}


@pytest.fixture(scope="session")
def rendered_plan() -> Callable[[str], list[Any]]:
    """``rendered_plan("dev")``: every Helm release of that plan rendered with the pinned
    chart sources by Helm's own engine (``tests/support/helm_render.py``), once per process.
    Skips, saying why, without the chart sources or helm-python-sdk; a release whose chart
    sources are absent has ``missing`` set (its tests skip with that reason)."""
    pytest.importorskip("helm_python", reason="helm-python-sdk not installed (`make setup`)")
    from tests.support import helm_render

    upstream = helm_render.find_upstream()
    if upstream is None:
        pytest.skip("shared/upstream/charts/src not found (set MLSTACK_UPSTREAM)")

    def render(stack: str) -> list[Any]:
        if stack not in _RENDERED:
            _RENDERED[stack] = helm_render.render_plan(graph_for(stack), upstream)
        return _RENDERED[stack]

    return render


# --------------------------------------------------------------------------- summary


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Count the reference checks skipped for want of upstream data (their skip reason
    names the fetch command), so a run without it never reads as complete."""
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if isinstance(report.longrepr, tuple) and FETCH_COMMAND in str(report.longrepr[2])
    ]
    if skipped:
        terminalreporter.write_sep(
            "=",
            f"{len(skipped)} upstream reference checks skipped: run `{FETCH_COMMAND}`",
            yellow=True,
        )
