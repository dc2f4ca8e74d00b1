"""Layer 5, remote kernels: Jupyter Server and Enterprise Gateway, over websockets and REST.

The public names are re-exported (lazily) by :mod:`trio_enchannel`. They are imported on first
use (PEP 562), so importing one remote module does not import them all.

May import: ``_client``, ``_channels``, ``_io``, ``_wire`` and the base modules (``_errors``,
``_validate``, ``_util``).
Beyond the standard library: trio, attrs, and trio-websocket and httpx (the ``remote`` extra,
which this package needs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._util import lazy_exports

if TYPE_CHECKING:  # explicit re-exports for type checkers and IDEs; resolved lazily at runtime
    from ._channels import RemoteChannels as RemoteChannels
    from ._channels import RemoteChannelsStatistics as RemoteChannelsStatistics
    from ._channels import RemoteConnectionStatistics as RemoteConnectionStatistics
    from ._channels import open_remote_channels as open_remote_channels
    from ._errors import ConnectionLost as ConnectionLost
    from ._errors import RemoteAuthenticationError as RemoteAuthenticationError
    from ._errors import RemoteKernelNotFound as RemoteKernelNotFound
    from ._errors import RemoteServerError as RemoteServerError
    from ._kernel import RemoteKernel as RemoteKernel
    from ._kernel import open_remote_kernel as open_remote_kernel
    from ._rest import RemoteKernelModel as RemoteKernelModel
    from ._rest import RemoteKernelSpec as RemoteKernelSpec
    from ._rest import RemoteServer as RemoteServer
    from ._rest import open_remote_server as open_remote_server

__all__ = [
    "ConnectionLost",
    "RemoteAuthenticationError",
    "RemoteChannels",
    "RemoteChannelsStatistics",
    "RemoteConnectionStatistics",
    "RemoteKernel",
    "RemoteKernelModel",
    "RemoteKernelNotFound",
    "RemoteKernelSpec",
    "RemoteServer",
    "RemoteServerError",
    "open_remote_channels",
    "open_remote_kernel",
    "open_remote_server",
]

# Public name -> the private module that defines it (relative to this package).
_LAZY: dict[str, str] = {
    "ConnectionLost": "._errors",
    "RemoteAuthenticationError": "._errors",
    "RemoteChannels": "._channels",
    "RemoteChannelsStatistics": "._channels",
    "RemoteConnectionStatistics": "._channels",
    "RemoteKernel": "._kernel",
    "RemoteKernelModel": "._rest",
    "RemoteKernelNotFound": "._errors",
    "RemoteKernelSpec": "._rest",
    "RemoteServer": "._rest",
    "RemoteServerError": "._errors",
    "open_remote_channels": "._channels",
    "open_remote_kernel": "._kernel",
    "open_remote_server": "._rest",
}


if not TYPE_CHECKING:  # hidden from type checkers, so that a misspelt name is an error
    __getattr__, __dir__ = lazy_exports(globals(), _LAZY)
