"""Writing executed notebooks to disk: checked before the run, never half written.

:func:`check_output_path` is called before any kernel starts, so a typo in an output path
costs nothing. :func:`write_notebook_file` writes like ``nbformat.write`` does from the
user's point of view (a new file gets the mode the umask gives, 0644 under umask 022; an
existing file keeps its mode; a symlink stays a symlink and its target is rewritten), but
atomically: the notebook is serialised first, written to a temporary file next to the target,
flushed to disk and renamed over the target. A crash or a notebook that cannot be serialised
leaves the old file as it was and no temporary file behind.

Both functions are synchronous (file I/O); async callers run them with
``trio.to_thread.run_sync``. This module imports neither trio nor zmq.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import OutputPathError

if TYPE_CHECKING:
    from nbformat import NotebookNode

__all__ = ["check_output_path", "write_notebook_file"]


def _target(path: Path) -> Path:
    """The file a write to *path* lands in: the end of its chain of symlinks, if any."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def check_output_path(path: Path) -> None:
    """Make sure a notebook can be written to *path*, before any kernel starts.

    The directory that will hold the file (for a symlink, its target's directory) must exist
    and be writable, *path* must not be a directory, and an existing file must be writable.

    Raises:
        OutputPathError: the message says which of these does not hold.
        TypeError: *path* is not a path.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"an output path must be a path, not {type(path).__name__}")
    path = Path(path)
    shown = str(path)
    target = _target(path)
    if target.is_dir():
        raise OutputPathError(f"output {shown!r} is a directory, not a file name", path=shown)
    directory = target.parent
    if not directory.exists():
        raise OutputPathError(
            f"cannot write {shown!r}: the directory {str(directory)!r} does not exist", path=shown
        )
    if not directory.is_dir():
        raise OutputPathError(
            f"cannot write {shown!r}: {str(directory)!r} is not a directory", path=shown
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputPathError(
            f"cannot write {shown!r}: the directory {str(directory)!r} is not writable",
            path=shown,
        )
    if target.exists() and not os.access(target, os.W_OK):
        raise OutputPathError(f"cannot write {shown!r}: the file is read-only", path=shown)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; some systems cannot open a directory, which is harmless."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _keep_mode_and_group(fd: int, tmp: Path, existing: os.stat_result) -> None:
    if hasattr(os, "fchown") and existing.st_gid != os.fstat(fd).st_gid:
        with contextlib.suppress(OSError):  # not a member of that group: keep ours
            os.fchown(fd, -1, existing.st_gid)
    if hasattr(os, "fchmod"):
        os.fchmod(fd, stat.S_IMODE(existing.st_mode))
    else:  # pragma: no cover - Windows before Python 3.13
        os.chmod(tmp, stat.S_IMODE(existing.st_mode))


def write_notebook_file(path: Path, nb: NotebookNode, *, inplace: bool = False) -> None:
    """Write *nb* to *path* atomically, keeping the mode and symlinks of what is there.

    - The notebook is serialised (``nbformat.writes``) before anything is written: if that
      fails, nothing on disk changes.
    - A new file gets the mode the process's umask gives to ``open()`` (0644 under umask
      022), as with nbclient and papermill.
    - An existing file keeps its permission bits (and its group, when the process may set
      it).
    - If *path* is a symlink, the file it points to is replaced, in its own directory; the
      link stays a link.
    - The data is flushed to disk (``fsync``) before the rename, and the rename is atomic: a
      reader sees the old notebook or the new one, never part of one. A hard link to the old
      file keeps the old content.

    Args:
        inplace: *path* is the notebook that was run, which must still exist: if it has been
            removed meanwhile, :class:`OutputPathError` is raised rather than a new file being
            created in its place.

    Raises:
        OutputPathError: *path* is a directory, or *inplace* and the file is gone.
        OSError: the write failed (disk full, permission); the old file is untouched and the
            temporary file removed.
        Exception: whatever ``nbformat.writes`` raises for a notebook it cannot serialise.
    """
    nbformat: Any = importlib.import_module("nbformat")
    text: str = nbformat.writes(nb)
    if not text.endswith("\n"):
        text += "\n"
    data = text.encode("utf-8")
    path = Path(path)
    target = _target(path)
    try:
        existing: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        existing = None
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise OutputPathError(f"output {str(path)!r} is a directory", path=str(path))
    if inplace and existing is None:
        raise OutputPathError(
            f"cannot write {str(path)!r} in place: the file no longer exists", path=str(path)
        )
    # The temporary file is created with the final mode's bits at most, so its content is never
    # readable by more users than the final file's: for a new file 0o666, which open() reduces
    # by the umask exactly as for a file written directly.
    create_mode = stat.S_IMODE(existing.st_mode) & 0o777 if existing is not None else 0o666
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, create_mode)
        except FileExistsError:  # pragma: no cover - 32 random bits already taken
            continue
        break
    try:
        try:
            if existing is not None:
                _keep_mode_and_group(fd, tmp, existing)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(target.parent)
