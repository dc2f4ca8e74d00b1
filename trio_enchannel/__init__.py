"""trio-enchannel: Trio-native channels, client, kernel side and launcher for Jupyter kernels.

The public API is re-exported here; every other module is private.

The names are imported on first use (PEP 562), so ``import trio_enchannel`` -- and the pytest
plugin, which every pytest run in an environment with trio-enchannel loads -- stays cheap:
trio, pyzmq and the rest are imported only when a name that needs them is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._util import lazy_exports

if TYPE_CHECKING:  # explicit re-exports for type checkers and IDEs; resolved lazily at runtime
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
    from ._errors import CellExecutionError as CellExecutionError
    from ._errors import CellTimeoutError as CellTimeoutError
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
    from ._errors import NotebookError as NotebookError
    from ._errors import NotebookKernelDied as NotebookKernelDied
    from ._errors import OutputPathError as OutputPathError
    from ._errors import OutputsLost as OutputsLost
    from ._errors import ParameterError as ParameterError
    from ._errors import RemoteProtocolError as RemoteProtocolError
    from ._errors import SignatureMismatch as SignatureMismatch
    from ._errors import UnsignedMessage as UnsignedMessage
    from ._fanout import Subscription as Subscription
    from ._fanout import SubscriptionOverflow as SubscriptionOverflow
    from ._fanout import SubscriptionStatistics as SubscriptionStatistics
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
    from ._notebook import CellFinished as CellFinished
    from ._notebook import CellOutput as CellOutput
    from ._notebook import CellStarted as CellStarted
    from ._notebook import NotebookEvent as NotebookEvent
    from ._notebook import NotebookFinished as NotebookFinished
    from ._notebook import execute_notebook as execute_notebook
    from ._outputs import ErrorInfo as ErrorInfo
    from ._outputs import OutputAccumulator as OutputAccumulator
    from ._remote._channels import RemoteChannels as RemoteChannels
    from ._remote._channels import RemoteChannelsStatistics as RemoteChannelsStatistics
    from ._remote._channels import RemoteConnectionStatistics as RemoteConnectionStatistics
    from ._remote._channels import open_remote_channels as open_remote_channels
    from ._remote._errors import ConnectionLost as ConnectionLost
    from ._remote._errors import RemoteAuthenticationError as RemoteAuthenticationError
    from ._remote._errors import RemoteKernelNotFound as RemoteKernelNotFound
    from ._remote._errors import RemoteServerError as RemoteServerError
    from ._remote._kernel import RemoteKernel as RemoteKernel
    from ._remote._kernel import open_remote_kernel as open_remote_kernel
    from ._remote._rest import RemoteKernelModel as RemoteKernelModel
    from ._remote._rest import RemoteKernelSpec as RemoteKernelSpec
    from ._remote._rest import RemoteServer as RemoteServer
    from ._remote._rest import open_remote_server as open_remote_server
    from ._results import ExecuteResult as ExecuteResult
    from ._results import KernelInfo as KernelInfo
    from ._results import Reply as Reply
    from ._session import DELIMITER as DELIMITER
    from ._session import Session as Session

__version__ = "0.1.0.dev0"

__all__ = [
    "CHANNEL_NAMES",
    "DELIMITER",
    "CellExecutionError",
    "CellFinished",
    "CellOutput",
    "CellStarted",
    "CellTimeoutError",
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
    "NotebookError",
    "NotebookEvent",
    "NotebookFinished",
    "NotebookKernelDied",
    "OutputAccumulator",
    "OutputPathError",
    "OutputsLost",
    "ParameterError",
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
    "SignatureMismatch",
    "StdinHandler",
    "Subscription",
    "SubscriptionOverflow",
    "SubscriptionStatistics",
    "UnsignedMessage",
    "execute_notebook",
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

# Public name -> the private module that defines it (relative to this package).
_LAZY: dict[str, str] = {
    "CHANNEL_NAMES": "._message",
    "DELIMITER": "._session",
    "CellExecutionError": "._errors",
    "CellFinished": "._notebook",
    "CellOutput": "._notebook",
    "CellStarted": "._notebook",
    "CellTimeoutError": "._errors",
    "ChannelName": "._message",
    "ChannelStatistics": "._channel_views",
    "Channels": "._channels",
    "ChannelsStatistics": "._channel_views",
    "ClientStatistics": "._client",
    "Comm": "._comm",
    "ConfigurationError": "._errors",
    "ConnectionInfo": "._connection",
    "ConnectionInfoError": "._errors",
    "ConnectionLost": "._remote._errors",
    "DuplicateSignature": "._errors",
    "EnchannelError": "._errors",
    "EncryptionUnavailable": "._errors",
    "ErrorInfo": "._outputs",
    "ExecuteResult": "._results",
    "Execution": "._client",
    "Header": "._message",
    "Heartbeat": "._heartbeat",
    "HeartbeatState": "._heartbeat",
    "HeartbeatStatistics": "._heartbeat",
    "IOPubChannel": "._channel_views",
    "IOPubOverflow": "._channels",
    "IOPubPublisher": "._kernel_side",
    "InputRequest": "._client",
    "InvalidKernelSpec": "._kernelspec",
    "InvalidSignature": "._errors",
    "Kernel": "._launcher",
    "KernelChannels": "._kernel_side",
    "KernelClient": "._client",
    "KernelDied": "._errors",
    "KernelEndpoint": "._kernel_side",
    "KernelError": "._errors",
    "KernelInfo": "._results",
    "KernelSpec": "._kernelspec",
    "KernelStartupError": "._errors",
    "KernelStatistics": "._kernel_side",
    "LocalProtocolError": "._errors",
    "MalformedMessage": "._errors",
    "Message": "._message",
    "MessageChannel": "._channel_views",
    "MultiplexedChannel": "._channel_views",
    "NoSuchKernel": "._errors",
    "OutputsLost": "._errors",
    "NotebookError": "._errors",
    "NotebookEvent": "._notebook",
    "NotebookFinished": "._notebook",
    "NotebookKernelDied": "._errors",
    "OutputAccumulator": "._outputs",
    "OutputPathError": "._errors",
    "ParameterError": "._errors",
    "RejectedMessage": "._channel_views",
    "RemoteAuthenticationError": "._remote._errors",
    "RemoteChannels": "._remote._channels",
    "RemoteChannelsStatistics": "._remote._channels",
    "RemoteConnectionStatistics": "._remote._channels",
    "RemoteKernel": "._remote._kernel",
    "RemoteKernelModel": "._remote._rest",
    "RemoteKernelNotFound": "._remote._errors",
    "RemoteKernelSpec": "._remote._rest",
    "RemoteProtocolError": "._errors",
    "RemoteServer": "._remote._rest",
    "RemoteServerError": "._remote._errors",
    "Reply": "._results",
    "Session": "._session",
    "SignatureMismatch": "._errors",
    "StdinHandler": "._client",
    "Subscription": "._fanout",
    "SubscriptionOverflow": "._fanout",
    "SubscriptionStatistics": "._fanout",
    "UnsignedMessage": "._errors",
    "execute_notebook": "._notebook",
    "find_kernel_specs": "._kernelspec",
    "get_kernel_spec": "._kernelspec",
    "list_kernel_specs": "._kernelspec",
    "open_channels": "._channels",
    "open_client": "._client",
    "open_kernel": "._launcher",
    "open_kernel_channels": "._kernel_side",
    "open_remote_channels": "._remote._channels",
    "open_remote_kernel": "._remote._kernel",
    "open_remote_server": "._remote._rest",
    "write_connection_file": "._connection",
}


if not TYPE_CHECKING:  # hidden from type checkers, so that a misspelt name is an error
    __getattr__, __dir__ = lazy_exports(
        globals(),
        _LAZY,
        extra_for=lambda module: "remote" if module.startswith("._remote.") else None,
    )
