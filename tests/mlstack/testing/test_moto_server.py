"""The one moto-server helper: starts on a free port, resets, stops by PID."""

from __future__ import annotations

import ast
import os
import urllib.request

import boto3
import pytest

from mlstack.testing import moto_server as moto
from stacks.config import PROJECT_ROOT


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_server_answers_resets_and_is_gone_after_exit(aws_env, monkeypatch) -> None:
    started: list[int] = []
    real_popen = moto.subprocess.Popen

    def recording_popen(*args, **kwargs):
        process = real_popen(*args, **kwargs)
        started.append(process.pid)
        return process

    monkeypatch.setattr(moto.subprocess, "Popen", recording_popen)
    with moto.moto_server() as url:
        assert url.startswith("http://127.0.0.1:")
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        s3.create_bucket(Bucket="helper-check")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["helper-check"]
        moto.reset(url)
        assert s3.list_buckets()["Buckets"] == []
        [pid] = started
        assert _alive(pid)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
    assert not _alive(pid)


def test_a_server_that_exits_at_once_is_one_clear_error() -> None:
    with (
        pytest.raises(moto.MotoServerError, match="exited with 1 before answering"),
        moto.moto_server(python="/bin/false"),
    ):
        pass


@pytest.mark.parametrize("path", ["tests/conftest.py", "benchmarks/model_push_bench.py"])
def test_tests_and_benchmarks_start_moto_only_through_the_helper(path: str) -> None:
    tree = ast.parse((PROJECT_ROOT / path).read_text(encoding="utf-8"))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert "subprocess" not in imported
    assert {"mlstack.testing", "mlstack.testing.moto_server"} & imported
