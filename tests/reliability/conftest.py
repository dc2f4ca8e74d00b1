"""The reliability suite's switches: soak variants and their scale.

Long variants are marked ``@pytest.mark.soak`` and skipped unless the environment variable
``TRIO_ENCHANNEL_SOAK`` is set to ``1``; their short counterparts always run (in CI)::

    python3 -m nox -s tests -- tests/reliability -m "not soak"      # the CI variant
    TRIO_ENCHANNEL_SOAK=1 python3 -m nox -s tests -- tests/reliability -m soak

Hypothesis example counts scale the same way (see :func:`examples`).

Tests :func:`record` what they exercised (hostile messages by kind, faults injected, load); the
totals are printed at the end of the run: they are the figures of ``docs/reliability.rst``.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

SOAK_ENV = "TRIO_ENCHANNEL_SOAK"


def soak_enabled() -> bool:
    """Whether the long (soak) variants run."""
    return os.environ.get(SOAK_ENV, "") == "1"


def examples(ci: int, soak: int) -> int:
    """How many hypothesis examples to run: ``ci`` normally, ``soak`` in a soak run."""
    return soak if soak_enabled() else ci


#: What the tests of this run exercised, by figure name (see :func:`record`).
FIGURES: Counter[str] = Counter()


def record(figure: str, count: int = 1) -> None:
    """Add ``count`` to ``figure`` (for example ``"hostile: bad_json"``)."""
    FIGURES[figure] += count


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for figure, count in sorted(FIGURES.items()):
        terminalreporter.write_line(f"{figure:<70} {count:>10,}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if soak_enabled():
        return
    skip = pytest.mark.skip(reason=f"soak variant: set {SOAK_ENV}=1 to run it")
    for item in items:
        if item.get_closest_marker("soak") is not None:
            item.add_marker(skip)
