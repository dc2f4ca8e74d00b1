"""The options of :func:`~trio_enchannel.open_client` (:class:`ClientOptions`), checked once
before anything is read, connected or started.

:func:`~trio_enchannel.open_client` builds them from its keyword arguments; the openers that
take a ``client_options`` dict (``open_kernel``, ``open_remote_kernel``) build them from it with
:meth:`ClientOptions.from_mapping` before they start a kernel, and hand the checked object down:
no dict of keyword arguments travels between the layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import attrs

from .._channels._options import IOPUB_HWM, ChannelOptions
from .._io._overflow import IOPUB_BUFFER_BYTES, IOPUB_BUFFER_SIZE
from .._validate import check_callable, check_int, merged_options
from .._wire._session import Session
from ._execution import StdinHandler

__all__ = ["CHANNEL_DEFAULTS", "CLIENT_DEFAULTS", "ClientOptions"]

#: The channel options of :func:`open_client` and their defaults (those of ``open_channels``).
CHANNEL_DEFAULTS: Mapping[str, object] = {
    "session": None,
    "iopub_topic": b"",
    "heartbeat": True,
    "hb_interval": 1.0,
    "hb_deadline": 5.0,
    "hb_startup_deadline": 30.0,
    "buffer_size": 1000,
    "iopub_buffer_size": IOPUB_BUFFER_SIZE,
    "iopub_buffer_bytes": IOPUB_BUFFER_BYTES,
    "iopub_overflow": "drop",
    "iopub_hwm": IOPUB_HWM,
    "report_rejects": False,
    "rejects_buffer_size": 100,
    "identity": None,
    "curve_client_keys": None,
    "linger": 1.0,
}
#: The options of :func:`open_client` that apply whatever the channels, and their defaults.
CLIENT_DEFAULTS: Mapping[str, object] = {"stdin": None, "unclaimed_buffer": 1000}


@attrs.frozen
class ClientOptions:
    """The options of :func:`~trio_enchannel.open_client`, checked once by :meth:`build` or
    :meth:`from_mapping` (use them, not the constructor).

    Attributes:
        stdin: the default handler for input prompts.
        unclaimed_buffer: how many unclaimed replies and IOPub messages are kept (each).
        session: the session of the channels the client opens (``None``: from the
            connection info).
        channels: the options of the ZeroMQ channels the client opens.
        channel_options_given: the channel options that differ from their defaults, sorted:
            refused when the client is given channels it does not open.
    """

    stdin: StdinHandler | None
    unclaimed_buffer: int
    session: Session | None
    channels: ChannelOptions
    channel_options_given: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        *,
        stdin: object,
        unclaimed_buffer: object,
        session: object,
        iopub_topic: object,
        heartbeat: object,
        hb_interval: object,
        hb_deadline: object,
        hb_startup_deadline: object,
        buffer_size: object,
        iopub_buffer_size: object,
        iopub_buffer_bytes: object,
        iopub_overflow: object,
        iopub_hwm: object,
        report_rejects: object,
        rejects_buffer_size: object,
        identity: object,
        curve_client_keys: object,
        linger: object,
    ) -> ClientOptions:
        """The options from :func:`open_client`'s keyword arguments of the same names,
        checked (the error names the argument).

        Raises:
            ConfigurationError: a value is out of range.
            TypeError: a value has the wrong type.
        """
        check_callable("stdin", stdin)
        unclaimed = check_int("unclaimed_buffer", unclaimed_buffer, at_least=1)
        if session is not None and not isinstance(session, Session):
            raise TypeError(f"session must be a Session or None, got {type(session).__name__}")
        raw: dict[str, object] = {
            "session": session,
            "iopub_topic": iopub_topic,
            "heartbeat": heartbeat,
            "hb_interval": hb_interval,
            "hb_deadline": hb_deadline,
            "hb_startup_deadline": hb_startup_deadline,
            "buffer_size": buffer_size,
            "iopub_buffer_size": iopub_buffer_size,
            "iopub_buffer_bytes": iopub_buffer_bytes,
            "iopub_overflow": iopub_overflow,
            "iopub_hwm": iopub_hwm,
            "report_rejects": report_rejects,
            "rejects_buffer_size": rejects_buffer_size,
            "identity": identity,
            "curve_client_keys": curve_client_keys,
            "linger": linger,
        }
        given = tuple(
            sorted(name for name, value in raw.items() if value != CHANNEL_DEFAULTS[name])
        )
        channels = ChannelOptions.build(
            **{name: value for name, value in raw.items() if name != "session"},
            multiplexed=False,  # the client reads every channel on its own
        )
        return cls(
            stdin=cast("StdinHandler | None", stdin),  # checked callable above
            unclaimed_buffer=unclaimed,
            session=session,
            channels=channels,
            channel_options_given=given,
        )

    @classmethod
    def from_mapping(
        cls, label: str, options: object, *, channel_options: bool = True
    ) -> ClientOptions:
        """The options from the dict ``options`` (a ``client_options`` argument named
        ``label``): each key one of :func:`open_client`'s keyword arguments (without the
        ZeroMQ channel options unless ``channel_options``), checked as by :meth:`build`.

        Raises:
            TypeError: ``options`` is not a dict (or ``None``), a key is unknown, or a value
                has the wrong type.
            ConfigurationError: a value is out of range.
        """
        defaults = {**CLIENT_DEFAULTS, **CHANNEL_DEFAULTS} if channel_options else CLIENT_DEFAULTS
        values = merged_options(label, options, defaults)
        if not channel_options:
            values = {**CHANNEL_DEFAULTS, **values}
        return cls.build(**values)
