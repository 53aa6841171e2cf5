"""The exit-code contract (``mlstack.errors``), command by command (issue 26, item 11):
0 ok, 1 the checked thing or the operation failed, 2 usage or bad input, 130 interrupted.

Bad input gets exit 2 and one line naming the option (or file) and the value, never a
traceback, a bare ``ValueError`` or "rerun with --debug"."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from mlstack import errors
from mlstack.cli import app, main
from mlstack.model_store.cli import model_app
from stacks.config import PROJECT_ROOT


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.prod.yaml"):
        shutil.copy(PROJECT_ROOT / name, tmp_path / name)
    return tmp_path


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("MLSTACK_MODEL_BUCKET", raising=False)


def _usage_error(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    """Run ``mlstack args``: exit 2, a message on stderr, no traceback; returns stderr."""
    capsys.readouterr()
    code = main(args)
    err = capsys.readouterr().err
    assert code == errors.EXIT_USAGE, (code, err)
    assert "Traceback" not in err and "rerun with --debug" not in err, err
    assert "ValueError" not in err and "CalledProcessError" not in err, err
    return err


def test_the_contract_is_written_once_in_mlstack_errors() -> None:
    doc = errors.__doc__ or ""
    for code in ("0", "1", "2", "130"):
        assert f"\n{code} " in doc
    assert (errors.EXIT_OK, errors.EXIT_FAILED, errors.EXIT_USAGE) == (0, 1, 2)
    assert errors.MlstackError.exit_code == 1 and errors.UsageError.exit_code == 2
    from mlstack import interrupt

    assert interrupt.EXIT_CODE == errors.EXIT_INTERRUPTED


# --------------------------------------------------------------------- the attempts


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "-inf", "NaN", "1e308"])
@pytest.mark.parametrize("option", ["--nat-gb-per-month", "--lcu-per-lb"])
def test_cost_refuses_negative_nan_and_infinite_figures(
    project: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    err = _usage_error(capsys, ["cost", "dev", option, value, "--root", str(project)])
    assert option in err and "finite number from 0 to 1e12" in err


@pytest.mark.parametrize(
    "command", [["diff", "dev", "--base", "HEAD"], ["review", "--base", "HEAD"]]
)
def test_max_chars_below_the_minimum_is_a_usage_error(
    project: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    err = _usage_error(capsys, [*command, "--max-chars", "-1", "--root", str(project)])
    assert "--max-chars" in err and "-1" in err and ">=1000" in err


@pytest.mark.parametrize(
    "args",
    [
        ["model", "list", "--bucket", "mlstack-models"],
        ["model", "verify", "--name", "bert", "--version", "v1", "--bucket", "mlstack-models"],
        ["bootstrap", "--bucket", "mlstack-state", "--region", "us-east-1"],
        ["page", "dev", "--subject", "s", "--message", "m", "--root", "{project}"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
@pytest.mark.parametrize("url", ["notaurl", "ftp://host", "http://", "http://h:port"])
def test_a_bad_endpoint_url_is_a_usage_error_not_a_value_error(
    project: Path, fake_aws: None, capsys: pytest.CaptureFixture[str], args: list[str], url: str
) -> None:
    args = [a.replace("{project}", str(project)) for a in args]
    err = _usage_error(capsys, [*args, "--endpoint-url", url])
    assert f"--endpoint-url {url!r}" in err and "http:// or https://" in err


# ------------------------------------------------------ a broken `pulumi` on PATH


STAND_INS = {
    "exits-1": "#!/bin/sh\necho 'error: something broke' >&2\nexit 1\n",
    "prints-garbage": "#!/bin/sh\necho 'hello from a shim'\n",
    "not-a-program": "\x7fELF-but-not-really\n",
}
"""Stand-ins for a broken ``pulumi`` (these are not the Pulumi CLI): one that fails, one
that prints no version, one the kernel cannot execute."""


@pytest.fixture(params=sorted(STAND_INS))
def broken_pulumi(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    stand_in = directory / "pulumi"
    stand_in.write_text(STAND_INS[request.param])
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "no-pulumi-home"))
    return stand_in


def test_history_with_a_broken_pulumi_says_so_in_one_line(
    project: Path, broken_pulumi: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The SDK's ``PulumiCommand.__init__`` runs ``pulumi version`` with ``check_output``
    and parses it (pulumi/automation/_cmd.py; ``_parse_and_validate_pulumi_version``
    raises "This is probably an internal error" for an unparsable answer): a broken CLI
    used to leak ``CalledProcessError`` or that sentence."""
    err = _usage_error(capsys, ["history", "dev", "--root", str(project)])
    assert f"{broken_pulumi} does not work as the Pulumi CLI" in err
    assert "probably an internal error" not in err
    assert len(err.strip().splitlines()) == 1


