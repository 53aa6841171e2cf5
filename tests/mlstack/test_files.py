"""Outputs (issue 26, items 12 and 13): only regular files are written, atomically, through
a symlink to one; every failure names the path and leaves nothing behind."""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlstack import files
from mlstack.cli import main
from mlstack.errors import MlstackError, UsageError
from stacks.config import PROJECT_ROOT


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for stack in ("dev", "prod"):
        shutil.copy(PROJECT_ROOT / f"Pulumi.{stack}.yaml", tmp_path)
    return tmp_path


@pytest.fixture
def no_synth(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused --out must fail before the synth runs."""
    import mlstack.synth

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("synthesized before checking --out")

    monkeypatch.setattr(mlstack.synth, "synth_config", refuse)


@pytest.fixture
def guard_dev_null(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Never let a test (or the code before this fix) replace, rename or unlink
    ``/dev/null``: every such call aimed at it raises instead of reaching the kernel."""
    real_replace, real_rename, real_unlink = os.replace, os.rename, os.unlink

    def aimed_at_dev_null(path: object) -> bool:
        return os.path.realpath(os.fspath(path)) == os.devnull  # type: ignore[arg-type]

    def guarded(real: Callable[..., None]) -> Callable[..., None]:
        def call(*args: object, **kwargs: object) -> None:
            if any(aimed_at_dev_null(a) for a in args if isinstance(a, str | os.PathLike)):
                raise AssertionError(f"{real.__name__} aimed at {os.devnull}: {args}")
            real(*args, **kwargs)

        return call

    monkeypatch.setattr(os, "replace", guarded(real_replace))
    monkeypatch.setattr(os, "rename", guarded(real_rename))
    monkeypatch.setattr(os, "unlink", guarded(real_unlink))
    before = Path(os.devnull).stat()
    yield
    after = Path(os.devnull).stat()
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


@contextmanager
def fifo_with_reader(path: Path) -> Iterator[Path]:
    """A FIFO with its read end held open (non-blocking), so a writer's ``open`` returns
    at once instead of waiting for a reader (the code before the fix hung there, or with
    a reader replaced the FIFO by a regular file)."""
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        yield path
    finally:
        os.close(reader)


def _plan(project: Path, out: Path | str) -> int:
    return main(["plan", "dev", "--root", str(project), "--out", str(out)])


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0] and "rerun with --debug" not in err[0], err
    return err[0]


# ----------------------------------------------------------------------- item 12


