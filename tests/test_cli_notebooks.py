"""``trio-enchannel run A.ipynb B.ipynb ... -j N``: several notebooks, output paths, statuses."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from .test_cli import TIMEOUT, _notebook, cli, cli_env, running

# Running notebooks needs the notebook extra; without it the CLI refuses every notebook.
pytest.importorskip("nbformat", reason="the notebook extra")

kernel = pytest.mark.kernel


def _read(path: Path) -> Any:
    return importlib.import_module("nbformat").read(path, as_version=4)


@kernel
async def test_several_notebooks_at_once_with_an_output_pattern(tmp_path: Path) -> None:
    _notebook(tmp_path / "a.ipynb", ["print('a')"])
    _notebook(tmp_path / "b.ipynb", ["print('b')", "1 / 0", "print('not run')"])
    _notebook(tmp_path / "c.ipynb", ["import os\nprint(os.path.basename(os.getcwd()))"])
    (tmp_path / "out").mkdir()
    done = await cli(
        tmp_path, "run", "a.ipynb", "b.ipynb", "c.ipynb", "-j", "2", "-o", "out/{stem}.ipynb"
    )
    assert done.returncode == 1, done.stderr  # b failed
    assert "b.ipynb: cell 3 failed:" in done.stderr
    assert "ZeroDivisionError" in done.stderr
    for name in ("a", "b", "c"):
        assert f"wrote out/{name}.ipynb" in done.stderr
    assert "wrote out/b.ipynb (2 cells run, 1 failed, 1 not run)" in done.stderr
    # One summary table for all of them, after every notebook was written.
    table = done.stderr[done.stderr.index("notebook  status") :]
    assert [line.split()[:2] for line in table.splitlines()[1:4]] == [
        ["a.ipynb", "ok"],
        ["b.ipynb", "error"],
        ["c.ipynb", "ok"],
    ]
    assert "2 of 3 notebooks succeeded" in table
    assert _read(tmp_path / "out" / "a.ipynb").cells[1].outputs[0].text == "a\n"
    b = _read(tmp_path / "out" / "b.ipynb")
    assert b.cells[2].outputs[0].ename == "ZeroDivisionError"
    assert (b.cells[3].execution_count, b.cells[3].outputs) == (None, [])
    assert b.metadata.trio_enchannel == {"stopped_at": 2, "reason": "error"}
    # Each kernel runs in its notebook's directory.
    assert _read(tmp_path / "out" / "c.ipynb").cells[1].outputs[0].text == f"{tmp_path.name}\n"


@kernel
async def test_output_directory_and_the_worst_status_wins(tmp_path: Path) -> None:
    _notebook(tmp_path / "slow.ipynb", ["import time\ntime.sleep(60)", "print('after')"])
    _notebook(tmp_path / "bad.ipynb", ["raise ValueError('x')"])
    (tmp_path / "done").mkdir()
    done = await cli(
        tmp_path, "run", "slow.ipynb", "bad.ipynb", "-j", "2", "--timeout", "2", "-o", "done/"
    )
    assert done.returncode == 124, done.stderr  # a timeout beats an error
    assert "slow.ipynb: cell 2 did not finish within 2 s" in done.stderr
    slow = _read(tmp_path / "done" / "slow.ipynb")
    assert slow.cells[1].outputs[-1].ename == "KeyboardInterrupt"  # the interruption is recorded
    assert slow.cells[1].execution_count == 1
    assert slow.metadata.trio_enchannel == {"stopped_at": 1, "reason": "timeout"}
    assert (tmp_path / "done" / "bad.ipynb").exists()


@kernel
async def test_allow_errors_goes_on_after_a_timeout(tmp_path: Path) -> None:
    _notebook(tmp_path / "nb.ipynb", ["import time\ntime.sleep(60)", "print('after')"])
    done = await cli(tmp_path, "run", "nb.ipynb", "--timeout", "2", "--allow-errors")
    assert done.returncode == 124, done.stderr  # the run went on, but a cell timed out
    nb = _read(tmp_path / "nb.out.ipynb")
    assert nb.cells[1].outputs[-1].ename == "KeyboardInterrupt"
    assert nb.cells[2].outputs[0].text == "after\n"


@kernel
async def test_ctrl_c_stops_the_notebooks_and_writes_what_ran(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    os.mkfifo(ready)
    sleeper = "open('ready', 'w').write('go')\nimport time\ntime.sleep(60)"
    _notebook(tmp_path / "a.ipynb", ["print('a')", sleeper, "print('never')"])
    _notebook(tmp_path / "b.ipynb", ["print('b')"])
    with trio.fail_after(TIMEOUT):
        async with running(tmp_path, "run", "a.ipynb", "b.ipynb", "-j", "1") as run:
            # The cell opens the FIFO once it runs: then the kernel is busy with it.
            await trio.to_thread.run_sync(ready.read_text, abandon_on_cancel=True)
            run.process.send_signal(signal.SIGINT)
            with trio.fail_after(15):  # promptly, not after the minute of sleep
                assert await run.process.wait() == 130
    assert b"interrupting" in run.stderr
    a = _read(tmp_path / "a.out.ipynb")
    assert a.cells[1].outputs[0].text == "a\n"
    assert a.cells[2].outputs[-1].ename == "KeyboardInterrupt"
    assert (a.cells[3].execution_count, a.cells[3].outputs) == (None, [])
    assert a.metadata.trio_enchannel == {"stopped_at": 2, "reason": "cancelled"}
    assert not (tmp_path / "b.out.ipynb").exists()  # never started


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a.ipynb", "b.ipynb", "-o", "one.ipynb"], "-o names one file but there are several"),
        (["a.ipynb", "b.ipynb", "-o", "{nope}.ipynb"], "bad output pattern"),
        (["a.ipynb", "sub/a.ipynb", "-o", "out/"], "would both be written to out/a.ipynb"),
        (["a.ipynb", "b.ipynb", "-o", "{stem}.ipynb"], "is one of the input notebooks"),
        (["a.ipynb", "script.py"], "only notebooks (.ipynb) can be run several at once"),
        (["a.ipynb", "missing.ipynb"], "no such file: missing.ipynb"),
        (["a.ipynb", "other-kernel.ipynb"], "other-kernel.ipynb asks for 'no-such-kernel'"),
        (["a.ipynb", "-j", "0"], "must be at least 1"),
        (["a.ipynb", "-j", "x"], "not a whole number: 'x' (a whole number of at least 1, or auto)"),
        (["a.ipynb", "-j", "-1"], "must be at least 1"),
        (["a.ipynb", "-j", "Auto"], "not a whole number"),
        (["-c", "1", "-j", "2"], "-j/--jobs applies to notebooks only"),
    ],
)
async def test_bad_usage_is_refused_before_any_kernel_starts(
    tmp_path: Path, args: list[str], message: str
) -> None:
    for name in ("a", "b", "sub/a"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        _notebook(tmp_path / f"{name}.ipynb", ["print(1)"])
    (tmp_path / "script.py").write_text("print(1)\n")
    other = json.loads((tmp_path / "a.ipynb").read_text())
    other["metadata"]["kernelspec"]["name"] = "no-such-kernel"
    (tmp_path / "other-kernel.ipynb").write_text(json.dumps(other))
    done = await cli(tmp_path, "run", *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("**/*.out.ipynb"))  # noqa: ASYNC240 (nothing was written)


def test_jobs_auto_is_the_number_of_usable_cpus() -> None:
    """``-j auto``: as many notebooks at once as this process may use CPUs (its affinity
    mask where the platform has one)."""
    from trio_enchannel._cli._parser import build_parser

    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    args = build_parser().parse_args(["run", "a.ipynb", "b.ipynb", "-j", "auto"])
    assert args.jobs == expected
    assert build_parser().parse_args(["run", "a.ipynb", "--jobs", "3"]).jobs == 3


@kernel
async def test_parameters_reach_every_notebook(tmp_path: Path) -> None:
    for name in ("a", "b"):
        _notebook(
            tmp_path / f"{name}.ipynb",
            ["alpha = 1\nsizes = []", "print(alpha, sizes, label, extra)"],
            c0={"tags": ["parameters"]},
        )
    (tmp_path / "params.json").write_text('{"sizes": [1, 2], "alpha": 0}')
    done = await cli(
        tmp_path, "run", "a.ipynb", "b.ipynb", "-j", "2",
        "-f", "params.json", "-p", "alpha", "7", "-r", "label", "1.10",
        "-y", "extra: 1", "-y", "extra: 2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    umask = os.umask(0o022)
    os.umask(umask)
    for name in ("a", "b"):
        nb = _read(tmp_path / f"{name}.out.ipynb")
        assert nb.cells[2].metadata.tags == ["injected-parameters"]
        assert nb.cells[3].outputs[0].text == "7 [1, 2] 1.10 2\n"
        # Written with the mode the umask gives (0644 under umask 022), as nbclient does.
        assert (tmp_path / f"{name}.out.ipynb").stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a.ipynb", "-o", "missing/out.ipynb"], "does not exist"),
        (["a.ipynb", "-p", "not valid", "1"], "not a valid variable name"),
        (["a.ipynb", "-f", "nothing.yaml"], "cannot be read"),
        (["-c", "1", "-p", "a", "1"], "-p/--parameter applies to notebooks only"),
    ],
)
async def test_bad_outputs_and_parameters_are_refused_before_any_kernel_starts(
    tmp_path: Path, args: list[str], message: str
) -> None:
    _notebook(tmp_path / "a.ipynb", ["print(1)"])
    done = await cli(tmp_path, "run", *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_nbformat_already_imported_is_taken_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once nbformat is imported, the command takes it from sys.modules: no module is
    hidden again (the sys.modules trick runs once per process)."""
    from trio_enchannel._cli import _notebook

    nbformat = importlib.import_module("nbformat")

    def hide(names: object) -> None:
        raise AssertionError("modules hidden again")

    monkeypatch.setattr(_notebook, "_without", hide)
    assert _notebook._import_nbformat() is nbformat


@pytest.mark.skipif(
    importlib.util.find_spec("rfc3987_syntax") is None, reason="needs rfc3987_syntax installed"
)
async def test_reading_notebooks_skips_the_schema_checker_nbformat_never_uses(
    tmp_path: Path,
) -> None:
    """jsonschema (imported by nbformat) imports ``rfc3987_syntax`` for a format checker
    nbformat never uses, and that import compiles a grammar (seconds of CPU before the first
    kernel could start): the command does without it, and still validates notebooks."""
    (tmp_path / "bad.ipynb").write_text('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}}')
    code = (
        "import sys\n"
        "from trio_enchannel._cli._main import main\n"
        "status = main(['run', 'bad.ipynb'])\n"
        "loaded = 'rfc3987_syntax' in sys.modules\n"
        "import rfc3987_syntax\n"  # anything else in the process may still import it
        "print(status, loaded)\n"
    )
    env = cli_env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH", "")]))
    with trio.fail_after(TIMEOUT):
        done = await trio.run_process(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_stdout=True,
            capture_stderr=True, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split() == ["2", "False"]
    assert b"bad.ipynb is not a valid notebook" in done.stderr
