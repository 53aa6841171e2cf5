"""A broken stack file gets an error naming the real problem (exit 2), not its symptoms."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mlstack.cli import main
from stacks.config import PROJECT_ROOT

DEV_TEXT = (PROJECT_ROOT / "Pulumi.dev.yaml").read_text()
COMMANDS = ["validate", "plan"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(PROJECT_ROOT / "Pulumi.prod.yaml", tmp_path)
    return tmp_path


def _one_error(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines and lines[0].startswith("error: "), captured.err
    return captured.err


# --------------------------------------------------------------------------- empty, no config:


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    "text", ["", "\n\n", "# only a comment\n"], ids=["empty", "blank", "comment"]
)
def test_an_empty_stack_file_says_so(
    project: Path, capsys: pytest.CaptureFixture[str], command: str, text: str
) -> None:
    """Today: four "required key is missing" lines and no word of the empty file."""
    (project / "Pulumi.dev.yaml").write_text(text)
    err = _one_error(capsys, [command, "dev", "--root", str(project)])
    assert "Pulumi.dev.yaml" in err and "the file is empty" in err
    assert "required key is missing" not in err
    assert not (project / "build").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_a_misspelt_config_key_is_named_with_a_did_you_mean(
    project: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """Today: four "required key is missing" lines; `conifg:` is never named."""
    (project / "Pulumi.dev.yaml").write_text(DEV_TEXT.replace("\nconfig:\n", "\nconifg:\n"))
    err = _one_error(capsys, [command, "dev", "--root", str(project)])
    assert "no config: mapping; did you mean conifg?" in err
    assert "allowed: config, " in err
    assert "required key is missing" not in err


def test_a_file_without_any_config_like_key_lists_what_it_has(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "Pulumi.dev.yaml").write_text("secretsprovider: passphrase\n")
    err = _one_error(capsys, ["validate", "dev", "--root", str(project)])
    assert "no config: mapping; top-level keys here: secretsprovider" in err
    assert "did you mean" not in err


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("config:\n", "config: is empty"),
        ("config: [a, b]\n", "config: is list, not a mapping"),
        ("- config\n", "the file holds a list"),
        ("just text\n", "the file holds a single value"),
    ],
    ids=["empty-config", "config-list", "file-list", "file-scalar"],
)
def test_a_config_that_is_not_a_mapping_says_what_it_is(
    project: Path, capsys: pytest.CaptureFixture[str], text: str, said: str
) -> None:
    (project / "Pulumi.dev.yaml").write_text(text)
    err = _one_error(capsys, ["validate", "dev", "--root", str(project)])
    assert said in err and "required key is missing" not in err


# --------------------------------------------------------------------------- not a file

NOT_A_FILE = {
    "directory": (lambda p: p.mkdir(), "is a directory, not a file"),
    "symlink-loop": (lambda p: p.symlink_to(p.name), "is a symbolic link loop"),
    "dangling-symlink": (
        lambda p: p.symlink_to("Pulumi.gone.yaml"),
        "is a symbolic link to Pulumi.gone.yaml, which does not exist",
    ),
    "fifo": (os.mkfifo, "is a named pipe (FIFO), not a file"),
}


@pytest.mark.parametrize("command", [*COMMANDS, "policy", "cost"])
@pytest.mark.parametrize("kind", NOT_A_FILE)
def test_a_stack_file_that_is_not_a_file_says_what_it_is(
    project: Path, capsys: pytest.CaptureFixture[str], command: str, kind: str
) -> None:
    """Today: "no stack file ...; stacks here: dev" (or "unknown stack(s) dev")."""
    make, said = NOT_A_FILE[kind]
    path = project / "Pulumi.dev.yaml"
    make(path)
    err = _one_error(capsys, [command, "dev", "--root", str(project)])
    assert f"{path} {said}" in err
    assert "stacks here" not in err and "unknown stack" not in err


def test_stacks_here_lists_only_stack_files(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "Pulumi.dev.yaml").mkdir()
    err = _one_error(capsys, ["validate", "qa", "--root", str(project)])
    assert "stacks here: prod" in err


# --------------------------------------------------------------------------- unquoted scalars


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unquoted_date_in_a_text_key_says_quote_it(
    project: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """Today: 'should be a valid string (got "2025-06-02")', no hint. Under the engine the
    program would get "2025-06-02 00:00:00 +0000 UTC" (pulumi
    ``sdk/go/common/resource/config/object.go`` ``unmarshalObject``, case ``time.Time``)."""
    text = DEV_TEXT.replace('artifactVersion: "2025-06-02"', "artifactVersion: 2025-06-02", 1)
    assert text != DEV_TEXT
    (project / "Pulumi.dev.yaml").write_text(text)
    err = _one_error(capsys, [command, "dev", "--root", str(project)])
    assert "mlstack:models[0].artifactVersion" in err
    assert 'unquoted, YAML reads this as a date: quote it, e.g. "2025-06-02"' in err


UNQUOTED = {
    "number": (
        "costCenter: ml-research",
        "costCenter: 1.10",
        "mlstack:tags.costCenter",
        'a number (1.10 reads as 1.1, 010 as 8): quote it, e.g. "1.1"',
    ),
    "boolean": (
        "mlstack:owner: ml-platform@example.com",
        "mlstack:owner: yes",
        "mlstack:owner",
        'a boolean (true/false/yes/no/on/off): quote it, e.g. "true"',
    ),
    "timestamp": (
        "costCenter: ml-research",
        "costCenter: 2025-06-02T10:00:00Z",
        "mlstack:tags.costCenter",
        "a timestamp: quote it",
    ),
}


@pytest.mark.parametrize("case", UNQUOTED)
def test_an_unquoted_number_boolean_or_timestamp_in_a_text_key_says_quote_it(
    project: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    old, new, key, said = UNQUOTED[case]
    assert old in DEV_TEXT
    (project / "Pulumi.dev.yaml").write_text(DEV_TEXT.replace(old, new, 1))
    err = _one_error(capsys, ["validate", "dev", "--root", str(project)])
    assert f"{key}: " in err and said in err


def test_an_unknown_top_level_key_is_refused_with_a_did_you_mean(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review finding: `secretprovider:` (a typo) validated, and the engine would have used
    no secrets provider at all."""
    text = DEV_TEXT.replace("secretsprovider:", "secretprovider:", 1)
    assert text != DEV_TEXT
    (project / "Pulumi.dev.yaml").write_text(text)
    err = _one_error(capsys, ["validate", "dev", "--root", str(project)])
    assert "secretprovider" in err and "did you mean secretsprovider?" in err
