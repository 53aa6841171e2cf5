"""`mlstack upstream fetch`: the reference data at the pinned versions, digests checked.

The network is never used: a local HTTP server on 127.0.0.1 serves fixture bytes in place
of the upstream raw files (a manifest naming its URLs is passed with ``--manifest``).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlstack import upstream
from mlstack.cli import main
from mlstack.errors import MlstackError

ROOT = Path(__file__).resolve().parents[2]

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, properties: {size: {type: integer}}}
"""

FILES = {
    "iam/policy.json": b'{"Version": "2012-10-17", "Statement": []}\n',
    "charts/demo-1.0.0.values.yaml": b"replicas: 1\n",
    "crd-sources/widgets.yaml": CRD.encode(),
}


@pytest.fixture
def server() -> Iterator[str]:
    """Serves FILES under /<path> on a free loopback port; anything else is a 404."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = FILES.get(self.path.lstrip("/"))
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: object) -> None:
            return

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def manifest(tmp_path: Path, base: str, digests: dict[str, str] | None = None) -> Path:
    entries = [
        {
            "path": name,
            "url": f"{base}/{name}",
            "sha256": (digests or {}).get(name, hashlib.sha256(data).hexdigest()),
        }
        for name, data in FILES.items()
    ]
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"files": entries}), encoding="utf-8")
    return path


def test_fetch_writes_files_whose_digest_matches_and_converts_crds(
    tmp_path: Path, server: str
) -> None:
    dest = tmp_path / "cache" / "upstream"
    written = upstream.fetch(upstream.load_manifest(manifest(tmp_path, server)), dest)
    for name, data in FILES.items():
        assert (dest / name).read_bytes() == data
    schema = json.loads((dest / "crds" / "example.com_v1_widget.json").read_text())
    assert schema
    assert dest / "crds" / "example.com_v1_widget.json" in written
    assert upstream.find_upstream(tmp_path) in (None, dest) or os.environ.get(upstream.ENV_VAR)


def test_fetch_refuses_a_digest_mismatch_and_writes_nothing(tmp_path: Path, server: str) -> None:
    dest = tmp_path / "cache" / "upstream"
    bad = manifest(tmp_path, server, {"charts/demo-1.0.0.values.yaml": "0" * 64})
    with pytest.raises(MlstackError) as caught:
        upstream.fetch(upstream.load_manifest(bad), dest)
    message = str(caught.value)
    assert f"{server}/charts/demo-1.0.0.values.yaml" in message
    assert "0" * 64 in message
    assert "nothing written" in message
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no staging directory left behind


def test_a_refused_fetch_leaves_the_previous_cache_as_it_was(tmp_path: Path, server: str) -> None:
    dest = tmp_path / "upstream"
    upstream.fetch(upstream.load_manifest(manifest(tmp_path, server)), dest)
    before = {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    bad = manifest(tmp_path, server, {"iam/policy.json": "f" * 64})
    with pytest.raises(MlstackError):
        upstream.fetch(upstream.load_manifest(bad), dest)
    assert {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "upstream"]


def test_fetch_of_an_unreachable_file_names_its_url_and_writes_nothing(
    tmp_path: Path, server: str
) -> None:
    path = manifest(tmp_path, server)
    document = json.loads(path.read_text())
    document["files"][0]["url"] = f"{server}/missing.json"
    path.write_text(json.dumps(document))
    dest = tmp_path / "out"
    with pytest.raises(MlstackError, match=f"cannot download {server}/missing.json"):
        upstream.fetch(upstream.load_manifest(path), dest)
    assert not dest.exists()


def test_cli_upstream_fetch_exits_0_and_1_on_a_mismatch(
    tmp_path: Path, server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    good = manifest(tmp_path, server)
    assert main(["upstream", "fetch", "--manifest", str(good), "--to", str(tmp_path / "a")]) == 0
    assert f"{len(FILES) + 1} files in {tmp_path / 'a'}" in capsys.readouterr().out
    bad = manifest(tmp_path, server, {"iam/policy.json": "e" * 64})
    assert main(["upstream", "fetch", "--manifest", str(bad), "--to", str(tmp_path / "b")]) == 1
    assert "refused 1 file(s)" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("entry", "names"),
    [
        ({"path": "../x", "url": "http://127.0.0.1/x", "sha256": "0" * 64}, "files[0].path"),
        ({"path": "x", "url": "file:///etc/passwd", "sha256": "0" * 64}, "files[0].url"),
        ({"path": "x", "url": "http://127.0.0.1/x", "sha256": "abc"}, "files[0].sha256"),
    ],
)
def test_a_bad_manifest_is_a_usage_error_naming_file_key_and_value(
    tmp_path: Path, entry: dict[str, str], names: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"files": [entry]}))
    assert main(["upstream", "fetch", "--manifest", str(path), "--to", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{path}: {names}" in err
    assert "allowed" in err
    assert not (tmp_path / "o").exists()


def test_the_committed_manifest_lists_every_reference_file_at_the_pinned_tags() -> None:
    files = upstream.load_manifest()
    paths = {f.path for f in files}
    for needed in (
        "iam/aws-load-balancer-controller-v3.5.0-iam_policy.json",
        "iam/karpenter-v1.14.1-cloudformation.yaml",
        "charts/dcgm-exporter-4.8.2.default-counters.csv",
        "charts/keda-2.20.2.values.yaml",
    ):
        assert needed in paths
    assert all(f.url.startswith("https://") for f in files)
    assert len({f.url for f in files}) == len(files)


def test_committed_digests_match_the_shared_reference_copy_where_there_is_one() -> None:
    shared = next(
        (p / "shared" / "upstream" for p in ROOT.parents if (p / "shared/upstream/iam").is_dir()),
        None,
    )
    if shared is None:
        pytest.skip(f"no shared reference copy to compare with: {upstream.HINT}")
    compared = 0
    for item in upstream.load_manifest():
        copy = shared / item.path
        if copy.is_file():
            assert hashlib.sha256(copy.read_bytes()).hexdigest() == item.sha256, item.path
            compared += 1
    assert compared >= 11


def test_find_upstream_honours_only_an_explicit_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(upstream.ENV_VAR, str(tmp_path / "empty"))
    assert upstream.find_upstream() is None
    (tmp_path / "data" / "crds").mkdir(parents=True)
    monkeypatch.setenv(upstream.ENV_VAR, str(tmp_path / "data"))
    assert upstream.find_upstream() == tmp_path / "data"
    monkeypatch.delenv(upstream.ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    (tmp_path / "xdg" / "mlstack" / "upstream" / "crds").mkdir(parents=True)
    assert upstream.find_upstream(tmp_path / "elsewhere" / "x.py") == (
        tmp_path / "xdg" / "mlstack" / "upstream"
    )


UPSTREAM_TESTS = [
    "tests/components/test_chart_values.py",
    "tests/components/iam/test_controller_iam_vs_upstream.py",
    "tests/components/compute/test_nvidia.py",
    "tests/components/serving/test_load_balancer.py",
    "tests/mlstack/test_custom_resources.py",
]


@pytest.mark.slow
def test_without_upstream_data_every_skip_names_the_fetch_command_and_is_counted(
    tmp_path: Path,
) -> None:
    (tmp_path / "none").mkdir()
    env = {
        **os.environ,
        upstream.ENV_VAR: str(tmp_path / "none"),
        "MLSTACK_CRD_SCHEMAS": str(tmp_path / "none"),
        "PYTHONPATH": str(ROOT),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-rs",
            *UPSTREAM_TESTS,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    skips = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skips
    unnamed = [line for line in skips if "mlstack upstream fetch" not in line]
    assert not unnamed
    counted = sum(int(line.split("[")[1].split("]")[0]) for line in skips)
    assert f"{counted} upstream reference checks skipped: run `mlstack upstream fetch`" in (
        result.stdout
    )
