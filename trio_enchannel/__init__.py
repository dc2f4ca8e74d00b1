"""trio-enchannel: Trio-native channels, client, kernel side and launcher for Jupyter kernels.

The public API is re-exported here; every other module is private.

The names are imported on first use (PEP 562), so ``import trio_enchannel`` -- and the pytest
plugin, which every pytest run in an environment with trio-enchannel loads -- stays cheap:
trio, pyzmq and the rest are imported only when a name that needs them is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._util import lazy_exports

if TYPE_CHECKING:  # what type checkers see: the same names as _EXPORTS (a test checks)
    from ._channels._channels import Channels as Channels
    from ._channels._channels import IOPubOverflow as IOPubOverflow
    from ._channels._channels import open_channels as open_channels
    from ._channels._heartbeat import Heartbeat as Heartbeat
    from ._channels._heartbeat import HeartbeatState as HeartbeatState
    from ._channels._heartbeat import HeartbeatStatistics as HeartbeatStatistics
    from ._channels._interfaces import ChannelsListener as ChannelsListener
    from ._channels._interfaces import ClientChannels as ClientChannels
    from ._channels._interfaces import IOPubSource as IOPubSource
    from ._channels._views import ChannelsStatistics as ChannelsStatistics
    from ._channels._views import IOPubChannel as IOPubChannel
    from ._channels._views import MessageChannel as MessageChannel
    from ._channels._views import MultiplexedChannel as MultiplexedChannel
    from ._client._client import ClientStatistics as ClientStatistics
    from ._client._client import Execution as Execution
    from ._client._client import InputRequest as InputRequest
    from ._client._client import KernelClient as KernelClient
    from ._client._client import StdinHandler as StdinHandler
    from ._client._client import open_client as open_client
    from ._client._comm import Comm as Comm
    from ._client._queue import DroppingQueue as DroppingQueue
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
    from ._errors import InvalidKernelSpec as InvalidKernelSpec
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
    from ._errors import RemoteAuthenticationError as RemoteAuthenticationError
    from ._errors import RemoteKernelNotFound as RemoteKernelNotFound
    from ._errors import RemoteProtocolError as RemoteProtocolError
    from ._errors import RemoteServerError as RemoteServerError
    from ._errors import SignatureMismatch as SignatureMismatch
    from ._errors import UnsignedMessage as UnsignedMessage
    from ._errors import UsageError as UsageError
    from ._io._connection_file import write_connection_file as write_connection_file
    from ._io._errors import ConnectionLost as ConnectionLost
    from ._io._errors import PeerNotConnected as PeerNotConnected
    from ._io._fanout import Subscription as Subscription
    from ._io._fanout import SubscriptionOverflow as SubscriptionOverflow
    from ._io._fanout import SubscriptionStatistics as SubscriptionStatistics
    from ._io._stats import ChannelStatistics as ChannelStatistics
    from ._io._stats import RejectedMessage as RejectedMessage
    from ._kernel._side import IOPubPublisher as IOPubPublisher
    from ._kernel._side import KernelChannels as KernelChannels
    from ._kernel._side import KernelChannelsStatistics as KernelChannelsStatistics
    from ._kernel._side import KernelEndpoint as KernelEndpoint
    from ._kernel._side import open_kernel_channels as open_kernel_channels
    from ._launch._kernel import Kernel as Kernel
    from ._launch._kernelspec import KernelSpec as KernelSpec
    from ._launch._kernelspec import find_kernel_specs as find_kernel_specs
    from ._launch._kernelspec import get_kernel_spec as get_kernel_spec
    from ._launch._kernelspec import list_kernel_specs as list_kernel_specs
    from ._launch._open import open_kernel as open_kernel
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

# The public names, by the private module that defines each: imported on first use, and
# shown in tracebacks and the docs as trio_enchannel.<name> (see _util.lazy_exports).
_EXPORTS: dict[str, tuple[str, ...]] = {
    "._channels._channels": ("Channels", "IOPubOverflow", "open_channels"),
    "._channels._interfaces": ("ChannelsListener", "ClientChannels", "IOPubSource"),
    "._channels._heartbeat": ("Heartbeat", "HeartbeatState", "HeartbeatStatistics"),
    "._channels._views": (
        "ChannelsStatistics",
        "IOPubChannel",
        "MessageChannel",
        "MultiplexedChannel",
    ),
    "._client._client": (
        "ClientStatistics",
        "Execution",
        "InputRequest",
        "KernelClient",
        "StdinHandler",
        "open_client",
    ),
    "._client._comm": ("Comm",),
    "._client._queue": ("DroppingQueue",),
    "._client._results": ("ExecuteResult", "KernelInfo", "Reply"),
    "._errors": (
        "CellExecutionError",
        "CellTimeoutError",
        "ConfigurationError",
        "ConnectionInfoError",
        "DuplicateSignature",
        "EnchannelError",
        "EncryptionUnavailable",
        "InvalidKernelSpec",
        "InvalidSignature",
        "KernelDied",
        "KernelError",
        "KernelStartupError",
        "LocalProtocolError",
        "MalformedMessage",
        "NoSuchKernel",
        "NotebookError",
        "NotebookKernelDied",
        "OutputPathError",
        "OutputsLost",
        "ParameterError",
        "RemoteAuthenticationError",
        "RemoteKernelNotFound",
        "RemoteProtocolError",
        "RemoteServerError",
        "SignatureMismatch",
        "UnsignedMessage",
        "UsageError",
    ),
    "._io._connection_file": ("write_connection_file",),
    "._io._errors": ("ConnectionLost", "PeerNotConnected"),
    "._io._fanout": ("Subscription", "SubscriptionOverflow", "SubscriptionStatistics"),
    "._io._stats": ("ChannelStatistics", "RejectedMessage"),
    "._kernel._side": (
        "IOPubPublisher",
        "KernelChannels",
        "KernelChannelsStatistics",
        "KernelEndpoint",
        "open_kernel_channels",
    ),
    "._launch._kernelspec": (
        "KernelSpec",
        "find_kernel_specs",
        "get_kernel_spec",
        "list_kernel_specs",
    ),
    "._launch._kernel": ("Kernel",),
    "._launch._open": ("open_kernel",),
    "._notebook._runner": (
        "CellFinished",
        "CellOutput",
        "CellStarted",
        "NotebookEvent",
        "NotebookFinished",
        "execute_notebook",
    ),
    "._remote._channels": (
        "RemoteChannels",
        "RemoteChannelsStatistics",
        "RemoteConnectionStatistics",
        "open_remote_channels",
    ),
    "._remote._kernel": ("RemoteKernel", "open_remote_kernel"),
    "._remote._rest": (
        "RemoteKernelModel",
        "RemoteKernelSpec",
        "RemoteServer",
        "open_remote_server",
    ),
    "._wire._connection": ("ConnectionInfo",),
    "._wire._message": ("CHANNEL_NAMES", "ChannelName", "Header", "Message"),
    "._wire._outputs": ("ErrorInfo", "OutputAccumulator"),
    "._wire._session": ("DELIMITER", "Session"),
}

# Hidden from type checkers: a misspelt name is an error, and a star import gives them the
# re-exports above (a computed __all__ would give them nothing).
if not TYPE_CHECKING:
    __all__ = sorted(name for names in _EXPORTS.values() for name in names)
    __getattr__, __dir__ = lazy_exports(
        globals(),
        _EXPORTS,
        extra_for=lambda module: "remote" if module.startswith("._remote.") else None,
    )
