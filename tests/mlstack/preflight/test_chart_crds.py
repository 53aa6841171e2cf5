"""Preflight ``charts.crds[...]``: the CRDs the LB controller's release installs are the
pinned bytes, fetched the way Helm fetches a chart (the repository's ``index.yaml``, the
version's first URL, the package checked against the index's ``digest``; Helm v3
``pkg/repo/index.go`` ``ChartVersion.Digest``/``URLs`` and ``pkg/downloader/chart_downloader.go``).

The repository is a real HTTP server on loopback (a subprocess on a free port, stopped by
its PID) serving a package built from the pinned chart's source in ``shared/upstream``.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.versions import (
    AWS_LOAD_BALANCER_CONTROLLER_CHART,
    AWS_LOAD_BALANCER_CONTROLLER_CRDS_SHA256,
)
from mlstack.preflight import chart_crds
from tests.mlstack.preflight import chart_repo

CHART = AWS_LOAD_BALANCER_CONTROLLER_CHART.chart
VERSION = AWS_LOAD_BALANCER_CONTROLLER_CHART.version
PINNED = AWS_LOAD_BALANCER_CONTROLLER_CRDS_SHA256[VERSION]

SERVER = """
import http.server, sys, functools
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
handler.log_message = lambda *a: None
with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
    print(httpd.server_address[1], flush=True)
    httpd.serve_forever()
"""


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static HTTP server on a free loopback port over ``tmp_path/repo``: (base URL, dir)."""
    root = tmp_path / "repo"
    root.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}", root
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _publish(root: Path, base: str, tgz: bytes, digest: str | None = None) -> None:
    for url, body in chart_repo.repository(base, CHART, VERSION, tgz, digest).items():
        (root / url.rsplit("/", 1)[1]).write_bytes(body)


def _real_package(upstream: Path) -> bytes:
    source = upstream / "charts" / "src" / f"{CHART}-{VERSION}"
    return chart_repo.package(CHART, chart_repo.chart_files(source))


def test_the_pinned_charts_crds_pass_when_served_as_helm_fetches_them(
    upstream: Path, serve: tuple[str, Path]
) -> None:
    base, root = serve
    _publish(root, base, _real_package(upstream))
    ref = chart_crds.ChartRef(base, CHART, VERSION)
    assert "2 CRD file(s) match" in chart_crds.verify_crds(ref, PINNED)


def test_a_changed_crd_file_in_the_package_is_refused(
    upstream: Path, serve: tuple[str, Path]
) -> None:
    base, root = serve
    source = upstream / "charts" / "src" / f"{CHART}-{VERSION}"
    files = chart_repo.chart_files(source)
    files["crds/crds.yaml"] += b"\n# one more line\n"
    _publish(root, base, chart_repo.package(CHART, files))
    with pytest.raises(chart_crds.ChartFetchError, match=r"crds/ differ .*crds/crds.yaml"):
        chart_crds.verify_crds(chart_crds.ChartRef(base, CHART, VERSION), PINNED)


def test_a_package_that_is_not_what_the_index_lists_is_refused(
    upstream: Path, serve: tuple[str, Path]
) -> None:
    base, root = serve
    _publish(root, base, _real_package(upstream), digest=hashlib.sha256(b"other").hexdigest())
    with pytest.raises(chart_crds.ChartFetchError, match="but the repository's index lists"):
        chart_crds.verify_crds(chart_crds.ChartRef(base, CHART, VERSION), PINNED)


def test_a_version_the_repository_does_not_list_is_refused(serve: tuple[str, Path]) -> None:
    base, root = serve
    _publish(root, base, chart_repo.package(CHART, {"crds/crds.yaml": b"x"}))
    ref = chart_crds.ChartRef(base, CHART, "0.0.1")
    with pytest.raises(
        chart_crds.ChartFetchError, match=r"no aws-load-balancer-controller 0\.0\.1"
    ):
        chart_crds.verify_crds(ref, PINNED)


def test_an_unreachable_repository_is_a_fetch_error_naming_the_url(
    serve: tuple[str, Path],
) -> None:
    base, _ = serve
    with pytest.raises(chart_crds.ChartFetchError, match=r"index\.yaml"):
        chart_crds.verify_crds(chart_crds.ChartRef(base + "/nowhere", CHART, VERSION), PINNED)


def test_only_https_repositories_are_fetched() -> None:
    with pytest.raises(chart_crds.ChartFetchError, match="only https"):
        chart_crds.http_get("http://example.com/index.yaml")


def test_preflight_fails_the_stack_when_the_repository_serves_other_crds(
    world_factory, run_preflight_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through ``mlstack preflight``: the world's repository serves a package whose crds/
    are not the pinned ones -> exit 1, that check named."""
    import json

    from tests.mlstack.preflight import world as world_module

    world = world_factory("dev")
    monkeypatch.setattr(
        world_module, "SYNTHETIC_CRDS", {"crds/crds.yaml": b"# not what was pinned\n"}
    )
    original = world_module.chart_world

    def served_other(facts):  # the repository changed after the digests were pinned
        urls, _ = original(facts)
        return urls, {CHART: {VERSION: {"crds/crds.yaml": "0" * 64}}}

    monkeypatch.setattr(world_module, "chart_world", served_other)
    from tests.mlstack.preflight import conftest as preflight_conftest

    monkeypatch.setattr(preflight_conftest, "chart_world", served_other)
    code, out, _ = run_preflight_cli(world, "--json")
    statuses = {c["id"]: c["status"] for c in json.loads(out)["checks"]}
    assert code == 1
    assert statuses[f"charts.crds[{CHART}-{VERSION}]"] == "FAIL"
