"""trio-enchannel: Trio-native channels, client, kernel side and launcher for Jupyter kernels.

The public API is re-exported here; every other module is private.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._channel_views import ChannelsStatistics as ChannelsStatistics
from ._channel_views import ChannelStatistics as ChannelStatistics
from ._channel_views import IOPubChannel as IOPubChannel
from ._channel_views import MessageChannel as MessageChannel
from ._channel_views import MultiplexedChannel as MultiplexedChannel
from ._channel_views import RejectedMessage as RejectedMessage
from ._channels import Channels as Channels
from ._channels import IOPubOverflow as IOPubOverflow
from ._channels import open_channels as open_channels
from ._client import ClientStatistics as ClientStatistics
from ._client import Execution as Execution
from ._client import InputRequest as InputRequest
from ._client import KernelClient as KernelClient
from ._client import StdinHandler as StdinHandler
from ._client import open_client as open_client
from ._comm import Comm as Comm
from ._connection import ConnectionInfo as ConnectionInfo
from ._connection import write_connection_file as write_connection_file
from ._errors import ConfigurationError as ConfigurationError
from ._errors import ConnectionInfoError as ConnectionInfoError
from ._errors import DuplicateSignature as DuplicateSignature
from ._errors import EnchannelError as EnchannelError
from ._errors import EncryptionUnavailable as EncryptionUnavailable
from ._errors import InvalidSignature as InvalidSignature
from ._errors import KernelDied as KernelDied
from ._errors import KernelError as KernelError
from ._errors import KernelStartupError as KernelStartupError
from ._errors import LocalProtocolError as LocalProtocolError
from ._errors import MalformedMessage as MalformedMessage
from ._errors import NoSuchKernel as NoSuchKernel
from ._errors import RemoteProtocolError as RemoteProtocolError
from ._errors import UnsignedMessage as UnsignedMessage
from ._heartbeat import Heartbeat as Heartbeat
from ._heartbeat import HeartbeatState as HeartbeatState
from ._heartbeat import HeartbeatStatistics as HeartbeatStatistics
from ._kernel_side import IOPubPublisher as IOPubPublisher
from ._kernel_side import KernelChannels as KernelChannels
from ._kernel_side import KernelEndpoint as KernelEndpoint
from ._kernel_side import KernelStatistics as KernelStatistics
from ._kernel_side import open_kernel_channels as open_kernel_channels
from ._kernelspec import InvalidKernelSpec as InvalidKernelSpec
from ._kernelspec import KernelSpec as KernelSpec
from ._kernelspec import find_kernel_specs as find_kernel_specs
from ._kernelspec import get_kernel_spec as get_kernel_spec
from ._kernelspec import list_kernel_specs as list_kernel_specs
from ._launcher import Kernel as Kernel
from ._launcher import open_kernel as open_kernel
from ._message import CHANNEL_NAMES as CHANNEL_NAMES
from ._message import ChannelName as ChannelName
from ._message import Header as Header
from ._message import Message as Message
from ._outputs import ErrorInfo as ErrorInfo
from ._outputs import OutputAccumulator as OutputAccumulator
from ._results import ExecuteResult as ExecuteResult
from ._results import KernelInfo as KernelInfo
from ._results import Reply as Reply
from ._session import DELIMITER as DELIMITER
from ._session import Session as Session

if TYPE_CHECKING:  # remote kernels need the 'remote' extra; imported lazily below
    from ._remote import ConnectionLost as ConnectionLost
    from ._remote import RemoteAuthenticationError as RemoteAuthenticationError
    from ._remote import RemoteChannels as RemoteChannels
    from ._remote import RemoteChannelsStatistics as RemoteChannelsStatistics
    from ._remote import RemoteConnectionStatistics as RemoteConnectionStatistics
    from ._remote import RemoteKernel as RemoteKernel
    from ._remote import RemoteKernelModel as RemoteKernelModel
    from ._remote import RemoteKernelNotFound as RemoteKernelNotFound
    from ._remote import RemoteKernelSpec as RemoteKernelSpec
    from ._remote import RemoteServer as RemoteServer
    from ._remote import RemoteServerError as RemoteServerError
    from ._remote import open_remote_channels as open_remote_channels
    from ._remote import open_remote_kernel as open_remote_kernel
    from ._remote import open_remote_server as open_remote_server

__version__ = "0.1.0.dev0"

__all__ = [
    "CHANNEL_NAMES",
    "DELIMITER",
    "ChannelName",
    "ChannelStatistics",
    "Channels",
    "ChannelsStatistics",
    "ClientStatistics",
    "Comm",
    "ConfigurationError",
    "ConnectionInfo",
    "ConnectionInfoError",
    "ConnectionLost",
    "DuplicateSignature",
    "EnchannelError",
    "EncryptionUnavailable",
    "ErrorInfo",
    "ExecuteResult",
    "Execution",
    "Header",
    "Heartbeat",
    "HeartbeatState",
    "HeartbeatStatistics",
    "IOPubChannel",
    "IOPubOverflow",
    "IOPubPublisher",
    "InputRequest",
    "InvalidKernelSpec",
    "InvalidSignature",
    "Kernel",
    "KernelChannels",
    "KernelClient",
    "KernelDied",
    "KernelEndpoint",
    "KernelError",
    "KernelInfo",
    "KernelSpec",
    "KernelStartupError",
    "KernelStatistics",
    "LocalProtocolError",
    "MalformedMessage",
    "Message",
    "MessageChannel",
    "MultiplexedChannel",
    "NoSuchKernel",
    "OutputAccumulator",
    "RejectedMessage",
    "RemoteAuthenticationError",
    "RemoteChannels",
    "RemoteChannelsStatistics",
    "RemoteConnectionStatistics",
    "RemoteKernel",
    "RemoteKernelModel",
    "RemoteKernelNotFound",
    "RemoteKernelSpec",
    "RemoteProtocolError",
    "RemoteServer",
    "RemoteServerError",
    "Reply",
    "Session",
    "StdinHandler",
    "UnsignedMessage",
    "find_kernel_specs",
    "get_kernel_spec",
    "list_kernel_specs",
    "open_channels",
    "open_client",
    "open_kernel",
    "open_kernel_channels",
    "open_remote_channels",
    "open_remote_kernel",
    "open_remote_server",
    "write_connection_file",
]

_REMOTE_NAMES = frozenset(
    (
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
    )
)


def __getattr__(name: str) -> Any:
    """Import the remote-kernel API on first use (it needs ``trio-enchannel[remote]``).

    Raises:
        ImportError: a remote name was asked for but ``httpx`` or ``trio-websocket`` is
            missing.
        AttributeError: no such name.
    """
    if name in _REMOTE_NAMES:
        try:
            from . import _remote
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                f"trio_enchannel.{name} needs the remote extra: pip install "
                f"'trio-enchannel[remote]' ({exc})"
            ) from exc
        value = getattr(_remote, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'trio_enchannel' has no attribute {name!r}")
