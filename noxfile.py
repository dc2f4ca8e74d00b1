"""Automation: tests, lint, typecheck, docs and benchmarks.

Every session installs the project from this checkout into its own virtualenv, so a green run
proves that the project's own files declare every dependency.
"""

from __future__ import annotations

import os

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
    args = session.posargs or ["-q", "-p", "no:cacheprovider"]
    # pytest exits 5 when it collects nothing: nox treats any non-zero exit as a failure.
    session.run("python", "-m", "pytest", *args, env=env)


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
    """Build the documentation with warnings as errors."""
    _install(session, "docs", "python", "notebook", "remote")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against jupyter_client and raw pyzmq, in the same run (prints ratios)."""
    _install(session, "test", "bench")
    os.makedirs("benchmarks/results", exist_ok=True)
    session.run("python", "-m", "benchmarks", *session.posargs)
