"""Output notebooks: the path is checked before the run, and the file is never half written."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trio_enchannel._errors import EnchannelError, OutputPathError
from trio_enchannel._notebook._files import check_output_path, write_notebook_file

nbformat: Any = pytest.importorskip("nbformat")


def _notebook(text: str = "print(1)") -> Any:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(source=text))
    return nb


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask() -> Iterator[Any]:
    """Set the process umask for one test, and put the old one back."""
    old = os.umask(0o022)
    os.umask(old)

    def set_umask(mask: int) -> None:
        os.umask(mask)

    yield set_umask
    os.umask(old)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# --- the check before the run ----------------------------------------------------------------


def test_a_new_file_in_an_existing_directory_is_fine(tmp_path: Path) -> None:
    check_output_path(tmp_path / "out.ipynb")
    check_output_path(Path("relative.ipynb"))  # the current directory


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing" / "out.ipynb", "does not exist"),
        (lambda d: d, "is a directory"),
        (lambda d: (d / "file").touch() or d / "file" / "out.ipynb", "is not a directory"),
    ],
)
def test_bad_output_paths_are_refused(tmp_path: Path, make: Any, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(OutputPathError, match=message) as caught:
        check_output_path(path)
    assert caught.value.path == str(path)
    assert isinstance(caught.value, EnchannelError)


def test_a_symlink_is_checked_where_it_points(tmp_path: Path) -> None:
    link = tmp_path / "link.ipynb"
    link.symlink_to(tmp_path / "gone" / "target.ipynb")
    with pytest.raises(OutputPathError, match="gone"):
        check_output_path(link)
    (tmp_path / "adir").mkdir()
    dirlink = tmp_path / "dirlink.ipynb"
    dirlink.symlink_to(tmp_path / "adir")
    with pytest.raises(OutputPathError, match="is a directory"):
        check_output_path(dirlink)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_directory_and_read_only_file_are_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(OutputPathError, match="not writable"):
            check_output_path(locked / "out.ipynb")
    finally:
        locked.chmod(0o755)
    read_only = tmp_path / "ro.ipynb"
    read_only.touch()
    read_only.chmod(0o444)
    with pytest.raises(OutputPathError, match="read-only"):
        check_output_path(read_only)


def test_check_refuses_a_non_path() -> None:
    with pytest.raises(TypeError):
        check_output_path(3)  # type: ignore[arg-type]


# --- writing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_the_mode_the_umask_gives(tmp_path: Path, umask: Any, mask: int) -> None:
    umask(mask)
    path = tmp_path / "out.ipynb"
    write_notebook_file(path, _notebook())
    assert _mode(path) == 0o666 & ~mask
    assert nbformat.read(path, as_version=4).cells[0].source == "print(1)"
    assert path.read_text().endswith("}\n")  # as nbformat.write ends a file
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("inplace", [False, True])
def test_an_existing_file_keeps_its_mode(tmp_path: Path, umask: Any, inplace: bool) -> None:
    umask(0o022)
    path = tmp_path / "nb.ipynb"
    write_notebook_file(path, _notebook("old"))
    path.chmod(0o640)
    write_notebook_file(path, _notebook("new"), inplace=inplace)
    assert _mode(path) == 0o640
    assert nbformat.read(path, as_version=4).cells[0].source == "new"


def test_writing_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "real.ipynb"
    write_notebook_file(target, _notebook("old"))
    target.chmod(0o600)
    link = tmp_path / "link.ipynb"
    link.symlink_to(target)
    write_notebook_file(link, _notebook("new"), inplace=True)
    assert link.is_symlink()
    assert os.readlink(link) == str(target)
    assert nbformat.read(target, as_version=4).cells[0].source == "new"
    assert _mode(target) == 0o600
    assert _leftovers(tmp_path) == [] and _leftovers(elsewhere) == []


def test_a_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "link.ipynb"
    link.symlink_to(tmp_path / "new.ipynb")
    write_notebook_file(link, _notebook())
    assert link.is_symlink()
    assert (tmp_path / "new.ipynb").is_file()


def test_a_notebook_that_cannot_be_serialised_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    write_notebook_file(path, _notebook("old"))
    before = path.read_bytes()
    broken = _notebook("new")
    broken.cells[0].outputs.append(
        nbformat.from_dict({"output_type": "stream", "name": "stdout", "text": "x"})
    )
    broken.cells[0].outputs[0]["text"] = object()  # not JSON
    with pytest.raises(TypeError):
        write_notebook_file(path, broken)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_a_failure_while_writing_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "nb.ipynb"
    write_notebook_file(path, _notebook("old"))
    before = path.read_bytes()

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_notebook_file(path, _notebook("new" * 10_000))
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_a_hard_link_keeps_the_old_content(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    write_notebook_file(path, _notebook("old"))
    other = tmp_path / "other.ipynb"
    os.link(path, other)
    write_notebook_file(path, _notebook("new"))
    assert nbformat.read(other, as_version=4).cells[0].source == "old"


def test_inplace_needs_the_file_and_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError, match="no longer exists"):
        write_notebook_file(tmp_path / "gone.ipynb", _notebook(), inplace=True)
    assert not (tmp_path / "gone.ipynb").exists()
    with pytest.raises(OutputPathError, match="is a directory"):
        write_notebook_file(tmp_path, _notebook())
    assert _leftovers(tmp_path) == []


def test_what_access_refuses_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The same checks as the test above, for runs as root (who may write anywhere): the
    # answer of os.access is what decides.
    existing = tmp_path / "nb.ipynb"
    existing.touch()
    real_access = os.access
    refused: set[Path] = set()

    def access(path: Any, mode: int, **kwargs: Any) -> bool:
        return Path(path) not in refused and real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    refused.add(tmp_path)
    with pytest.raises(OutputPathError, match="not writable"):
        check_output_path(tmp_path / "new.ipynb")
    refused.clear()
    refused.add(existing)
    with pytest.raises(OutputPathError, match="read-only"):
        check_output_path(existing)
