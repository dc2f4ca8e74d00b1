"""The REST side of Jupyter Server and Enterprise Gateway: kernelspecs and kernel lifecycle.

A thin typed client over :class:`httpx.AsyncClient` (which runs on Trio through AnyIO). Every
failure surfaces as one of our errors, translated here and nowhere else:
:class:`RemoteAuthenticationError` (401/403), :class:`RemoteKernelNotFound` (404 on a kernel),
:class:`~trio_enchannel.NoSuchKernel` (unknown kernelspec), :class:`RemoteServerError`
(anything else, including an unreachable server).
"""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import trio

from .._errors import (
    ConfigurationError,
    NoSuchKernel,
    RemoteAuthenticationError,
    RemoteKernelNotFound,
    RemoteServerError,
)
from .._validate import check_mapping, check_optional_str, check_seconds, check_str

__all__ = [
    "RemoteKernelModel",
    "RemoteKernelSpec",
    "RemoteServer",
    "normalize_server_url",
    "open_remote_server",
]

#: Default timeout (seconds) of one REST call.
DEFAULT_TIMEOUT = 30.0
#: Default timeout (seconds) of starting, restarting and shutting down a kernel.
START_TIMEOUT = 120.0


def normalize_server_url(url: str) -> tuple[str, str | None]:
    """Split a server URL into its HTTP base URL (ending in ``/``) and an embedded token.

    ``ws://`` and ``wss://`` are accepted and mapped to ``http://`` / ``https://``; a
    ``?token=...`` query (as printed by ``jupyter server``) is removed from the URL and
    returned, so that it is sent as a header rather than in every URL.

    Raises:
        ConfigurationError: the scheme is not http, https, ws or wss, or the URL has no host
            (a :class:`ValueError`).
        TypeError: ``url`` is not a str.
    """
    check_str("url", url)
    try:
        parts = urllib.parse.urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise ConfigurationError(f"server URL is not a valid URL: {url!r}: {exc}") from None
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https"):
        raise ConfigurationError(
            f"server URL must start with http://, https://, ws:// or wss://: {url!r}"
        )
    if not parts.hostname:
        raise ConfigurationError(f"server URL has no host: {url!r}")
    query = urllib.parse.parse_qs(parts.query)
    tokens = query.pop("token", None)
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    rest = urllib.parse.urlencode(query, doseq=True)
    base = urllib.parse.urlunsplit((scheme, parts.netloc, path, rest, ""))
    return base, (tokens[0] if tokens else None)


@attrs.frozen
class RemoteKernelSpec:
    """A kernelspec as a Jupyter Server or gateway describes it (``GET /api/kernelspecs``).

    Attributes:
        name: the name to start it by.
        display_name: the human-readable name.
        language: the kernel's language.
        interrupt_mode: ``"signal"`` or ``"message"`` (the server handles either).
        metadata: the spec's free-form metadata (for gateways: the process proxy, ...).
        resources: resource URLs (logos, ...) relative to the server.
        spec: the raw ``spec`` object, verbatim.
    """

    name: str
    display_name: str = ""
    language: str = ""
    interrupt_mode: str = "signal"
    metadata: dict[str, Any] = attrs.field(factory=dict)
    resources: dict[str, Any] = attrs.field(factory=dict, repr=False)
    spec: dict[str, Any] = attrs.field(factory=dict, repr=False)

    @classmethod
    def from_model(cls, name: str, model: Mapping[str, Any]) -> RemoteKernelSpec:
        """Build from one entry of ``/api/kernelspecs``' ``kernelspecs`` object.

        Raises:
            RemoteServerError: the entry is not shaped like a kernelspec model.
        """
        spec = model.get("spec")
        if not isinstance(spec, dict):
            raise RemoteServerError(f"kernelspec {name!r} from the server has no 'spec' object")
        resources = model.get("resources")
        metadata = spec.get("metadata")
        return cls(
            name=str(model.get("name", name)),
            display_name=str(spec.get("display_name", "")),
            language=str(spec.get("language", "")),
            interrupt_mode=str(spec.get("interrupt_mode", "signal")),
            metadata=metadata if isinstance(metadata, dict) else {},
            resources=resources if isinstance(resources, dict) else {},
            spec=spec,
        )


