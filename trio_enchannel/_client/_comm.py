"""Comms: bidirectional message streams between a client and objects in the kernel.

A comm is opened by either side (``comm_open``) for a named *target*; both sides then
exchange ``comm_msg`` messages tagged with the comm's id, until one side sends
``comm_close``. Client -> kernel messages go on the shell channel, kernel -> client messages
come on IOPub.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import trio

from .._errors import KernelDied
from .._validate import check_buffers, check_mapping
from .._wire._message import Message
from ._queue import DroppingQueue

__all__ = ["Comm", "CommOwner"]

_Buffer = bytes | bytearray | memoryview


class CommOwner(Protocol):
    """What a comm needs of the client's dispatcher (declared here so that the dispatcher
    imports this module, never the reverse)."""

    async def send_comm(
        self,
        msg_type: str,
        content: Mapping[str, Any],
        *,
        metadata: Mapping[str, Any] | None = None,
        buffers: Sequence[_Buffer] = (),
    ) -> None:
        """Send a comm message on shell (tracked, so its reply is routed as unclaimed)."""

    def forget_comm(self, comm_id: str) -> None:
        """Stop routing messages to the comm ``comm_id``."""


class Comm(trio.abc.ReceiveChannel[Message]):
    """One comm between this client and the kernel.

    Receive the kernel's ``comm_msg`` messages with ``await comm.receive()`` or
    ``async for msg in comm`` (the payload is ``msg.content["data"]``, binary buffers are in
    ``msg.buffers``). When the kernel closes the comm, receiving ends
    (:exc:`trio.EndOfChannel`) after the messages already received; its ``comm_close``
    message is then in :attr:`close_message`.

    Created by :meth:`~trio_enchannel.KernelClient.open_comm` (opened by this client) or
    delivered by :meth:`~trio_enchannel.KernelClient.accept_comms` (opened by the kernel);
    not constructed directly.

    Attributes:
        comm_id: the comm's id.
        target_name: the target the comm was opened for.
        open_message: the ``comm_open`` message (sent by us or by the kernel).
        close_message: the kernel's ``comm_close`` message once it arrived, else ``None``.
    """

    def __init__(
        self,
        owner: CommOwner,
        comm_id: str,
        target_name: str,
        open_message: Message,
        *,
        max_buffer: float,
    ) -> None:
        self._owner = owner
        self.comm_id = comm_id
        self.target_name = target_name
        self.open_message = open_message
        self.close_message: Message | None = None
        self._queue: DroppingQueue[Message] = DroppingQueue(max_buffer)
        self._closed_by_us = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Comm {self.comm_id} target={self.target_name!r} {state}>"

    @staticmethod
    def new_id() -> str:
        """A fresh comm id."""
        return uuid.uuid4().hex

    @property
    def closed(self) -> bool:
        """Whether either side closed the comm (or the kernel went away)."""
        return self._closed_by_us or self._queue.producer_closed

    @property
    def dropped(self) -> int:
        """Messages dropped because nobody received them and the buffer was full."""
        return self._queue.dropped

    # -- sending ------------------------------------------------------------------------

    async def send(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
        buffers: Sequence[_Buffer] = (),
    ) -> None:
        """Send a ``comm_msg`` with ``data`` to the kernel side of the comm.

        Raises:
            trio.ClosedResourceError: the comm (or the client) is closed.
            KernelDied: the kernel is not answering.
            LocalProtocolError: ``data`` or ``metadata`` cannot be encoded as JSON.
            TypeError: ``data`` or ``metadata`` is not a dict, or ``buffers`` not buffers.
        """
        check_mapping("data", data)
        check_mapping("metadata", metadata)
        check_buffers("buffers", buffers)
        if self.closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError(f"comm {self.comm_id} is closed")
        await self._owner.send_comm(
            "comm_msg",
            {"comm_id": self.comm_id, "data": dict(data or {})},
            metadata=metadata,
            buffers=buffers,
        )

    async def close(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Close the comm: send ``comm_close`` (unless it is closed already) and end
        receiving. Idempotent.

        Raises:
            LocalProtocolError: ``data`` or ``metadata`` cannot be encoded as JSON.
            KernelDied: the kernel is not answering (the comm is closed on our side anyway).
            trio.ClosedResourceError: the client or its channels are closed.
            TypeError: ``data`` or ``metadata`` is not a dict.
        """
        check_mapping("data", data)
        check_mapping("metadata", metadata)
        if self.closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed_by_us = True
        self._owner.forget_comm(self.comm_id)
        self._queue.close_producer()
        await self._owner.send_comm(
            "comm_close", {"comm_id": self.comm_id, "data": dict(data or {})}, metadata=metadata
        )

    # -- receiving ----------------------------------------------------------------------

    async def receive(self) -> Message:
        """The next ``comm_msg`` from the kernel.

        Raises:
            trio.EndOfChannel: the comm was closed (by either side) and every message
                received before was delivered.
            trio.ClosedResourceError: :meth:`aclose` was called, or the client was closed.
            KernelDied: the kernel went away while the comm was open (at once, also for a
                task waiting when the death becomes known).
        """
        return await self._queue.receive()

    def receive_nowait(self) -> Message:
        """The next ``comm_msg`` from the kernel, without waiting.

        Raises:
            trio.WouldBlock: no message is waiting.
            trio.EndOfChannel: the comm is closed and drained.
            trio.ClosedResourceError: :meth:`aclose` was called.
        """
        return self._queue.receive_nowait()

    async def aclose(self) -> None:
        """Stop receiving and close the comm (sending ``comm_close`` if still open).
        Idempotent; always releases the comm even if sending fails or is cancelled."""
        try:
            with trio.move_on_after(5) as scope:
                scope.shield = True
                await self.close()
        except (trio.ClosedResourceError, trio.BrokenResourceError, KernelDied):
            pass
        finally:
            self._queue.close()

    # -- fed by the client's dispatcher -----------------------------------------------------

    def _deliver(self, msg: Message) -> None:
        if msg.msg_type == "comm_close":
            self.close_message = msg
            self._queue.close_producer()
        else:
            self._queue.put_nowait(msg)

    def _take_messages(self) -> list[Message]:
        """Every message received and not read, and the kernel's ``comm_close`` if it came
        (for the dispatcher, releasing a comm nobody will read); the comm is then closed."""
        taken = self._queue.drain_nowait()
        if self.close_message is not None:
            taken.append(self.close_message)
        self._queue.close()
        return taken

    def _fail(self, exc: BaseException) -> None:
        self._queue.close_producer(exc)
