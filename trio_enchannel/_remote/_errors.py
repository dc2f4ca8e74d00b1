"""Errors specific to remote kernels (Jupyter Server / Enterprise Gateway).

A dropped websocket is :class:`~trio_enchannel.ConnectionLost`, a
:class:`trio.BrokenResourceError` too, in ``_io/_errors``.
"""

from __future__ import annotations

from .._errors import EnchannelError

__all__ = [
    "RemoteAuthenticationError",
    "RemoteKernelNotFound",
    "RemoteServerError",
]


class RemoteServerError(EnchannelError):
    """A Jupyter Server or Enterprise Gateway refused or failed a request, or is unreachable.

    Attributes:
        status_code: the HTTP status, or ``None`` when the server could not be reached.
        method: the HTTP method (``"GET"``, ``"POST"``, ...; ``"WEBSOCKET"`` for the channels).
        url: the URL requested (never includes the token).
        server_message: the ``message`` (or body) the server sent back, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        method: str = "",
        url: str = "",
        server_message: str = "",
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.method = method
        self.url = url
        self.server_message = server_message


class RemoteAuthenticationError(RemoteServerError):
    """The server refused the request: HTTP 401 or 403.

    Usually a wrong or missing token (check the ``token`` argument against the server's
    ``IdentityProvider.token``, or Enterprise Gateway's ``EG_AUTH_TOKEN``); a 403 can also
    be the server's policy (Enterprise Gateway forbids listing kernels unless started with
    ``--EnterpriseGatewayApp.list_kernels=True``, and starting kernels for users it does not
    authorize). The message names the status, the URL and the server's reason.
    """


class RemoteKernelNotFound(RemoteServerError, LookupError):
    """The server has no kernel with the requested id (HTTP 404).

    Attributes:
        kernel_id: the id that was asked for.
    """

    def __init__(
        self,
        message: str,
        *,
        kernel_id: str,
        status_code: int | None = None,
        method: str = "",
        url: str = "",
        server_message: str = "",
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            method=method,
            url=url,
            server_message=server_message,
        )
        self.kernel_id = kernel_id

    def __str__(self) -> str:  # LookupError would otherwise quote the message
        return str(self.args[0])
