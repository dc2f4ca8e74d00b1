"""``trio-enchannel run script.py`` behaves like ``python script.py`` where scripts notice:
``__file__``, ``sys.argv``, imports next to the script, tracebacks that name the file, and
``sys.exit(N)`` as the exit status (run against real kernels)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from .test_cli import cli

kernel = pytest.mark.kernel

#: ipykernel, and xeus-python (which reports SystemExit differently) where installed.
PYTHON_KERNELS = [
    "python3",
    pytest.param(
        "xpython",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("xpython_launcher") is None, reason="needs xeus-python"
        ),
    ),
]


@kernel
async def test_a_script_knows_its_file_argv_and_directory(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "helper.py").write_text("VALUE = 'from next to the script'\n")
    (scripts / "main.py").write_text(
        "import sys\n"
        "import helper\n"
        "print(__file__)\n"
        "print(sys.argv)\n"
        "print(helper.VALUE)\n"
        "print(__name__)\n"
    )
    done = await cli(tmp_path, "run", "scripts/main.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        str(scripts / "main.py"),
        "['scripts/main.py']",
        "from next to the script",
        "__main__",
    ]


@kernel
async def test_a_traceback_names_the_script_and_its_lines(tmp_path: Path) -> None:
    (tmp_path / "boom.py").write_text("def f():\n    return 1 / 0\n\nf()\n")
    done = await cli(tmp_path, "run", "boom.py")
    assert done.returncode == 1
    assert f"File {tmp_path / 'boom.py'}:4" in done.stderr
    assert f"File {tmp_path / 'boom.py'}:2, in f()" in done.stderr
    assert "----> 2     return 1 / 0" in done.stderr
    assert "Cell In[" not in done.stderr


@kernel
async def test_code_given_with_c_still_shows_cells(tmp_path: Path) -> None:
    done = await cli(tmp_path, "run", "-c", "print(__file__ if '__file__' in dir() else 'none')")
    assert (done.returncode, done.stdout) == (0, "none\n"), done.stderr


@kernel
@pytest.mark.parametrize("kernel_name", PYTHON_KERNELS)
async def test_sys_exit_gives_the_exit_status(tmp_path: Path, kernel_name: str) -> None:
    (tmp_path / "quit.py").write_text("import sys\nprint('before')\nsys.exit(3)\nprint('after')\n")
    done = await cli(tmp_path, "run", "-k", kernel_name, "quit.py")
    assert done.returncode == 3, done.stderr
    assert done.stdout == "before\n"
    # Nothing of IPython's "An exception has occurred" and "To exit: use 'exit'" notes.
    assert done.stderr == ""


@kernel
@pytest.mark.parametrize(
    ("code", "status", "stderr"),
    [
        ("import sys; sys.exit()", 0, ""),
        ("import sys; sys.exit(0)", 0, ""),
        ("raise SystemExit(7)", 7, ""),
        ("import sys; sys.exit('bye')", 1, "bye\n"),
    ],
)
async def test_sys_exit_forms_are_those_of_python(
    tmp_path: Path, code: str, status: int, stderr: str
) -> None:
    done = await cli(tmp_path, "run", "-c", code)
    assert (done.returncode, done.stderr) == (status, stderr)


@kernel
async def test_other_errors_still_show_after_a_caught_system_exit(tmp_path: Path) -> None:
    code = "try:\n    raise SystemExit(5)\nexcept SystemExit:\n    pass\n1 / 0\n"
    done = await cli(tmp_path, "run", "-c", code)
    assert done.returncode == 1
    assert "ZeroDivisionError" in done.stderr


@pytest.mark.parametrize("name", ["", "  "])
async def test_an_empty_kernel_name_is_a_usage_error(tmp_path: Path, name: str) -> None:
    done = await cli(tmp_path, "run", "-k", name, "-c", "print(1)")
    assert done.returncode == 2
    assert "-k/--kernel needs a kernel name" in done.stderr
    assert done.stdout == ""
