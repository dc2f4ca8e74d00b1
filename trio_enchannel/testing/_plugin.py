"""The trio-enchannel pytest plugin: fixtures that give a test a running fake kernel.

pytest loads this module for every project that has trio-enchannel installed (entry point
``pytest11``), so it must stay cheap to import: it imports only pytest here, and the testing kit
(which needs trio and pyzmq) inside the fixtures.

Fixtures (all function-scoped; the async ones need pytest-trio):

``fake_kernel_options``
    A dict of keyword arguments for :func:`trio_enchannel.testing.open_fake_kernel`. Override
    it in a ``conftest.py`` or a test module to change the fake kernel (for example
    ``{"transport": "ipc"}`` or ``{"key": ""}``).
``fake_kernel_timeout``
    The default deadline, in seconds, of every wait the fake kernel offers tests
    (:meth:`~trio_enchannel.testing.FakeKernel.wait_request` and friends) and of its
    start-up. Default 10 seconds; override the fixture to change it.
``fake_kernel``
    A running :class:`~trio_enchannel.testing.FakeKernel`, bound to free loopback ports, closed
    at the end of the test.
``fake_kernel_info``
    The :class:`~trio_enchannel.ConnectionInfo` of ``fake_kernel``, to hand to the code under
    test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from trio_enchannel import ConnectionInfo
    from trio_enchannel.testing import FakeKernel

__all__ = ["fake_kernel", "fake_kernel_info", "fake_kernel_options", "fake_kernel_timeout"]

#: Default deadline of the fake kernel's waits (seconds).
DEFAULT_TIMEOUT = 10.0


@pytest.fixture
def fake_kernel_options() -> dict[str, Any]:
    """Keyword arguments passed to :func:`~trio_enchannel.testing.open_fake_kernel`."""
    return {}


@pytest.fixture
def fake_kernel_timeout() -> float:
    """Default deadline (seconds) of the fake kernel's start-up and of its waits."""
    return DEFAULT_TIMEOUT


@pytest.fixture
async def fake_kernel(
    fake_kernel_options: dict[str, Any], fake_kernel_timeout: float
) -> AsyncIterator[FakeKernel]:
    """A running fake kernel, shut down when the test ends.

    Raises:
        trio.TooSlowError: the fake kernel did not bind its sockets within the timeout.
    """
    from trio_enchannel.testing import open_fake_kernel

    options = dict(fake_kernel_options)
    options.setdefault("wait_timeout", fake_kernel_timeout)
    async with open_fake_kernel(**options) as kernel:
        yield kernel


@pytest.fixture
def fake_kernel_info(fake_kernel: FakeKernel) -> ConnectionInfo:
    """The connection info of the ``fake_kernel`` fixture."""
    return fake_kernel.connection_info
