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
    from ._channels._channels import Channels as Channels
    from ._channels._channels import IOPubOverflow as IOPubOverflow
    from ._channels._channels import open_channels as open_channels
    from ._channels._heartbeat import Heartbeat as Heartbeat
    from ._channels._heartbeat import HeartbeatState as HeartbeatState
    from ._channels._heartbeat import HeartbeatStatistics as HeartbeatStatistics
    from ._channels._views import ChannelsStatistics as ChannelsStatistics
    from ._channels._views import ChannelStatistics as ChannelStatistics
    from ._channels._views import IOPubChannel as IOPubChannel
    from ._channels._views import MessageChannel as MessageChannel
    from ._channels._views import MultiplexedChannel as MultiplexedChannel
    from ._channels._views import RejectedMessage as RejectedMessage
    from ._client._client import ClientStatistics as ClientStatistics
    from ._client._client import Execution as Execution
    from ._client._client import InputRequest as InputRequest
    from ._client._client import KernelClient as KernelClient
    from ._client._client import StdinHandler as StdinHandler
    from ._client._client import open_client as open_client
    from ._client._comm import Comm as Comm
    from ._client._results import ExecuteResult as ExecuteResult
    from ._client._results import KernelInfo as KernelInfo
    from ._client._results import Reply as Reply
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
    from ._io._connection_file import write_connection_file as write_connection_file
    from ._io._fanout import Subscription as Subscription
    from ._io._fanout import SubscriptionOverflow as SubscriptionOverflow
    from ._io._fanout import SubscriptionStatistics as SubscriptionStatistics
    from ._kernel._side import IOPubPublisher as IOPubPublisher
    from ._kernel._side import KernelChannels as KernelChannels
    from ._kernel._side import KernelEndpoint as KernelEndpoint
    from ._kernel._side import KernelStatistics as KernelStatistics
    from ._kernel._side import open_kernel_channels as open_kernel_channels
    from ._launch._kernelspec import InvalidKernelSpec as InvalidKernelSpec
    from ._launch._kernelspec import KernelSpec as KernelSpec
    from ._launch._kernelspec import find_kernel_specs as find_kernel_specs
    from ._launch._kernelspec import get_kernel_spec as get_kernel_spec
    from ._launch._kernelspec import list_kernel_specs as list_kernel_specs
    from ._launch._launcher import Kernel as Kernel
    from ._launch._launcher import open_kernel as open_kernel
    from ._notebook._runner import CellFinished as CellFinished
    from ._notebook._runner import CellOutput as CellOutput
    from ._notebook._runner import CellStarted as CellStarted
    from ._notebook._runner import NotebookEvent as NotebookEvent
    from ._notebook._runner import NotebookFinished as NotebookFinished
    from ._notebook._runner import execute_notebook as execute_notebook
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
    from ._wire._connection import ConnectionInfo as ConnectionInfo
    from ._wire._message import CHANNEL_NAMES as CHANNEL_NAMES
    from ._wire._message import ChannelName as ChannelName
    from ._wire._message import Header as Header
    from ._wire._message import Message as Message
    from ._wire._outputs import ErrorInfo as ErrorInfo
    from ._wire._outputs import OutputAccumulator as OutputAccumulator
    from ._wire._session import DELIMITER as DELIMITER
    from ._wire._session import Session as Session

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
    "CHANNEL_NAMES": "._wire._message",
    "DELIMITER": "._wire._session",
    "CellExecutionError": "._errors",
    "CellFinished": "._notebook._runner",
    "CellOutput": "._notebook._runner",
    "CellStarted": "._notebook._runner",
    "CellTimeoutError": "._errors",
    "ChannelName": "._wire._message",
    "ChannelStatistics": "._channels._views",
    "Channels": "._channels._channels",
    "ChannelsStatistics": "._channels._views",
    "ClientStatistics": "._client._client",
    "Comm": "._client._comm",
    "ConfigurationError": "._errors",
    "ConnectionInfo": "._wire._connection",
    "ConnectionInfoError": "._errors",
    "ConnectionLost": "._remote._errors",
    "DuplicateSignature": "._errors",
    "EnchannelError": "._errors",
    "EncryptionUnavailable": "._errors",
    "ErrorInfo": "._wire._outputs",
    "ExecuteResult": "._client._results",
    "Execution": "._client._client",
    "Header": "._wire._message",
    "Heartbeat": "._channels._heartbeat",
    "HeartbeatState": "._channels._heartbeat",
    "HeartbeatStatistics": "._channels._heartbeat",
    "IOPubChannel": "._channels._views",
    "IOPubOverflow": "._channels._channels",
    "IOPubPublisher": "._kernel._side",
    "InputRequest": "._client._client",
    "InvalidKernelSpec": "._launch._kernelspec",
    "InvalidSignature": "._errors",
    "Kernel": "._launch._launcher",
    "KernelChannels": "._kernel._side",
    "KernelClient": "._client._client",
    "KernelDied": "._errors",
    "KernelEndpoint": "._kernel._side",
    "KernelError": "._errors",
    "KernelInfo": "._client._results",
    "KernelSpec": "._launch._kernelspec",
    "KernelStartupError": "._errors",
    "KernelStatistics": "._kernel._side",
    "LocalProtocolError": "._errors",
    "MalformedMessage": "._errors",
    "Message": "._wire._message",
    "MessageChannel": "._channels._views",
    "MultiplexedChannel": "._channels._views",
    "NoSuchKernel": "._errors",
    "OutputsLost": "._errors",
    "NotebookError": "._errors",
    "NotebookEvent": "._notebook._runner",
    "NotebookFinished": "._notebook._runner",
    "NotebookKernelDied": "._errors",
    "OutputAccumulator": "._wire._outputs",
    "OutputPathError": "._errors",
    "ParameterError": "._errors",
    "RejectedMessage": "._channels._views",
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
    "Reply": "._client._results",
    "Session": "._wire._session",
    "SignatureMismatch": "._errors",
    "StdinHandler": "._client._client",
    "Subscription": "._io._fanout",
    "SubscriptionOverflow": "._io._fanout",
    "SubscriptionStatistics": "._io._fanout",
    "UnsignedMessage": "._errors",
    "execute_notebook": "._notebook._runner",
    "find_kernel_specs": "._launch._kernelspec",
    "get_kernel_spec": "._launch._kernelspec",
    "list_kernel_specs": "._launch._kernelspec",
    "open_channels": "._channels._channels",
    "open_client": "._client._client",
    "open_kernel": "._launch._launcher",
    "open_kernel_channels": "._kernel._side",
    "open_remote_channels": "._remote._channels",
    "open_remote_kernel": "._remote._kernel",
    "open_remote_server": "._remote._rest",
    "write_connection_file": "._io._connection_file",
}


if not TYPE_CHECKING:  # hidden from type checkers, so that a misspelt name is an error
    __getattr__, __dir__ = lazy_exports(
        globals(),
        _LAZY,
        extra_for=lambda module: "remote" if module.startswith("._remote.") else None,
    )
