"""Every file mlstack writes for the user goes through :func:`write_atomic`.

Rules (one place, so every ``--out``, schema, report and stack-file edit follows them):

- only regular files are written: an existing path that is anything else (a device, a
  FIFO, a socket, a directory, a dangling symlink or one to any of those) is refused
  with a :class:`~mlstack.errors.UsageError` naming it (exit 2); nothing is written;
- a symlink to a regular file is written *through*: the file it points to gets the new
  content, the link stays (``model pin`` on a linked stack file);
- the content goes to a temp file in the same directory, is flushed and fsynced, then
  renamed over the target (``os.replace``), and the directory is fsynced: a reader, a
  full disk, a crash or a Ctrl-C never leaves a partial or empty target;
- on any failure the temp file (and any directory this call created) is removed, and
  the error names the path: exit 2 when the place cannot be written (permissions, a
  read-only file system, a file where a directory should be), exit 1 otherwise (a full
  disk, an I/O error).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from mlstack import interrupt
from mlstack.errors import MlstackError, UsageError

TEMP_SUFFIX = ".partial"
_USAGE_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ENAMETOOLONG,
        errno.ELOOP,
    }
)
"""Write failures that mean "that place cannot be written" (the user picks another)."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def real_target(path: Path, what: str) -> Path:
    """The regular file ``path`` names (through symlinks), or where a new one will go.

    Raises :class:`UsageError` (``{what} {path}: ...``) for an existing non-regular file,
    a dangling or looping symlink, or a parent that is not a directory."""
    shown = f"{what} {path}" if what else str(path)
    try:
        info = path.lstat()
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise UsageError(f"{shown}: cannot write there ({exc.strerror or exc})") from None
    target = path
    if info is not None and stat.S_ISLNK(info.st_mode):
        try:
            target = Path(os.path.realpath(path, strict=True))
        except (OSError, RuntimeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise UsageError(
                f"{shown}: a symlink that leads nowhere ({reason}); only regular files are written"
            ) from None
        info = target.stat()
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(
                f"{shown}: a symlink to {target}, which is {_kind(info.st_mode)}; only regular "
                "files are written"
            )
        return target
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise UsageError(
            f"{shown}: is {_kind(info.st_mode)}; only regular files are written (give a file path)"
        )
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UsageError(f"{shown}: {blocking} is a file, not a directory")
    return target


def check_writable(path: Path, what: str = "--out") -> None:
    """Fail before any work when ``path`` cannot be written: exit 2, nothing created."""
    target = real_target(path, what)
    try:
        existing = next(p for p in (target.parent, *target.parent.parents) if p.exists())
        present = target.exists()
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot write there ({exc.strerror or exc})") from None
    if not os.access(existing, os.W_OK | os.X_OK) or (present and not os.access(target, os.W_OK)):
        denied = target if present else existing
        raise UsageError(f"{what} {path}: cannot write there ({denied}: permission denied)")


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _error(exc: OSError, shown: str) -> MlstackError:
    reason = exc.strerror or str(exc)
    if exc.errno in _USAGE_ERRNOS:
        return UsageError(f"{shown}: cannot write there ({reason})")
    return MlstackError(f"{shown}: could not be written ({reason}); it is unchanged")


def write_atomic(path: Path, content: str | bytes, *, what: str = "--out") -> Path:
    """Replace (or create) the regular file ``path`` with ``content`` atomically.

    Returns the file written (the symlink's target when ``path`` is a link to one).
    ``what`` names the option or role in messages (``--out``, ``stack file``)."""
    shown = f"{what} {path}" if what else str(path)
    target = real_target(path, what)
    data = content.encode("utf-8") if isinstance(content, str) else content
    created = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    temp: Path | None = None

    def undo() -> None:
        if temp is not None:
            temp.unlink(missing_ok=True)
        for directory in created:  # deepest first
            with contextlib.suppress(OSError):
                directory.rmdir()

    with interrupt.cleanup(undo):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                mode = stat.S_IMODE(target.stat().st_mode)
            except FileNotFoundError:
                mode = 0o666 & ~_umask()
            handle, name = tempfile.mkstemp(
                prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent
            )
            temp = Path(name)
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            temp.chmod(mode)
            temp.replace(target)  # os.replace: atomic within the directory
            temp = None
            _fsync_dir(target.parent)
        except OSError as exc:
            undo()
            raise _error(exc, shown) from None
        except BaseException:
            undo()
            raise
    return target


def append_atomic(path: Path, text: str, *, what: str) -> Path:
    """Append ``text`` to the regular file ``path`` (created when absent), atomically:
    the old content plus the new, written by :func:`write_atomic`."""
    target = real_target(path, what)
    try:
        old = target.read_bytes() if target.exists() else b""
    except OSError as exc:
        raise _error(exc, f"{what} {path}") from None
    return write_atomic(path, old + text.encode("utf-8"), what=what)