@attrs.frozen
class RemoteKernelModel:
    """A running kernel as the server reports it (``/api/kernels``).

    Attributes:
        id: the kernel id (use it to connect, interrupt, restart, shut down).
        name: the kernelspec it was started from.
        execution_state: the server's view (``"idle"``, ``"busy"``, ``"starting"``, ...).
        last_activity: ISO 8601 time of the last message, as sent by the server.
        connections: number of websocket connections to the kernel.
        extra: any other keys in the model, verbatim.
    """

    id: str
    name: str = ""
    execution_state: str | None = None
    last_activity: str | None = None
    connections: int | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False)

    @classmethod
    def from_model(cls, model: Any) -> RemoteKernelModel:
        """Build from a kernel model object.

        Raises:
            RemoteServerError: the object has no string ``id``.
        """
        if not isinstance(model, dict) or not isinstance(model.get("id"), str):
            raise RemoteServerError(f"the server sent a kernel model without an id: {model!r}")
        known = {"id", "name", "execution_state", "last_activity", "connections"}
        connections = model.get("connections")
        state = model.get("execution_state")
        activity = model.get("last_activity")
        return cls(
            id=model["id"],
            name=str(model.get("name", "")),
            execution_state=state if isinstance(state, str) else None,
            last_activity=activity if isinstance(activity, str) else None,
            connections=connections if isinstance(connections, int) else None,
            extra={k: v for k, v in model.items() if k not in known},
        )