def test_plan_out_onto_a_fifo_exits_2_naming_it_and_leaves_it_a_fifo(
    project: Path, no_synth: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with fifo_with_reader(project / "pipe") as fifo:
        assert _plan(project, fifo) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: --out {fifo}: is a FIFO") and "regular file" in line
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_plan_out_onto_dev_null_exits_2_and_never_replaces_the_device(
    project: Path, no_synth: None, guard_dev_null: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _plan(project, os.devnull) == 2
    line = _one_error_line(capsys)
    assert f"--out {os.devnull}: is a character device" in line


def test_plan_out_through_a_symlink_to_a_fifo_exits_2_and_keeps_the_link(
    project: Path, no_synth: None, capsys: pytest.CaptureFixture[str]
) -> None:
    link = project / "plan.json"
    with fifo_with_reader(project / "pipe") as fifo:
        link.symlink_to(fifo)
        assert _plan(project, link) == 2
    line = _one_error_line(capsys)
    assert f"--out {link}: a symlink to {fifo}, which is a FIFO" in line
    assert link.is_symlink() and stat.S_ISFIFO(fifo.lstat().st_mode)


@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_plan_out_onto_a_symlink_that_leads_nowhere_exits_2(
    project: Path, no_synth: None, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    link = project / "plan.json"
    if kind == "dangling":
        link.symlink_to(project / "missing" / "plan.json")
    else:
        link.symlink_to(link)
    assert _plan(project, link) == 2
    assert f"--out {link}: a symlink that leads nowhere" in _one_error_line(capsys)
    assert link.is_symlink()


def test_plan_out_through_a_symlink_to_a_regular_file_writes_the_file_and_keeps_the_link(
    project: Path,
) -> None:
    real = project / "plans" / "dev.json"
    real.parent.mkdir()
    real.write_text("old\n")
    link = project / "plan.json"
    link.symlink_to(real)
    assert _plan(project, link) == 0
    assert link.is_symlink() and link.resolve() == real
    assert real.read_text().startswith("{")


def test_write_atomic_refuses_a_directory_and_a_socket(tmp_path: Path) -> None:
    import socket

    with pytest.raises(UsageError, match=r"--out .*: is a directory"):
        files.write_atomic(tmp_path, "x")
    sock_path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(UsageError, match=r"is a socket"):
            files.write_atomic(sock_path, "x")


# ----------------------------------------------------------------------- item 13


def _no_temp_left(directory: Path) -> None:
    left = [p.name for p in directory.iterdir() if p.name.endswith(files.TEMP_SUFFIX)]
    assert left == [], left


def test_a_full_disk_leaves_the_old_file_no_partial_and_names_the_path(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = project / "plan.json"
    out.write_text("previous plan\n")
    real_fsync = os.fsync

    def full(fd: int) -> None:  # the write was buffered; the disk fills on the flush
        if stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    assert _plan(project, out) == 1  # the operation failed, not the usage
    line = _one_error_line(capsys)
    assert f"--out {out}: could not be written (No space left on device)" in line
    assert out.read_text() == "previous plan\n"
    _no_temp_left(project)


def test_a_write_error_removes_the_directories_it_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def short_write(*_args: object) -> int:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", short_write)
    out = tmp_path / "a" / "b" / "plan.json"
    with pytest.raises(MlstackError, match=rf"--out {out}: could not be written"):
        files.write_atomic(out, "x")
    assert list(tmp_path.iterdir()) == []


def test_write_atomic_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    out.write_text("old")
    out.chmod(0o640)
    files.write_atomic(out, "new")
    assert out.read_text() == "new" and stat.S_IMODE(out.stat().st_mode) == 0o640


def test_review_out_is_written_atomically_never_in_place(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`review --out`: the report appears whole or not at all (a reader never sees a
    0-byte or truncated report): the file object written to is never the target."""
    from mlstack.review import review as review_module

    out = tmp_path / "review.md"
    out.write_text("previous report\n")

    class Result:
        markdown = "# report\n" + "x" * 100_000
        diffs: list[object] = []
        ok = True
        problems: list[str] = []

    monkeypatch.setattr(review_module, "run_review", lambda *_a, **_k: Result())
    written: list[str] = []
    real_fdopen = os.fdopen

    def spy(fd: int, *args: object, **kwargs: object) -> object:
        written.append(str(Path(f"/proc/self/fd/{fd}").readlink()))
        assert out.read_text() == "previous report\n"  # untouched while writing
        return real_fdopen(fd, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fdopen", spy)
    assert main(["review", "--base", "HEAD", "--out", str(out)]) == 0
    assert out.read_text() == Result.markdown
    assert written and all(Path(w) != out for w in written)
    _no_temp_left(tmp_path)


def test_review_out_on_a_full_disk_keeps_the_previous_report(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlstack.review import review as review_module

    out = tmp_path / "review.md"
    out.write_text("previous report\n")

    class Result:
        markdown = "# report\n"
        diffs: list[object] = []
        ok = True
        problems: list[str] = []

    monkeypatch.setattr(review_module, "run_review", lambda *_a, **_k: Result())

    def full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    assert main(["review", "--base", "HEAD", "--out", str(out)]) == 1
    assert f"--out {out}: could not be written" in capsys.readouterr().err
    assert out.read_text() == "previous report\n"
    _no_temp_left(tmp_path)


def _nobody_python() -> list[str] | None:
    """Run Python as ``nobody``: root only, with setpriv and a system Python 3.11 that
    can import the project's virtualenv (the venv's own interpreter may sit in /root)."""
    python = "/usr/bin/python3.11"
    if os.geteuid() != 0 or not shutil.which("setpriv") or not Path(python).exists():
        return None
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python]


@pytest.mark.parametrize("mode", [0o600, 0o500])
def test_an_unwritable_out_exits_2_in_one_line_for_a_user_without_access(mode: int) -> None:
    """As ``nobody``: a directory it cannot search (0600) or write (0500). Before the fix
    the first ended with exit 1 and a raw PermissionError (the cleanup's unlink)."""
    prefix = _nobody_python()
    if prefix is None:
        pytest.skip("needs root, setpriv and /usr/bin/python3.11")
    holder = Path(tempfile.mkdtemp(prefix="mlstack-nobody-"))
    try:
        holder.chmod(0o755)
        shutil.copy(PROJECT_ROOT / "Pulumi.dev.yaml", holder)
        (holder / "Pulumi.dev.yaml").chmod(0o644)
        locked = holder / "locked"
        locked.mkdir(mode=mode)
        out = locked / "plan.json"
        site = next(Path(sys.prefix, "lib").glob("python3.*/site-packages"))
        done = subprocess.run(
            [*prefix, "-m", "mlstack.cli", "plan", "dev", "--root", str(holder), "--out", str(out)],
            env={
                "PATH": os.environ["PATH"],
                "HOME": str(holder),
                "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(site)]),
                "PYTHONDONTWRITEBYTECODE": "1",
            },
            cwd=holder,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: --out {out}: cannot write there")
        assert "PermissionError" not in done.stderr
        assert sorted(p.name for p in holder.iterdir()) == ["Pulumi.dev.yaml", "locked"]
    finally:
        shutil.rmtree(holder, ignore_errors=True)


_WRITER = re.compile(r"\.write_(?:text|bytes)\(|open\([^)]*[\"'][wax]b?\+?[\"']")


def test_every_user_facing_writer_goes_through_write_atomic() -> None:
    """No other module writes a user's file by hand: write_text/open('w') appear only in
    internal scratch or cache code listed here."""
    allowed = {
        "mlstack/files.py",
        "mlstack/review/gitrefs.py",  # stack files into a private temp dir
        "mlstack/delivery/environments.py",  # the rollback's environment cache
        "mlstack/delivery/rollback.py",  # a temporary worktree's exclude file
        "mlstack/delivery/promote.py",  # the candidate in a scratch dir (then _replace)
        "mlstack/delivery/verdicts.py",  # ledger records, exclusive create
        "mlstack/model_store/pin.py",  # the candidate in a scratch dir (then _replace)
        "mlstack/model_store/fetch.py",  # the node cache's temp dir
        "mlstack/model_store/node_cache.py",  # the node cache
        "mlstack/model_store/push.py",  # open-upload records in the temp directory
        "mlstack/upstream.py",  # a private staging directory, swapped in whole
    }
    found = []
    for path in sorted((PROJECT_ROOT / "mlstack").rglob("*.py")):
        relative = path.relative_to(PROJECT_ROOT).as_posix()
        text = path.read_text()
        if relative not in allowed and _WRITER.search(text):
            found.append(relative)
    assert found == []
