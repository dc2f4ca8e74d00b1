"""The options of the ZeroMQ channels (:class:`ChannelOptions`), checked once by the opener
that receives them as keyword arguments, before anything is read or connected.

Kept apart from :mod:`._channels` so that the layers above can build and pass these options
without importing pyzmq (a client of a remote kernel never needs it).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from .._errors import ConfigurationError
from .._io._overflow import BufferOptions
from .._validate import check_bool, check_bytes, check_int, check_seconds

__all__ = ["IOPUB_HWM", "ChannelOptions"]

#: Default receive high-water mark of the IOPub SUB socket, in messages.
IOPUB_HWM = 10_000


@attrs.frozen
class ChannelOptions:
    """The options of :func:`open_channels`, checked once by :meth:`build`.

    Attributes:
        buffers: the bounds and policies every opener shares.
        iopub_topics: the IOPub subscriptions.
        iopub_hwm: the SUB socket's receive high-water mark.
        linger: seconds unsent messages may linger after the sockets close.
        identity: the routing id of shell, control and stdin (``None``: random).
        curve_client_keys: this client's CurveZMQ keys (``None``: a fresh pair if needed).
        heartbeat, hb_interval, hb_deadline, hb_startup_deadline: see :class:`Heartbeat`.
    """

    buffers: BufferOptions
    iopub_topics: tuple[bytes, ...] = (b"",)
    iopub_hwm: int = IOPUB_HWM
    linger: float = 1.0
    identity: bytes | None = None
    curve_client_keys: tuple[str, str] | None = None
    heartbeat: bool = True
    hb_interval: float = 1.0
    hb_deadline: float = 5.0
    hb_startup_deadline: float = 30.0

    @classmethod
    def build(
        cls,
        *,
        iopub_topic: object,
        heartbeat: object,
        hb_interval: object,
        hb_deadline: object,
        hb_startup_deadline: object,
        iopub_hwm: object,
        identity: object,
        curve_client_keys: object,
        linger: object,
        buffer_size: object,
        iopub_buffer_size: object,
        iopub_buffer_bytes: object,
        iopub_overflow: object,
        multiplexed: object,
        report_rejects: object,
        rejects_buffer_size: object,
    ) -> ChannelOptions:
        """Check every option of :func:`open_channels` (types and values, by name).

        Raises:
            ConfigurationError: a value is out of range.
            TypeError: a value has the wrong type.
        """
        options = BufferOptions.build(
            buffer_size=buffer_size,
            iopub_buffer_size=iopub_buffer_size,
            iopub_buffer_bytes=iopub_buffer_bytes,
            iopub_overflow=iopub_overflow,
            multiplexed=multiplexed,
            report_rejects=report_rejects,
            rejects_buffer_size=rejects_buffer_size,
        )
        check_bool("heartbeat", heartbeat)
        interval = check_seconds("hb_interval", hb_interval)
        deadline = check_seconds("hb_deadline", hb_deadline, allow_inf=True)
        startup = check_seconds("hb_startup_deadline", hb_startup_deadline, allow_inf=True)
        linger_s = check_seconds("linger", linger, allow_zero=True)
        hwm = check_int("iopub_hwm", iopub_hwm, at_least=0)
        if isinstance(iopub_topic, (bytes, bytearray, memoryview)):
            topics: tuple[bytes, ...] = (bytes(iopub_topic),)
        elif isinstance(iopub_topic, (Sequence, frozenset, set)) and not isinstance(
            iopub_topic, str
        ):
            topics = tuple(check_bytes(f"iopub_topic[{i}]", t) for i, t in enumerate(iopub_topic))
        else:
            raise TypeError(
                "iopub_topic must be bytes or a sequence of bytes, got "
                f"{type(iopub_topic).__name__}"
            )
        routing_id: bytes | None = None
        if identity is not None:
            routing_id = check_bytes("identity", identity, nonempty=True)
            # ZeroMQ's limits for a routing id; a NUL first byte is reserved for its own ids.
            if len(routing_id) > 255 or routing_id.startswith(b"\0"):
                raise ConfigurationError(
                    "identity must be 1 to 255 bytes and must not start with a NUL byte"
                )
        keys: tuple[str, str] | None = None
        if curve_client_keys is not None:
            if not (
                isinstance(curve_client_keys, tuple)
                and len(curve_client_keys) == 2
                and all(isinstance(k, str) and len(k) == 40 for k in curve_client_keys)
            ):
                raise ConfigurationError(
                    "curve_client_keys must be a (public, secret) tuple of 40-character Z85 strings"
                )
            keys = (curve_client_keys[0], curve_client_keys[1])
        return cls(
            buffers=options,
            iopub_topics=topics,
            iopub_hwm=hwm,
            linger=linger_s,
            identity=routing_id,
            curve_client_keys=keys,
            heartbeat=bool(heartbeat),
            hb_interval=interval,
            hb_deadline=deadline,
            hb_startup_deadline=startup,
        )
