"""Remote kernels: Jupyter Server and Enterprise Gateway, over websockets and REST.

Needs the ``remote`` extra (``trio-websocket`` and ``httpx``). The public names are
re-exported (lazily) by :mod:`trio_enchannel`.
"""

from __future__ import annotations

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
