"""Every `mlstack` command line in README.md and docs/*.md names a command and options
that exist, and `--help` shows bracketed defaults as written (not eaten as rich markup)."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer

from mlstack.cli import app, main

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"(?:^|`|\s)(?:\.venv/bin/)?(mlstack (?:[a-z][-\w./<>=:~'\"$\[\] ]*))")


def documented_lines() -> list[tuple[str, str]]:
    """(where, command line) for each `mlstack ...` in a code block or an inline code span."""
    found: list[tuple[str, str]] = []
    for doc in DOCS:
        in_block = False
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("```"):
                in_block = not in_block
                continue
            where = f"{doc.name}:{number}"
            if in_block:
                text = line.split("#")[0].strip().removeprefix(".venv/bin/")
                if text.startswith("mlstack "):
                    found.append((where, text))
            else:
                for span in re.findall(r"`([^`]+)`", line):
                    text = span.strip().removeprefix(".venv/bin/")
                    if text.startswith("mlstack "):
                        found.append((where, text))
    return found


def resolve(words: list[str]) -> tuple[list[str], Any]:
    """The subcommand path the words name, and that (typer's click) command."""
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    for word in words:
        if word not in getattr(command, "commands", {}):
            break
        command = command.commands[word]
        path.append(word)
    return path, command


LINES = documented_lines()


def test_the_docs_show_commands_to_check() -> None:
    assert len(LINES) > 40


@pytest.mark.parametrize(("where", "line"), LINES, ids=[w for w, _ in LINES])
def test_each_documented_command_and_option_exists(where: str, line: str) -> None:
    try:
        words = shlex.split(line.replace("<", "'<").replace(">", ">'"))[1:]
    except ValueError:
        words = line.split()[1:]
    words = [w for w in words if w != "--debug"]  # the global option, anywhere
    if not words or words[0].startswith("-"):
        assert words in ([], ["--version"]) or words[0] in {"--version", "--help"}, where
        return
    path, command = resolve(words)
    assert path, f"{where}: `{line}`: no such mlstack command {words[0]!r}"
    if hasattr(command, "commands"):
        return  # `mlstack model` etc.: a group named in prose
    known = {name for param in command.params for name in param.opts}
    used = {w.split("=")[0] for w in words[len(path) :] if w.startswith("--")}
    assert used <= known | {"--help"}, f"{where}: `{line}`: unknown {sorted(used - known)}"


COMMANDS = sorted(
    {
        tuple(resolve(shlex.split(line.replace("<", "").replace(">", ""))[1:])[0])
        for _, line in LINES
        if not line.split()[1].startswith("-")
    }
    - {()}
)


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_each_documented_command_answers_help(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*path, "--help"]) == 0
    assert "Usage: mlstack" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("command", "bracketed"),
    [
        (["promote"], "[target's output]"),
        (["upstream", "fetch"], "[mlstack/upstream.json]"),
        (["crds", "import"], "[$MLSTACK_CRD_SCHEMAS, else ~/.cache/mlstack/crds]"),
        (["diff"], "[working tree]"),
    ],
)
def test_help_keeps_bracketed_defaults(
    command: list[str], bracketed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--help"]) == 0
    assert bracketed in " ".join(capsys.readouterr().out.split())


def test_documented_diff_revisions_exist() -> None:
    """`--base`/`--against` examples name refs this repository has (or a placeholder)."""
    for where, line in LINES:
        for ref in re.findall(r"--(?:base|against) (\S+)", line):
            if ref.startswith(("<", "origin/", "$")) or re.fullmatch(r"main|HEAD(~\d+)?", ref):
                continue  # exist in any full clone (CI's checkout may be shallow/detached)
            found = subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                capture_output=True,
                check=False,
            )
            assert found.returncode == 0, f"{where}: `{line}`: no git ref {ref!r}"


def test_promote_without_a_bake_ledger_is_a_usage_error_naming_the_ways_to_give_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MLSTACK_BAKE_LEDGER", raising=False)
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    before = (ROOT / "Pulumi.prod.yaml").read_bytes()
    assert main(["promote", "llama-3-8b-instruct", "--root", str(ROOT)]) == 2
    err = capsys.readouterr().err
    for way in (
        "no bake ledger configured",
        "--ledger",
        "MLSTACK_BAKE_LEDGER",
        "PULUMI_BACKEND_URL",
        "--force --reason",
    ):
        assert way in err
    assert (ROOT / "Pulumi.prod.yaml").read_bytes() == before


def test_history_file_is_documented_for_runs_without_the_pulumi_cli(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["rollback", "--help"]) == 0
    assert "instead of running the Pulumi CLI" in " ".join(capsys.readouterr().out.split())
    docs = "\n".join(d.read_text(encoding="utf-8") for d in DOCS)
    assert "--dry-run --history-file" in docs
