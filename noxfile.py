"""Automation: tests, lint, typecheck, docs and benchmarks.

Every session installs the project from this checkout into its own virtualenv, so a green run
proves that the project's own files declare every dependency.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

# The interpreter running nox; CI and the README use the machine's python3.
PYTHON = None


def _install(session: nox.Session, *extras: str) -> None:
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("--upgrade", "pip")
    session.install(spec)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite, real kernels included (pass pytest options after --)."""
    _install(session, "test")
    env = {"PYTHONFAULTHANDLER": "1"}
    gateway = _gateway(session)
    if gateway:
        env["TRIO_ENCHANNEL_GATEWAY"] = gateway
    args = session.posargs or ["-q", "-p", "no:cacheprovider"]
    # pytest exits 5 when it collects nothing: nox treats any non-zero exit as a failure.
    session.run("python", "-m", "pytest", *args, env=env)


def _gateway(session: nox.Session) -> str | None:
    """Jupyter Enterprise Gateway in a virtualenv of its own.

    EG 3.x pins jupyter_server<2, jupyter_client<7 and pyzmq<25, so it cannot share the test
    environment; its tests talk to it over HTTP only. If it cannot be installed, say so loudly:
    the gateway tests then skip with that reason.
    """
    venv = os.path.join(".nox", "gateway-venv")
    exe = os.path.join(venv, "bin", "jupyter-enterprisegateway")
    if not os.path.exists(exe):
        session.run("python", "-m", "venv", venv, external=True)
        session.run(
            os.path.join(venv, "bin", "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "jupyter-enterprise-gateway>=3.2",
            "ipykernel<7",
            external=True,
            success_codes=[0, 1, 2],
        )
        if not os.path.exists(exe):
            session.warn("Jupyter Enterprise Gateway could not be installed: its tests skip")
            return None
    return os.path.abspath(exe)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, the tests, the benchmarks and this file."""
    _install(session, "test", "typecheck", "bench")
    session.run("mypy", "--strict", *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation, nitpicky, with warnings as errors (no network needed)."""
    _install(session, "docs", "python", "notebook", "remote")
    session.run(
        "sphinx-build", "-n", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html"
    )


@nox.session(python=PYTHON, reuse_venv=False)
def docs_examples(session: nox.Session) -> None:
    """Every example of the docs, in a fresh virtualenv holding only what the docs install.

    The environment gets exactly the union of the docs' and the README's ``python3 -m pip
    install`` commands, nothing from the test extras, so an example that needs a package the
    docs never mention fails here. The examples are tests/test_docs.py's, run without the test
    suite's conftest.py (its fixtures need the test extras).
    """
    session.install("--upgrade", "pip")
    session.install(*_documented_installs())
    args = session.posargs or ["-q", "-p", "no:cacheprovider"]
    session.run("python", "-m", "pytest", "--noconftest", *args, "tests/test_docs.py")


_PIP_INSTALL = re.compile(r"^\s*\$ python3? -m pip install (.+)$", re.MULTILINE)


def _documented_installs() -> list[str]:
    """What the docs say to install: every ``$ python3 -m pip install`` of the docs' pages and
    the README, this checkout's extras merged into one requirement."""
    extras: set[str] = set()
    others: set[str] = set()
    pages = [Path("README.md"), *sorted(Path("docs").rglob("*.rst"))]
    for page in pages:
        if "_build" in page.parts:
            continue
        for match in _PIP_INSTALL.finditer(page.read_text(encoding="utf-8")):
            for word in shlex.split(match.group(1).split("&&")[0]):
                if word.startswith("-"):
                    continue
                if m := re.fullmatch(r"\.(?:\[([\w,-]+)\])?", word):
                    extras.update(e for e in (m.group(1) or "").split(",") if e)
                else:
                    others.add(word)
    return [f".[{','.join(sorted(extras))}]", *sorted(others)]


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against jupyter_client and raw pyzmq, in the same run (prints ratios)."""
    _install(session, "test", "bench")
    os.makedirs("benchmarks/results", exist_ok=True)
    session.run("python", "-m", "benchmarks", *session.posargs)
