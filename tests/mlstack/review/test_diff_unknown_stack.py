"""`mlstack diff prdo --base HEAD` (a typo) is a usage error, not "no changes"."""

from __future__ import annotations

import pytest

from mlstack.cli import main
from tests.mlstack.review.conftest import Repo


def test_a_stack_on_neither_side_exits_2(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "prdo", "--base", "HEAD", "--root", str(repo.root)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "unknown stack(s) prdo" in lines[0], captured.err
    assert "stacks here: dev, prod" in lines[0]
    assert "no changes" not in captured.out


def test_a_stack_that_exists_on_one_side_is_diffed(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diff", "dev", "--base", repo.first, "--root", str(repo.root)]) == 0
    assert "stack dev:" in capsys.readouterr().out