def describe_cause(exc: BaseException) -> str:
    """The most telling message in ``exc``'s chain of causes (TLS errors first)."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    for item in chain:
        if isinstance(item, ssl.SSLError):
            return f"TLS error: {item}"
    for item in chain:
        text = str(item)
        if text:
            return text
    return type(exc).__name__


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text[:500].strip()
    if isinstance(body, dict):
        for key in ("message", "reason"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    return response.text[:500].strip()


def check_connection_options(
    *, token: object, ssl_context: object, headers: object, server: object = ""
) -> None:
    """Check the options every remote entry point shares (types, by name)."""
    if not isinstance(server, (str, RemoteServer)):
        raise TypeError(
            f"server must be a URL (str) or a RemoteServer, got {type(server).__name__}"
        )
    check_optional_str("token", token)
    if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
        raise TypeError(
            f"ssl_context must be an ssl.SSLContext or None, got {type(ssl_context).__name__}"
        )
    check_str_mapping("headers", headers)


def check_str_mapping(name: str, value: object) -> None:
    """``value`` must be ``None`` or a mapping of str to str (headers, environment)."""
    for key, item in (check_mapping(name, value) or {}).items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise TypeError(f"{name} must map str to str, got {key!r:.40}: {item!r:.40}")


def check_kernel_id(kernel_id: object) -> str:
    """``kernel_id`` itself: a non-empty str."""
    return check_str("kernel_id", kernel_id, nonempty=True)


def _kernel_id_of(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) >= 3 and parts[0] == "api" and parts[1] == "kernels":
        return urllib.parse.unquote(parts[2])
    return None


@attrs.define(eq=False)
class RemoteServer:
    """A client for one Jupyter Server or Enterprise Gateway's REST API.

    Get one from :func:`open_remote_server`; it owns an HTTP connection pool that is closed
    when the ``async with`` block ends.

    Attributes:
        url: the HTTP base URL, ending in ``/`` (the token never appears in it).
        token: the token sent in the ``Authorization`` header, or ``None``.
        ssl_context: the TLS context used for ``https``/``wss``, or ``None`` for defaults.
        timeout: the timeout of one REST call, in seconds.
        start_timeout: the timeout of starting, restarting and shutting down a kernel.
    """

    url: str
    token: str | None = attrs.field(default=None, repr=False)
    ssl_context: ssl.SSLContext | None = attrs.field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT
    start_timeout: float = START_TIMEOUT
    extra_headers: dict[str, str] = attrs.field(factory=dict, repr=False)
    _http: httpx.AsyncClient | None = attrs.field(default=None, repr=False, alias="_http")

    # -- plumbing ---------------------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        """The headers every request (REST and websocket) carries: the token and extras."""
        headers = dict(self.extra_headers)
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        return headers

    def api_url(self, path: str) -> str:
        """The absolute HTTP URL of ``path`` (relative to the server's base URL)."""
        return urllib.parse.urljoin(self.url, path)

    def websocket_url(self, kernel_id: str, session_id: str) -> str:
        """The ``ws://``/``wss://`` URL of a kernel's channels for ``session_id``."""
        http = self.api_url(
            f"api/kernels/{urllib.parse.quote(kernel_id, safe='')}/channels"
            f"?session_id={urllib.parse.quote(session_id, safe='')}"
        )
        return ("wss" if http.startswith("https:") else "ws") + http[http.index(":") :]

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        slow: bool = False,
    ) -> Any:
        if self._http is None:
            raise trio.ClosedResourceError("this RemoteServer's async with block has ended")
        url = self.api_url(path)
        try:
            response = await self._http.request(
                method,
                url,
                json=body,
                headers=self.auth_headers(),
                timeout=self.start_timeout if slow else self.timeout,
            )
        except httpx.TimeoutException as exc:
            raise RemoteServerError(
                f"{method} {url}: no answer from the server within "
                f"{self.start_timeout if slow else self.timeout:g} s",
                method=method,
                url=url,
            ) from exc
        except httpx.TransportError as exc:
            raise RemoteServerError(
                f"cannot reach the Jupyter server at {self.url}: {describe_cause(exc)}",
                method=method,
                url=url,
            ) from exc
        status = response.status_code
        if status < 300:
            if status == 204 or not response.content:
                return None
            try:
                return response.json()
            except (ValueError, UnicodeDecodeError) as exc:
                raise RemoteServerError(
                    f"{method} {url}: HTTP {status} with a body that is not JSON",
                    status_code=status,
                    method=method,
                    url=url,
                ) from exc
        message = _server_message(response)
        if status in (401, 403):
            given = "the token sent was refused" if self.token else "no token was sent"
            raise RemoteAuthenticationError(
                f"{method} {url}: HTTP {status} {response.reason_phrase} — {given}, or the "
                "server does not allow this request"
                + (f" ({message})" if message and message != response.reason_phrase else ""),
                status_code=status,
                method=method,
                url=url,
                server_message=message,
            )
        kernel_id = _kernel_id_of(path)
        if status == 404 and kernel_id is not None:
            raise RemoteKernelNotFound(
                f"the server at {self.url} has no kernel {kernel_id!r} (HTTP 404)",
                kernel_id=kernel_id,
                status_code=status,
                method=method,
                url=url,
                server_message=message,
            )
        raise RemoteServerError(
            f"{method} {url}: HTTP {status} {response.reason_phrase}"
            + (f": {message}" if message else ""),
            status_code=status,
            method=method,
            url=url,
            server_message=message,
        )

    # -- kernelspecs ------------------------------------------------------------------------

    async def kernel_specs(self) -> tuple[str | None, dict[str, RemoteKernelSpec]]:
        """The server's kernelspecs and the name of its default one.

        Returns:
            ``(default_name, {name: spec})``.

        Raises:
            RemoteAuthenticationError: the token was refused.
            RemoteServerError: the server failed or is unreachable.
        """
        data = await self._request("GET", "api/kernelspecs")
        if not isinstance(data, dict) or not isinstance(data.get("kernelspecs"), dict):
            raise RemoteServerError(f"GET {self.api_url('api/kernelspecs')}: unexpected reply")
        specs = {
            name: RemoteKernelSpec.from_model(name, model)
            for name, model in data["kernelspecs"].items()
            if isinstance(model, dict)
        }
        default = data.get("default")
        return (default if isinstance(default, str) else None), specs

    # -- kernels ----------------------------------------------------------------------------

    async def list_kernels(self) -> list[RemoteKernelModel]:
        """The kernels running on the server.

        Raises:
            RemoteAuthenticationError: the token was refused.
            RemoteServerError: the server failed or is unreachable.
        """
        data = await self._request("GET", "api/kernels")
        if not isinstance(data, list):
            raise RemoteServerError(f"GET {self.api_url('api/kernels')}: expected a list")
        return [RemoteKernelModel.from_model(item) for item in data]

    async def get_kernel(self, kernel_id: str) -> RemoteKernelModel:
        """The model of one kernel.

        Raises:
            RemoteKernelNotFound: no such kernel.
            RemoteAuthenticationError: the token was refused.
            RemoteServerError: the server failed or is unreachable.
        """
        return RemoteKernelModel.from_model(await self._request("GET", self._kpath(kernel_id)))

    async def start_kernel(
        self,
        name: str | None = None,
        *,
        path: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> RemoteKernelModel:
        """Start a kernel from the kernelspec ``name`` (the server's default when ``None``).

        Args:
            name: the kernelspec name.
            path: the working directory, relative to the server's root.
            env: environment variables for the kernel (Enterprise Gateway passes on
                ``KERNEL_*`` variables and those it is configured to allow).

        Raises:
            NoSuchKernel: the server has no kernelspec ``name``.
            RemoteAuthenticationError: the token was refused.
            RemoteServerError: the server failed to start the kernel, or is unreachable.
            TypeError: an argument has the wrong type.
        """
        check_optional_str("name", name, nonempty=True)
        check_optional_str("path", path)
        check_str_mapping("env", env)
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if path is not None:
            body["path"] = path
        if env:
            body["env"] = dict(env)
        try:
            model = await self._request("POST", "api/kernels", body=body, slow=True)
        except RemoteAuthenticationError:
            raise
        except RemoteServerError as exc:
            if name is not None and exc.status_code is not None:
                # Jupyter Server answers 500 for an unknown name; say what exists instead.
                try:
                    _, specs = await self.kernel_specs()
                except RemoteServerError:
                    raise exc from None
                if name not in specs:
                    raise NoSuchKernel(name, list(specs)) from exc
            raise
        return RemoteKernelModel.from_model(model)

    async def interrupt_kernel(self, kernel_id: str) -> None:
        """Interrupt a kernel (the server sends SIGINT or an ``interrupt_request``).

        Raises:
            RemoteKernelNotFound: no such kernel.
            RemoteAuthenticationError: the token was refused.
            RemoteServerError: the server failed or is unreachable.
        """
        await self._request("POST", self._kpath(kernel_id) + "/interrupt")

    async def restart_kernel(self, kernel_id: str) -> RemoteKernelModel:
        """Restart a kernel; its id stays the same.

        Raises:
            RemoteKernelNotFound: no such kernel.
            RemoteAuthenticationError: the token was refused.
            RemoteServerError: the server failed or is unreachable.
        """
        model = await self._request("POST", self._kpath(kernel_id) + "/restart", slow=True)
        if model is None:
            return await self.get_kernel(kernel_id)
        return RemoteKernelModel.from_model(model)

    async def shutdown_kernel(self, kernel_id: str, *, missing_ok: bool = False) -> None:
        """Shut a kernel down.

        Args:
            kernel_id: the kernel.
            missing_ok: do not raise when the kernel is already gone.

        Raises:
            RemoteKernelNotFound: no such kernel (unless ``missing_ok``).
            RemoteAuthenticationError: the token was refused.
            RemoteServerError: the server failed or is unreachable.
        """
        try:
            await self._request("DELETE", self._kpath(kernel_id), slow=True)
        except RemoteKernelNotFound:
            if not missing_ok:
                raise

    async def aclose(self) -> None:
        """Close the HTTP connection pool. Idempotent."""
        http, self._http = self._http, None
        if http is not None:
            with trio.CancelScope(shield=True):
                await http.aclose()
        await trio.lowlevel.checkpoint()

    @staticmethod
    def _kpath(kernel_id: str) -> str:
        return f"api/kernels/{urllib.parse.quote(check_kernel_id(kernel_id), safe='')}"


@asynccontextmanager
async def open_remote_server(
    url: str,
    *,
    token: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    headers: Mapping[str, str] | None = None,
    request_timeout: float = DEFAULT_TIMEOUT,
    start_timeout: float = START_TIMEOUT,
) -> AsyncIterator[RemoteServer]:
    """Open a REST client for the Jupyter Server or Enterprise Gateway at ``url``.

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:8888/`` (a ``?token=`` query is
            accepted and used as the token).
        token: the server's token, sent as ``Authorization: token ...``.
        ssl_context: TLS settings for ``https://`` (e.g. a context trusting a private CA).
        headers: extra HTTP headers for every request (a proxy's auth, ...).
        request_timeout: timeout of one REST call, in seconds.
        start_timeout: timeout of starting, restarting or shutting down a kernel (a gateway
            may have to schedule a pod or a YARN container first).

    Raises:
        ConfigurationError: ``url`` is not an http(s) or ws(s) URL, or a timeout is not a
            positive number of seconds.
        TypeError: an argument has the wrong type.
    """
    check_connection_options(token=token, ssl_context=ssl_context, headers=headers)
    check_seconds("request_timeout", request_timeout, allow_inf=True)
    check_seconds("start_timeout", start_timeout, allow_inf=True)
    base, url_token = normalize_server_url(url)
    verify: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
    http = httpx.AsyncClient(verify=verify, follow_redirects=False)
    server = RemoteServer(
        base,
        token=token if token is not None else url_token,
        ssl_context=ssl_context,
        timeout=request_timeout,
        start_timeout=start_timeout,
        extra_headers=dict(headers or {}),
        _http=http,
    )
    try:
        yield server
    finally:
        await server.aclose()
