"""The trio-enchannel pytest plugin: fixtures that give a test a running fake kernel.

pytest loads this module for every project that has trio-enchannel installed (entry point
``pytest11``), so it must stay cheap to import: it imports only pytest here, and the testing kit
(which needs trio and pyzmq) inside the fixtures.

Fixtures (all function-scoped; the async ones need pytest-trio):

``fake_kernel_options``
    A dict of keyword arguments for :func:`trio_enchannel.testing.open_fake_kernel`. Override
    it in a ``conftest.py`` or a test module to change the fake kernel (for example
    ``{"transport": "ipc"}`` or ``{"key": ""}``). Its names and values are checked before the
    fake kernel starts: a wrong one is a :class:`TypeError` (a
    :class:`~trio_enchannel.ConfigurationError` for a value out of range) naming the fixture.
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

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from trio_enchannel import ConnectionInfo
    from trio_enchannel.testing import FakeKernel
    from trio_enchannel.testing._fake_kernel import FakeKernelOptions

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
    from trio_enchannel.testing._fake_kernel import open_fake_kernel_with

    options = _checked_options(fake_kernel_options, fake_kernel_timeout)
    async with open_fake_kernel_with(options) as kernel:
        yield kernel


def _checked_options(options: object, timeout: object) -> FakeKernelOptions:
    """The ``fake_kernel_options`` and ``fake_kernel_timeout`` fixtures' values, checked
    before the fake kernel is started: the options' names are the keyword arguments of
    :func:`~trio_enchannel.testing.open_fake_kernel`, checked as it checks them (each error
    names the fixture and the option).

    Raises:
        TypeError: ``fake_kernel_options`` is not a dict, names an unknown option, or a
            value has the wrong type.
        ConfigurationError: a value is out of range (``ConnectionInfoError`` for an ``ip``
            this host cannot bind).
    """
    from trio_enchannel._validate import check_mapping, check_option_names, check_seconds
    from trio_enchannel.testing._fake_kernel import FakeKernelOptions

    fixture = "the fake_kernel_options fixture"
    given = check_mapping(fixture, options, optional=False) or {}
    check_option_names(fixture, given, _FAKE_KERNEL_DEFAULTS)
    if "wait_timeout" not in given:
        check_seconds("the fake_kernel_timeout fixture", timeout, allow_inf=True)
    values = {**_FAKE_KERNEL_DEFAULTS, "wait_timeout": timeout, **given}

    def label(name: str) -> str:
        return f"fake_kernel_options[{name!r}]"

    return FakeKernelOptions.build(**values, label=label)


#: The keyword arguments of open_fake_kernel and their defaults (a test compares them with its
#: signature); ``wait_timeout`` defaults to the ``fake_kernel_timeout`` fixture's value.
_FAKE_KERNEL_DEFAULTS: Mapping[str, object] = {
    "wait_timeout": DEFAULT_TIMEOUT,
    "key": None,
    "signature_scheme": "hmac-sha256",
    "transport": "tcp",
    "ip": "127.0.0.1",
    "info": None,
    "kernel_info": None,
    "exit_on_shutdown": True,
    "iopub_welcome": True,
}


@pytest.fixture
def fake_kernel_info(fake_kernel: FakeKernel) -> ConnectionInfo:
    """The connection info of the ``fake_kernel`` fixture."""
    return fake_kernel.connection_info
