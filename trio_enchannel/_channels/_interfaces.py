"""What the client needs of its channels, declared once for every transport.

:class:`~trio_enchannel.Channels` (ZeroMQ) and :class:`~trio_enchannel.RemoteChannels`
(websocket) implement every protocol here in full, so the client calls these methods without
asking whether they exist. This module imports neither pyzmq nor a transport.

One vocabulary for the kernel's liveness, used by every name in the library. Two questions,
two pairs of words:

* **alive** / **dead**: does the kernel exist? Dead is final: its process exited, or the
  server reports it ``dead`` or no longer has it; every call then fails at once with
  :class:`~trio_enchannel.KernelDied` (``Kernel.is_alive``, ``Kernel.died``,
  ``RemoteChannels.died``, ``KernelClient.declare_dead``).
* **responsive** / **unresponsive**: does it answer? Unresponsive is the verdict of the
  channels' watch (the heartbeat), not a fact: the kernel may become responsive again.
  Responsive is the initial assumption. A remote kernel's watch (the server) declares it
  unresponsive only when it is dead.

And for IOPub: **ready** (``iopub_ready``, ``wait_iopub_ready``): messages the kernel publishes
from now on reach this side. Waiting methods are named ``wait_<what>`` (``wait_responsive``,
``wait_connected``, ``wait_ready``, ``wait_request``), never ``wait_for_<what>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import trio

from .._errors import KernelDied, RemoteProtocolError
from .._io._fanout import Subscribable
from .._wire._message import ChannelName, Message
from .._wire._session import Session

__all__ = [
    "ChannelsListener",
    "ClientChannels",
    "DirectConsumers",
    "IOPubSource",
    "Listening",
    "Liveness",
    "Readiness",
    "RejectListener",
]

#: ``(channel, claimed parent msg_id or None, error)``: called for every message rejected for
#: its signature; see :meth:`Channels.add_reject_listener
#: <trio_enchannel.Channels.add_reject_listener>`.
RejectListener = Callable[[ChannelName, "str | None", RemoteProtocolError], None]


class ChannelsListener(Protocol):
    """Told by the channels about troubles the moment they are noticed (synchronously, from a
    reader task: keep the calls short). :class:`~trio_enchannel.KernelClient` registers one."""

    def connection_lost(self, error: BaseException) -> None:
        """The connection dropped: requests in flight will get no answer (``error`` is a
        :class:`~trio_enchannel.ConnectionLost`)."""

    def kernel_restarted(self, reason: str) -> None:
        """The kernel was restarted behind the channels' back (a new process)."""

    def kernel_died(self, error: KernelDied) -> None:
        """The kernel is dead (final)."""


class Liveness(Protocol):
    """Whether the kernel answers, in the vocabulary of this module."""

    @property
    def unresponsive_error(self) -> KernelDied | None:
        """The :class:`~trio_enchannel.KernelDied` describing why, ready to raise, while the
        kernel is declared unresponsive (or is dead); else ``None``."""

    async def wait_unresponsive(self) -> KernelDied:
        """Wait until the kernel is declared unresponsive (at once if it is) and return
        :attr:`unresponsive_error`. Without a watch (no heartbeat) this never returns.

        Raises:
            trio.ClosedResourceError: the channels were closed while waiting.
        """
        ...

    async def wait_responsive(self) -> None:
        """Wait until the kernel is responsive (at once if it is).

        Raises:
            KernelDied: the kernel is dead: it will never answer again.
            trio.ClosedResourceError: the channels were closed while waiting.
        """


class Listening(Protocol):
    """Callbacks the channels call when they notice trouble."""

    def add_listener(self, listener: ChannelsListener) -> None:
        """Register ``listener`` (see :class:`ChannelsListener`)."""

    def add_reject_listener(self, listener: RejectListener) -> None:
        """Call ``listener`` for every message rejected for its signature."""


class Readiness(Protocol):
    """Whether messages can flow both ways."""

    @property
    def iopub_ready(self) -> bool:
        """Whether IOPub messages published from now on reach this side."""

    async def wait_iopub_ready(
        self, *, welcome_grace: float = 0.2, nudge_every: float = 0.5
    ) -> None:
        """Wait until :attr:`iopub_ready`."""

    async def wait_connected(self) -> None:
        """Wait until every channel is connected, so no message the kernel starts is lost."""


@runtime_checkable
class IOPubSource(Subscribable, Protocol):
    """What the client needs of the channels' ``iopub``: messages, drop accounting and
    subscriptions (:class:`~trio_enchannel.IOPubChannel` of both transports)."""

    async def receive(self) -> Message:
        """The next IOPub message (:class:`trio.EndOfChannel` once they end)."""
        ...

    def dropped_for(self, msg_id: str) -> int:
        """How many IOPub messages of the request ``msg_id`` never reached this side."""
        ...


class DirectConsumers(Protocol):
    """Channels whose reader can hand each message straight to a sole consumer. Both
    transports can; channels of your own may decline (``set_consumer`` returns ``False``),
    and the client's dispatcher then reads ``receive()``."""

    def set_consumer(
        self, name: ChannelName, consumer: Callable[[Message], None] | None, *, view: object
    ) -> bool:
        """Make ``consumer`` the sole consumer of channel ``name`` (``None``: stop) in place
        of ``view`` (the channels' own view of it, else nothing changes); return whether it
        changed. See :meth:`Channels.set_consumer
        <trio_enchannel.Channels.set_consumer>`."""
        ...


@runtime_checkable
class ClientChannels(Liveness, Listening, Readiness, DirectConsumers, Protocol):
    """Everything :class:`~trio_enchannel.KernelClient` needs of its channels."""

    @property
    def session(self) -> Session:
        """Builds (and signs) the messages the client sends."""
        ...

    @property
    def shell(self) -> trio.abc.Channel[Message]: ...

    @property
    def control(self) -> trio.abc.Channel[Message]: ...

    @property
    def stdin(self) -> trio.abc.Channel[Message]: ...

    @property
    def iopub(self) -> IOPubSource: ...
