"""The errors that are trio's :class:`trio.BrokenResourceError` too.

A caller who handles a broken connection the trio way (``except trio.BrokenResourceError``)
handles these; one who wants to know more catches them by name. They live here, not with the
others in ``_errors``, because that module sits below every layer and imports no trio.
"""

from __future__ import annotations

import trio

from .._errors import EnchannelError

__all__ = ["ConnectionLost", "PeerNotConnected"]


class ConnectionLost(EnchannelError, trio.BrokenResourceError):
    """The websocket to the server dropped.

    Raised for every request that was waiting for a reply when the connection dropped: the
    request may or may not have run on the kernel, and its reply (if any) is lost. The channels
    reconnect on their own when the kernel is still alive; new requests work again once they
    have.
    """


class PeerNotConnected(EnchannelError, trio.BrokenResourceError):
    """The kernel side has no client with the message's routing identity on this channel
    (yet): stdin refuses to send an unroutable message rather than drop it silently.

    :meth:`KernelChannels.input_request <trio_enchannel.KernelChannels.input_request>` waits
    for the client to connect (``connect_grace``) before letting this out.
    """
