"""Connection files on disk: read off the event loop, written owner-only and atomically.

What a connection file says (:class:`ConnectionInfo`, its validation and its JSON form) is
data, in the wire layer; where a file goes, who may read it and how it is replaced are I/O
and live here.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._errors import ConnectionInfoError
from .._wire._connection import ConnectionInfo

__all__ = ["load_connection_info", "write_connection_file"]


async def load_connection_info(
    info: ConnectionInfo | str | os.PathLike[str] | Mapping[str, Any], *, name: str = "info"
) -> ConnectionInfo:
    """``info`` as a :class:`ConnectionInfo`: itself, its dict validated, or its file read in a
    worker thread.

    A connection file may block its reader (a FIFO waits for a writer, a network file system
    may hang); read on the event loop's thread it would stop every task and no
    :func:`trio.fail_after` could interrupt it. The thread is abandoned on cancellation (it
    ends when the read does).

    Raises:
        ConnectionInfoError: the file cannot be read or the information is invalid.
        TypeError: ``info`` is none of these types.
    """
    if isinstance(info, ConnectionInfo):
        return info
    if isinstance(info, (str, os.PathLike)):
        import trio  # here, so that writing a connection file does not import trio

        return await trio.to_thread.run_sync(ConnectionInfo.from_file, info, abandon_on_cancel=True)
    if isinstance(info, Mapping):
        return ConnectionInfo.from_dict(info)
    raise TypeError(
        f"{name} must be a ConnectionInfo, a connection file path or its dict, "
        f"got {type(info).__name__}"
    )


def _runtime_dir() -> Path:
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir())


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents, each owner-only (0700).

    ``Path.mkdir(parents=True, mode=...)`` applies the mode to the last directory only; the
    parents would get the umask's mode, readable by everyone.
    """
    missing: list[Path] = []
    for candidate in (directory, *directory.parents):
        if candidate.is_dir():
            break
        missing.append(candidate)
    for each in reversed(missing):
        try:
            os.mkdir(each, 0o700)
        except FileExistsError:  # created concurrently: not ours to change
            if not each.is_dir():
                raise


def write_connection_file(
    info: ConnectionInfo,
    path: str | os.PathLike[str] | None = None,
    *,
    runtime_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``info`` as a connection file, owner-only (0600) and atomically.

    The file is written under a temporary name in the same directory with mode 0600 from its
    creation, then renamed into place, so no reader ever sees a partial file and no other user
    can read the key. Every directory it has to create (the parents included) is created
    owner-only (0700).

    Args:
        info: what to write.
        path: the file to write; default ``kernel-<uuid>.json`` in ``runtime_dir``.
        runtime_dir: directory for the default name; default Jupyter's runtime dir.

    Returns:
        The path written.

    Raises:
        ConnectionInfoError: the file cannot be written.
        TypeError: ``info`` is not a :class:`ConnectionInfo`, or a path is not a path.
    """
    if not isinstance(info, ConnectionInfo):
        raise TypeError(f"info must be a ConnectionInfo, got {type(info).__name__}")
    for name, value in (("path", path), ("runtime_dir", runtime_dir)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{name} must be a str or os.PathLike, got {type(value).__name__}")
    if path is None:
        directory = Path(runtime_dir) if runtime_dir is not None else _runtime_dir()
        target = directory / f"kernel-{uuid.uuid4()}.json"
    else:
        target = Path(path)
    try:
        _make_private_dirs(target.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=str(target.parent))
    except OSError as exc:
        raise ConnectionInfoError(f"{target}: cannot write connection file: {exc}") from exc
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(info.to_dict(), handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ConnectionInfoError(f"{target}: cannot write connection file: {exc}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target
