"""Every boto3 client mlstack builds has bounded timeouts and retries; a silent endpoint
fails with one line naming it instead of hanging."""

from __future__ import annotations

import ast
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlstack import aws
from mlstack.cli import main
from mlstack.errors import UsageError
from mlstack.model_store.s3 import make_client

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A TCP port that completes the handshake (listen backlog) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch, aws_env: None) -> None:
    monkeypatch.setenv(aws.READ_ENV, "0.5")
    monkeypatch.setenv(aws.CONNECT_ENV, "0.5")
    monkeypatch.setenv(aws.ATTEMPTS_ENV, "2")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize(
    "command",
    [
        ["model", "list", "--bucket", "b-models"],
        ["model", "verify", "--name", "m", "--version", "v1", "--bucket", "b-models"],
        ["model", "push", "{dir}", "--name", "m", "--version", "v1", "--bucket", "b-models"],
        ["bootstrap", "--bucket", "b-state", "--region", "us-east-1"],
    ],
    ids=["list", "verify", "push", "bootstrap"],
)
def test_a_silent_endpoint_fails_with_one_line_naming_it(
    command: list[str],
    silent_endpoint: str,
    short_timeouts: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "w.bin").write_bytes(b"x")
    args = [a.replace("{dir}", str(tmp_path)) for a in command]
    extra = ["--no-progress"] if command[0] == "model" and command[1] != "list" else []

    code = main([*args, "--endpoint-url", silent_endpoint, *extra])

    err = capsys.readouterr().err.strip()
    assert code == 1
    assert len(err.splitlines()) == 1, err
    assert silent_endpoint in err
    assert "did not answer within 0.5 s (2 attempts)" in err
    assert "Traceback" not in err


def test_clients_carry_the_timeouts_and_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv(aws.READ_ENV, "7")
    config = make_client("http://127.0.0.1:9", "us-east-1").meta.config
    assert config.connect_timeout == aws.Timeouts().connect_seconds
    assert config.read_timeout == 7
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}  # first included


def test_defaults_are_bounded() -> None:
    timeouts = aws.Timeouts()
    worst = timeouts.max_attempts * (timeouts.connect_seconds + timeouts.read_seconds)
    assert worst <= 120  # a silent endpoint fails within about two minutes, not ten


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        (aws.READ_ENV, "soon", "a number of seconds"),
        (aws.READ_ENV, "0", "a number of seconds"),
        (aws.CONNECT_ENV, "-1", "a number of seconds"),
        (aws.ATTEMPTS_ENV, "0", "an integer from 1 to 10"),
        (aws.ATTEMPTS_ENV, "many", "an integer from 1 to 10"),
    ],
)
def test_bad_overrides_are_usage_errors_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(UsageError) as failure:
        aws.Timeouts.from_env()
    assert f"${env}={value!r}" in str(failure.value) and expected in str(failure.value)


def _client_calls(path: Path) -> list[int]:
    """Lines calling ``<something>.client(...)`` or ``boto3.client(...)``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("client", "resource")
    ]


def test_every_boto3_client_in_the_tools_is_built_through_mlstack_aws() -> None:
    """A sibling check: no module builds a client around the timeouts."""
    offenders = {
        str(path.relative_to(ROOT)): lines
        for path in sorted((ROOT / "mlstack").rglob("*.py"))
        if path.name != "aws.py" and (lines := _client_calls(path))
    }
    assert offenders == {}
