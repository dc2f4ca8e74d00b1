"""The reliability suite's switches: soak variants and their scale.

Long variants are marked ``@pytest.mark.soak`` and skipped unless the environment variable
``TRIO_ENCHANNEL_SOAK`` is set to ``1``; their short counterparts always run (in CI)::

    python3 -m nox -s tests -- tests/reliability -m "not soak"      # the CI variant
    TRIO_ENCHANNEL_SOAK=1 python3 -m nox -s tests -- tests/reliability -m soak

Hypothesis example counts scale the same way (see :func:`examples`).
"""

from __future__ import annotations

import os

import pytest

SOAK_ENV = "TRIO_ENCHANNEL_SOAK"


def soak_enabled() -> bool:
    """Whether the long (soak) variants run."""
    return os.environ.get(SOAK_ENV, "") == "1"


def examples(ci: int, soak: int) -> int:
    """How many hypothesis examples to run: ``ci`` normally, ``soak`` in a soak run."""
    return soak if soak_enabled() else ci


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if soak_enabled():
        return
    skip = pytest.mark.skip(reason=f"soak variant: set {SOAK_ENV}=1 to run it")
    for item in items:
        if item.get_closest_marker("soak") is not None:
            item.add_marker(skip)
