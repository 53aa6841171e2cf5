"""Bake verdicts: the ledger (a directory and moto S3), the rules, ``history``'s BAKE column
and ``rollback --to last-good`` (git for real, the STAND-IN ``pulumi`` from conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from mlstack.cli import main
from mlstack.delivery.history import parse_history
from mlstack.delivery.verdicts import (
    BakeRecord,
    FileLedger,
    S3Ledger,
    Verdict,
    default_ledger,
    last_good,
    verdicts_for,
)
from tests.mlstack.delivery.conftest import (
    DeployRepo,
    StandInPulumi,
    StandInPython,
    history_entry,
)
from tests.mlstack.delivery.test_rollback import RecordingDiff, diff  # noqa: F401 (fixture)

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def record(stack: str, version: int, commit: str | None, verdict: Verdict, n: int = 0):
    return BakeRecord(
        stack=stack,
        version=version,
        commit=commit,
        verdict=verdict,
        started_at=T0 + timedelta(minutes=n),
        finished_at=T0 + timedelta(minutes=n + 5),
        minutes=5,
    )


SHA = {v: f"{v:x}" * 40 for v in range(1, 8)}


def test_verdict_rules_failure_is_sticky_and_foreign_records_do_not_count() -> None:
    history = parse_history([history_entry(v, SHA[v][:40]) for v in (1, 2, 3, 4)])
    records = [
        record("dev", 1, SHA[1][:40], "passed"),
        record("dev", 2, SHA[2][:40], "failed"),
        record("dev", 2, SHA[2][:40], "passed", n=10),  # a later clean bake does not launder it
        record("prod", 3, SHA[3][:40], "passed"),  # another stack's
        record("dev", 4, SHA[1][:40], "passed"),  # names a commit v4 did not run
    ]
    verdicts = verdicts_for("dev", history, records)
    assert dict(verdicts.by_version) == {1: "passed", 2: "failed"}
    assert len(verdicts.mismatched) == 2
    assert verdicts.of(3) is None
    assert verdicts.of(4) is None


def test_an_inconclusive_bake_is_neither_passed_nor_last_good() -> None:
    """A bake where the new version served nothing (verdict inconclusive) is recorded, and
    never makes its update last good."""
    history = parse_history([history_entry(v, SHA[v][:40]) for v in (1, 2, 3)])
    records = [
        record("dev", 1, SHA[1][:40], "passed"),
        record("dev", 2, SHA[2][:40], "inconclusive"),
    ]
    verdicts = verdicts_for("dev", history, records)
    assert dict(verdicts.by_version) == {1: "passed", 2: "inconclusive"}
    good = last_good(history, verdicts)
    assert good is not None and good.version == 1


def test_after_a_failed_update_last_good_is_the_passed_update_it_failed_to_replace() -> None:
    """`pulumi up` of version 3 failed: the stack is between states, and redeploying
    version 2 (passed, still the newest successful update) is the rollback."""
    entries = [
        history_entry(1, SHA[1][:40]),
        history_entry(2, SHA[2][:40]),
        history_entry(3, SHA[3][:40], result="failed"),
    ]
    history = parse_history(entries)
    records = [record("dev", v, SHA[v][:40], "passed") for v in (1, 2)]
    good = last_good(history, verdicts_for("dev", history, records))
    assert good is not None and good.version == 2


def test_last_good_skips_the_current_unbaked_failed_and_dirty_updates() -> None:
    entries = [
        history_entry(1, SHA[1][:40]),
        history_entry(2, SHA[2][:40], dirty=True),
        history_entry(3, SHA[3][:40], result="failed"),
        history_entry(4, SHA[4][:40]),  # unbaked
        history_entry(5, SHA[5][:40]),  # failed its bake
        history_entry(6, SHA[6][:40]),  # deployed now, passed
    ]
    history = parse_history(entries)
    records = [record("dev", v, SHA[v][:40], "passed") for v in (1, 2, 3, 6)]
    records.append(record("dev", 5, SHA[5][:40], "failed"))
    verdicts = verdicts_for("dev", history, records)
    good = last_good(history, verdicts)
    assert good is not None and good.version == 1
    assert last_good(history, verdicts_for("dev", history, [])) is None


def test_file_and_s3_ledgers_round_trip_and_never_overwrite(
    tmp_path: Path, moto_reset: str, aws_env: None
) -> None:
    one = record("dev", 3, SHA[3][:40], "passed")
    files = FileLedger(tmp_path / "ledger")
    files.put(one)
    with pytest.raises(FileExistsError):
        files.put(one)
    assert files.records("dev") == [one]
    assert files.records("prod") == []

    boto3.client("s3", region_name="us-east-1", endpoint_url=moto_reset).create_bucket(
        Bucket="state"
    )
    s3 = S3Ledger("state", ".mlstack/bakes/mlstack/", "us-east-1", moto_reset)
    where = s3.put(one)
    assert where == f"s3://state/.mlstack/bakes/mlstack/dev/00000003/{one.key().split('/')[-1]}"
    assert s3.records("dev") == [one]


def test_default_ledger_lives_next_to_the_state() -> None:
    s3 = default_ledger("mlstack", {"PULUMI_BACKEND_URL": "s3://acme-state?region=us-west-2"})
    assert isinstance(s3, S3Ledger)
    assert (s3.bucket, s3.prefix, s3.region) == (
        "acme-state",
        ".mlstack/bakes/mlstack/",
        "us-west-2",
    )
    local = default_ledger("mlstack", {"PULUMI_BACKEND_URL": "file:///srv/state"})
    assert isinstance(local, FileLedger)
    assert local.root == Path("/srv/state/.mlstack/bakes/mlstack")
    assert default_ledger("mlstack", {"PULUMI_BACKEND_URL": "https://api.pulumi.com"}) is None
    override = default_ledger(
        "mlstack", {"MLSTACK_BAKE_LEDGER": "file:///x", "PULUMI_BACKEND_URL": "s3://b"}
    )
    assert isinstance(override, FileLedger) and override.root == Path("/x")


# --------------------------------------------------------------------------- CLI


def _last_good(repo: DeployRepo) -> int:
    return main(["rollback", "dev", "--to", "last-good", "--yes", "--root", str(repo.root)])


@pytest.fixture
def baked_dev(
    deploy_repo: DeployRepo,
    standin_pulumi: StandInPulumi,
    standin_python: StandInPython,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> DeployRepo:
    """dev: v1 dev-1 passed, v2 dev-2 unbaked, v3 dev-3 bake failed, v4 dev-4 (now) failed;
    prod v1 passed. Ledger: a directory through $MLSTACK_BAKE_LEDGER."""
    c = deploy_repo.commits
    standin_pulumi.set_history("dev", [history_entry(v, c[f"dev-{v}"]) for v in (1, 2, 3, 4)])
    standin_pulumi.set_history("prod", [history_entry(1, c["prod-only"])])
    ledger = FileLedger(tmp_path / "ledger")
    ledger.put(record("dev", 1, c["dev-1"], "passed"))
    ledger.put(record("dev", 3, c["dev-3"], "failed"))
    ledger.put(record("dev", 4, c["dev-4"], "failed"))
    ledger.put(record("prod", 1, c["prod-only"], "passed"))
    monkeypatch.setenv("MLSTACK_BAKE_LEDGER", f"file://{ledger.root}")
    return deploy_repo


def test_history_shows_the_bake_column(
    baked_dev: DeployRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "dev", "--root", str(baked_dev.root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[header.index("BAKE") - 1] == "BRANCH"
    column = {line.split()[0]: line.split()[header.index("BAKE")] for line in lines[1:]}
    assert column == {"4": "failed", "3": "failed", "2": "-", "1": "passed"}


def test_rollback_to_last_good_picks_the_newest_passed_update_of_this_stack(
    baked_dev: DeployRepo,
    standin_pulumi: StandInPulumi,
    diff: RecordingDiff,  # noqa: F811
) -> None:
    assert _last_good(baked_dev) == 0
    [up] = standin_pulumi.calls_of("up")
    assert up["head"] == baked_dev.commits["dev-1"]  # not v2 (unbaked), not v3 (failed)
    assert "to version 1 (commit" in up["args"][5]


@pytest.mark.parametrize(
    ("target", "code", "expected"),
    [
        ("3", 1, "version 3 of stack dev failed its bake"),
        ("2", 1, "version 2 of stack dev was never baked"),
    ],
)
def test_rollback_refuses_failed_and_unbaked_targets(
    *,
    baked_dev: DeployRepo,
    standin_pulumi: StandInPulumi,
    diff: RecordingDiff,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    target: str,
    code: int,
    expected: str,
) -> None:
    assert main(["rollback", "dev", "--to", target, "--yes", "--root", str(baked_dev.root)]) == code
    assert expected in capsys.readouterr().err
    assert standin_pulumi.calls_of("up") == []


def test_allow_unbaked_accepts_an_unbaked_target_but_never_a_failed_one(
    baked_dev: DeployRepo,
    standin_pulumi: StandInPulumi,
    diff: RecordingDiff,  # noqa: F811
) -> None:
    root = ["--root", str(baked_dev.root)]
    assert main(["rollback", "dev", "--to", "3", "--yes", "--allow-unbaked", *root]) == 1
    assert main(["rollback", "dev", "--to", "2", "--yes", "--allow-unbaked", *root]) == 0
    [up] = standin_pulumi.calls_of("up")
    assert up["head"] == baked_dev.commits["dev-2"]


def test_last_good_without_a_ledger_is_a_usage_error(
    baked_dev: DeployRepo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MLSTACK_BAKE_LEDGER")
    assert _last_good(baked_dev) == 2
    assert "--to last-good needs the stack history" in capsys.readouterr().err


def test_no_passed_bake_left_refuses_last_good(
    baked_dev: DeployRepo,
    standin_pulumi: StandInPulumi,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    empty = tmp_path / "empty-ledger"
    empty.mkdir()
    monkeypatch.setenv("MLSTACK_BAKE_LEDGER", f"file://{empty}")
    assert _last_good(baked_dev) == 1
    assert "has no earlier update whose bake passed" in capsys.readouterr().err
    assert standin_pulumi.calls_of("up") == []