def test_the_pulumi_version_check_runs_what_the_sdk_runs(broken_pulumi: Path) -> None:
    """What ``PulumiCommand.__init__`` does with the same stand-in: it fails the way our
    message replaces (so the check above is not testing a fiction)."""
    from pulumi import automation as auto
    from pulumi.automation.errors import InvalidVersionError

    with pytest.raises((subprocess.CalledProcessError, InvalidVersionError, OSError)):
        auto.PulumiCommand()


def test_model_list_with_a_stack_and_a_broken_pulumi_is_one_clear_line(
    project: Path, broken_pulumi: Path, fake_aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code = main(["model", "list", "--stack", "dev", "--root", str(project)])
    err = capsys.readouterr().err
    assert code in (1, 2), err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "rerun with --debug" not in err, err


# ------------------------------------------------------------------- every command


def _commands() -> set[str]:
    import typer

    names = set()
    for group, prefix in ((app, ""), (model_app, "model ")):
        click_group = typer.main.get_command(group)
        for name, command in getattr(click_group, "commands", {}).items():
            if name == "model":
                continue
            if hasattr(command, "commands"):  # crds, loader, upstream: their commands
                names |= {f"{prefix}{name} {sub}" for sub in command.commands}
            else:
                names.add(prefix + name)
    return names


BAD_INPUT: dict[str, list[str]] = {
    "validate": ["validate", "prdo", "--root", "{project}"],
    "plan": ["plan", "dev", "--out", "{fifo}", "--root", "{project}"],
    "crds import": ["crds", "import", "{project}/missing.yaml"],
    "loader push": ["loader", "push", "prdo", "--root", "{project}"],
    "upstream fetch": ["upstream", "fetch", "--manifest", "{project}/missing.json"],
    "schema": ["schema", "--out", "{project}"],  # a directory
    "ci-settings": ["ci-settings", "dev", "--github-output", "{fifo}", "--root", "{project}"],
    "diff": ["diff", "dev", "--base", "HEAD", "--out", "{fifo}", "--root", "{project}"],
    "parity": ["parity", "dev", "prdo", "--root", "{project}"],
    "policy": ["policy", "prdo", "--root", "{project}"],
    "cost": ["cost", "dev", "--lcu-per-lb", "nan", "--root", "{project}"],
    "coldstart": ["coldstart", "dev", "--bucket", "b", "--root", "{project}"],
    "review": ["review", "--base", "HEAD", "--out", "{fifo}", "--root", "{project}"],
    "bootstrap": ["bootstrap", "--bucket", "b", "--region", "us-east-1", "--endpoint-url", "x"],
    "history": ["history", "dev", "--history-file", "{project}/missing.json"],
    "bake": ["bake", "dev", "--kind", "nope", "--root", "{project}"],
    "promote": ["promote", "resnet50", "--ledger", "ftp://x", "--root", "{project}"],
    "page": ["page", "dev", "--subject", "s", "--message", "m", "--endpoint-url", "x"],
    "rollback": ["rollback", "dev", "--to", "3", "--dry-run", "--root", "{project}"],
    "preflight": ["preflight", "dev", "--as-of", "someday", "--root", "{project}"],
    "model push": ["model", "push", "{project}", "--name", "Bad", "--version", "v1"],
    "model list": ["model", "list", "--bucket", "b", "--endpoint-url", "notaurl"],
    "model verify": ["model", "verify", "--name", "bert", "--version", "../v1", "--bucket", "b"],
    "model fetch": [
        "model",
        "fetch",
        "--name",
        "b",
        "--version",
        "v1",
        "--cache-dir",
        "{project}",
        "-j",
        "0",
    ],
    "model hold": [
        "model",
        "hold",
        "--name",
        "Bad",
        "--version",
        "v1",
        "--cache-dir",
        "{project}",
        "--ready-file",
        "{project}/r",
    ],
    "model cache-prepare": [
        "model",
        "cache-prepare",
        "--cache-dir",
        "{project}",
        "--owner",
        "0",
        "--group",
        "1",
    ],
    "model pin": ["model", "pin", "prdo", "resnet50", "v1", "--root", "{project}"],
}


def test_every_command_has_a_bad_input_case() -> None:
    assert set(BAD_INPUT) == _commands()


@pytest.mark.parametrize("command", sorted(BAD_INPUT))
def test_bad_input_exits_2_for_every_command(
    project: Path,
    fake_aws: None,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
    command: str,
) -> None:
    fifo = project / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a writer's open never blocks
    request.addfinalizer(lambda: os.close(reader))
    args = [
        a.replace("{project}", str(project)).replace("{fifo}", str(fifo))
        for a in BAD_INPUT[command]
    ]
    _usage_error(capsys, args)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


# ------------------------------------------------- no AWS credentials (issue 26 review)


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credentials anywhere in the boto3 chain (no instance metadata either)."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "MLSTACK_MODEL_BUCKET",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


NEEDS_CREDENTIALS: dict[str, list[str]] = {
    "model push": ["model", "push", "{model}", "--name", "x", "--version", "v1", "--bucket", "bkt"],
    "promote": ["promote", "resnet50", "--ledger", "s3://bkt/p/", "--root", "{project}"],
    "bootstrap": ["bootstrap", "--bucket", "bkt", "--region", "us-east-1"],
    "loader push": ["loader", "push", "dev", "--root", "{repo}"],
    "bake": ["bake", "dev", "--root", "{project}"],
    "preflight": ["preflight", "dev", "--root", "{project}"],
}


@pytest.mark.parametrize("command", sorted(NEEDS_CREDENTIALS))
def test_every_command_that_needs_aws_credentials_exits_2_with_the_howto(
    project: Path,
    no_aws_credentials: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w")
    args = [
        a.replace("{model}", str(model))
        .replace("{project}", str(project))
        .replace("{repo}", str(PROJECT_ROOT))
        for a in NEEDS_CREDENTIALS[command]
    ]
    err = _usage_error(capsys, args)
    assert "no AWS credentials found" in err and "AWS_PROFILE" in err, err
    assert "Unable to locate credentials" not in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_model_push_with_a_stack_and_a_broken_pulumi_exits_2(
    project: Path,
    broken_pulumi: Path,
    fake_aws: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w")
    args = ["model", "push", str(model), "--name", "x", "--version", "v1", "--stack", "dev"]
    err = _usage_error(capsys, [*args, "--root", str(project)])
    assert f"{broken_pulumi} does not work as the Pulumi CLI" in err, err
    assert len(err.strip().splitlines()) == 1, err


HISTORY = [
    {
        "version": version,
        "kind": "update",
        "result": "succeeded",
        "message": "deploy",
        "startTime": f"2024-01-0{version}T00:00:00Z",
        "endTime": f"2024-01-0{version}T00:01:00Z",
        "environment": {"git.head": "0" * 40},
        "resourceChanges": {"same": 1},
    }
    for version in (2, 1)
]


@pytest.mark.parametrize("target", ["-1", "41"])
def test_rollback_to_a_version_the_history_lacks_is_bad_input(
    project: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    target: str,
) -> None:
    import json

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(project)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "stacks"], check=True)
    saved = tmp_path_factory.mktemp("saved") / "history.json"  # outside the checkout
    saved.write_text(json.dumps(HISTORY))
    args = ["rollback", "dev", "--to", target, "--dry-run", "--history-file", str(saved)]
    err = _usage_error(capsys, [*args, "--root", str(project)])
    assert f"--to {target}" in err or f"--to {target!r}" in err, err
    assert "successful updates with a commit" in err, err


# ------------------------------------------- control characters never reach the terminal


def test_printable_escapes_control_characters_only() -> None:
    assert errors.printable("plain text, é and ü") == "plain text, é and ü"
    assert errors.printable("a\x1b]0;PWNED\x07b") == "a\\x1b]0;PWNED\\x07b"
    assert errors.printable("x\ny\r\tz\x9b\u202e") == "x\\x0ay\\x0d\\x09z\\x9b\\u202e"
    assert errors.printable("x\ny\x1b", keep_newlines=True) == "x\ny\\x1b"


def test_a_hostile_file_name_in_a_model_push_error_is_escaped(
    tmp_path: Path, fake_aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "a\x1b]0;PWNED\x07b\nc").write_bytes(b"w")
    args = ["model", "push", str(model), "--name", "x", "--version", "v1", "--bucket", "bkt"]
    err = _usage_error(capsys, args)
    assert "\x1b" not in err and "\x07" not in err, repr(err)
    assert "a\\x1b]0;PWNED\\x07b\\x0ac" in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_the_cli_escapes_control_characters_in_any_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlstack import cli

    def boom(*_args: object, **_kwargs: object) -> None:
        raise errors.MlstackError("bad \x1b[31mred\x07 name\r")

    monkeypatch.setattr(cli, "_load", boom)
    capsys.readouterr()
    code = main(["validate", "dev"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err == "error: bad \\x1b[31mred\\x07 name\\x0d\n", repr(err)
