"""``mlstack history``: parsing the CLI's JSON and reading it through the Automation API.

The Pulumi side is the STAND-IN executable from conftest.py (not Pulumi): it
prints canned history in the ``pulumi stack history --json`` shape.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlstack.cli import main
from mlstack.delivery.history import HistoryError, load_history, parse_history, render_table
from tests.mlstack.delivery.conftest import DeployRepo, StandInPulumi, history_entry

SHA_A = "a" * 40
SHA_B = "b" * 40


def test_parses_commit_branch_ci_and_times_from_the_cli_shape() -> None:
    [update] = parse_history([history_entry(3, SHA_A, branch="refs/heads/release")])
    assert update.version == 3
    assert update.commit == SHA_A
    assert update.branch == "release"
    assert update.dirty is False
    assert update.start_time == datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    assert update.end_time == datetime(2026, 11, 3, 10, 5, 30, tzinfo=UTC)
    assert update.to_json()["ci"]["buildUrl"].endswith("/runs/9003")
    assert update.resource_changes == {"same": 40, "update": 3}


def test_sorts_newest_first_and_rejects_repeated_versions() -> None:
    updates = parse_history([history_entry(1, SHA_A), history_entry(5, SHA_B)])
    assert [u.version for u in updates] == [5, 1]
    with pytest.raises(HistoryError, match="repeats a version"):
        parse_history([history_entry(2, SHA_A), history_entry(2, SHA_B)])


def test_in_progress_entry_without_end_time_and_entry_outside_git() -> None:
    entry = history_entry(7, None, ci=False)
    del entry["endTime"]
    del entry["resourceChanges"]
    entry["result"] = "in-progress"
    [update] = parse_history([entry])
    assert update.end_time is None
    assert update.commit is None
    assert update.branch is None
    assert update.resource_changes == {}


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ({"kind": "update"}, "without 'version'"),
        ({"version": "3", "kind": "update"}, "non-integer version"),
        ({"version": 3, "kind": "update", "startTime": "yesterday"}, "unreadable time"),
    ],
)
def test_malformed_entries_are_named(broken: dict[str, object], message: str) -> None:
    with pytest.raises(HistoryError, match=message):
        parse_history([broken])


def test_table_shows_short_commit_branch_and_marks_dirty_checkouts() -> None:
    updates = parse_history(
        [
            history_entry(1, SHA_A, message="first\n deploy"),
            history_entry(2, SHA_B, dirty=True, branch="refs/heads/hotfix"),
            history_entry(3, SHA_B, kind="refresh"),
        ]
    )
    lines = render_table(updates).splitlines()
    assert lines[0].split() == [
        "VERSION",
        "STARTED",
        "(UTC)",
        "KIND",
        "RESULT",
        "COMMIT",
        "BRANCH",
        "MESSAGE",
    ]
    assert lines[1].split()[:6] == ["3", "2026-11-03", "10:00", "refresh", "succeeded", "b" * 12]
    assert lines[2].split()[5:7] == ["b" * 12 + "*", "hotfix"]
    assert lines[3].endswith("first deploy")
    assert lines[-1].startswith("* ran from a checkout with uncommitted changes")


def test_load_history_pages_through_the_automation_api(
    standin_pulumi: StandInPulumi, deploy_repo: DeployRepo
) -> None:
    # 230 entries: three pages of 100 through the stand-in.
    entries = [history_entry(v, SHA_A) for v in range(1, 231)]
    for entry in entries:
        entry["startTime"] = "2026-11-01T10:00:00.000Z"
        entry["endTime"] = "2026-11-01T10:01:00.000Z"
    standin_pulumi.set_history("dev", entries)

    updates = load_history("dev", deploy_repo.root)

    assert [u.version for u in updates] == list(range(230, 0, -1))
    pages = standin_pulumi.calls_of("stack", "history")
    assert len(pages) == 3
    for number, call in enumerate(pages, start=1):
        args = call["args"]
        assert args[args.index("--page-size") + 1] == "100"
        assert args[args.index("--page") + 1] == str(number)
        assert args[args.index("--stack") + 1] == "dev"
        assert "--json" in args
        assert "--show-secrets" not in args
        assert Path(call["cwd"]) == deploy_repo.root


def test_unknown_stack_is_one_clear_error(
    standin_pulumi: StandInPulumi, deploy_repo: DeployRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["history", "staging", "--root", str(deploy_repo.root)])
    err = capsys.readouterr().err
    assert code == 1
    assert "could not read the history of stack 'staging'" in err
    assert len(err.strip().splitlines()) == 1


def test_cli_json_output(
    standin_pulumi: StandInPulumi, deploy_repo: DeployRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    standin_pulumi.set_history(
        "dev", [history_entry(1, SHA_A), history_entry(2, SHA_B, result="failed")]
    )
    code = main(["history", "dev", "--json", "--root", str(deploy_repo.root)])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(d["version"], d["result"], d["commit"]) for d in data] == [
        (2, "failed", SHA_B),
        (1, "succeeded", SHA_A),
    ]
    assert data[0]["branch"] == "main"
    assert data[0]["startTime"] == "2026-11-02T10:00:00Z"


def test_cli_limit_and_history_file_need_no_cli(
    no_pulumi: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "history.json"
    saved.write_text(json.dumps([history_entry(v, SHA_A) for v in (1, 2, 3)]))
    code = main(["history", "dev", "--history-file", str(saved), "--limit", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [line.split()[0] for line in lines[1:]] == ["3", "2"]


def test_missing_cli_is_one_line_with_install_hint_exit_2(
    no_pulumi: None, deploy_repo: DeployRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["history", "dev", "--root", str(deploy_repo.root)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "needs the Pulumi CLI" in err
    assert "https://get.pulumi.com" in err
