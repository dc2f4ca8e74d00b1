"""Testing kit for Trio tools that talk to Jupyter kernels.

A scripted fake kernel that speaks the real protocol on loopback sockets, with faults injected
on demand, and pytest fixtures (``fake_kernel``, ``fake_kernel_info``) registered by the
trio-enchannel pytest plugin. See the "Testing" chapter of the documentation.

The names are imported on first use (PEP 562): the pytest plugin lives in this package, and
importing it must not import trio, pyzmq or the fake kernel.

May import: every layer but the command line: ``trio_enchannel`` (the public API),
``_notebook``, ``_launch``, ``_remote``, ``_client``, ``_channels``, ``_kernel``, ``_io``,
``_wire`` and the base modules (``_errors``, ``_validate``, ``_util``).
Beyond the standard library: trio, attrs, pytest (the plugin), httpx (the Jupyter Server
launcher, for the ``remote`` extra's tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._util import lazy_exports

if TYPE_CHECKING:  # what type checkers see: the same names as _EXPORTS (a test checks)
    from ._fake_kernel import FakeKernel as FakeKernel
    from ._fake_kernel import open_fake_kernel as open_fake_kernel
    from ._fake_protocol import DEFAULT_KERNEL_INFO as DEFAULT_KERNEL_INFO
    from ._script import ClearOutput as ClearOutput
    from ._script import CommClose as CommClose
    from ._script import CommMsg as CommMsg
    from ._script import CommOpen as CommOpen
    from ._script import DelayReply as DelayReply
    from ._script import DieMidRequest as DieMidRequest
    from ._script import DisplayData as DisplayData
    from ._script import DropReply as DropReply
    from ._script import DuplicateReply as DuplicateReply
    from ._script import Error as Error
    from ._script import Fault as Fault
    from ._script import FloodIopub as FloodIopub
    from ._script import ForgeSignature as ForgeSignature
    from ._script import Gate as Gate
    from ._script import Input as Input
    from ._script import Malformed as Malformed
    from ._script import Publish as Publish
    from ._script import ReplaySignature as ReplaySignature
    from ._script import ReplyAfterIdle as ReplyAfterIdle
    from ._script import Result as Result
    from ._script import Script as Script
    from ._script import Sleep as Sleep
    from ._script import Status as Status
    from ._script import Step as Step
    from ._script import StopHeartbeat as StopHeartbeat
    from ._script import Stream as Stream
    from ._script import UpdateDisplayData as UpdateDisplayData

# The public names, by the private module that defines each: imported on first use, and
# shown as trio_enchannel.testing.<name> (see _util.lazy_exports).
_EXPORTS: dict[str, tuple[str, ...]] = {
    "._fake_kernel": ("FakeKernel", "open_fake_kernel"),
    "._fake_protocol": ("DEFAULT_KERNEL_INFO",),
    "._script": (
        "ClearOutput",
        "CommClose",
        "CommMsg",
        "CommOpen",
        "DelayReply",
        "DieMidRequest",
        "DisplayData",
        "DropReply",
        "DuplicateReply",
        "Error",
        "Fault",
        "FloodIopub",
        "ForgeSignature",
        "Gate",
        "Input",
        "Malformed",
        "Publish",
        "ReplaySignature",
        "ReplyAfterIdle",
        "Result",
        "Script",
        "Sleep",
        "Status",
        "Step",
        "StopHeartbeat",
        "Stream",
        "UpdateDisplayData",
    ),
}

# Hidden from type checkers: a misspelt name is an error, and a star import gives them the
# re-exports above (a computed __all__ would give them nothing).
if not TYPE_CHECKING:
    __all__ = sorted(name for names in _EXPORTS.values() for name in names)
    __getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
