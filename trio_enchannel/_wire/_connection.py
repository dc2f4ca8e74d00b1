"""Connection information: what a Jupyter connection file says, validated, as a value.

Reading a connection file off the event loop and writing one owner-only and atomically are
I/O, in :mod:`trio_enchannel._io._connection_file`."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from .._errors import ConfigurationError, ConnectionInfoError
from .._validate import check_choice, check_ip, check_str

__all__ = ["ConnectionInfo", "SocketName"]

SocketName = Literal["shell", "iopub", "stdin", "control", "hb"]
_SOCKET_NAMES: tuple[SocketName, ...] = ("shell", "iopub", "stdin", "control", "hb")
_PORT_KEYS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
_KNOWN_KEYS = frozenset(
    (
        *_PORT_KEYS,
        "ip",
        "key",
        "transport",
        "signature_scheme",
        "kernel_name",
        "curve_publickey",
        "curve_secretkey",
    )
)

# Ports handed out by this process: never hand the same one out twice, even after the probing
# socket is closed (the kernel may not have bound it yet).
_ports_lock = threading.Lock()
_ports_given: set[int] = set()
_ipc_counter = 0


def _free_tcp_port(ip: str) -> int:
    bind_ip = "0.0.0.0" if ip in ("*", "") else ip
    family = socket.AF_INET6 if ":" in bind_ip else socket.AF_INET
    bind_ip = bind_ip.strip("[]")
    for _ in range(1000):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((bind_ip, 0))
            except OSError as exc:  # not an address of this host
                raise ConnectionInfoError(f"ip {ip!r}: cannot listen there: {exc}") from exc
            port = int(sock.getsockname()[1])
        with _ports_lock:
            if port not in _ports_given:
                _ports_given.add(port)
                return port
    raise ConnectionInfoError(f"could not find a free TCP port on {ip!r}")  # pragma: no cover


def _check_port(name: str, value: object, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConnectionInfoError(f"{source}: {name} must be an integer, got {value!r}")
    if not 0 <= value <= 65535:
        raise ConnectionInfoError(f"{source}: {name} must be in 0..65535, got {value}")
    return value


def _check_curve_key(name: str, value: object, source: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) != 40:
        raise ConnectionInfoError(
            f"{source}: {name} must be a 40-character Z85 string (CurveZMQ key)"
        )
    return value


# Validators of the attributes, so that a ConnectionInfo built directly (or with
# attrs.evolve) is checked as thoroughly as one loaded from a file. Every error is a
# ConnectionInfoError that names the field.


def _port_field(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    _check_port(attribute.name, value, "ConnectionInfo")


def _str_field(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise ConnectionInfoError(
            f"ConnectionInfo: {attribute.name} must be a str, got {type(value).__name__}"
        )


def _transport_field(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if value not in ("tcp", "ipc"):
        raise ConnectionInfoError(
            f"ConnectionInfo: transport must be 'tcp' or 'ipc', got {value!r:.80}"
        )


def _scheme_field(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value.startswith("hmac-"):
        raise ConnectionInfoError(
            f"ConnectionInfo: signature_scheme must look like 'hmac-<hash>', got {value!r:.80}"
        )


def _curve_field(_: object, attribute: attrs.Attribute[str | None], value: object) -> None:
    if value is not None and (not isinstance(value, str) or len(value) != 40):
        raise ConnectionInfoError(
            f"ConnectionInfo: {attribute.name} must be None or a 40-character Z85 string "
            "(CurveZMQ key)"
        )


def _mapping_field(_: object, attribute: attrs.Attribute[Mapping[str, Any]], value: object) -> None:
    if not isinstance(value, Mapping):
        raise ConnectionInfoError(
            f"ConnectionInfo: extra must be a mapping, got {type(value).__name__}"
        )


@attrs.frozen
class ConnectionInfo:
    """Where a kernel listens and how to sign messages for it.

    The attributes mirror the keys of a Jupyter connection file. Unknown keys are kept in
    :attr:`extra` and written back by :meth:`to_dict`. The key and the curve secret key are
    never shown in the repr.

    Attributes:
        shell_port: the shell port (for the ``ipc`` transport, as for every port, a small
            integer that suffixes the path).
        iopub_port: the IOPub port.
        stdin_port: the stdin port.
        control_port: the control port.
        hb_port: the heartbeat port.
        ip: the address (``tcp``) or path prefix (``ipc``); ``*`` means all interfaces.
        key: the HMAC signing key (empty: unsigned).
        transport: ``"tcp"`` or ``"ipc"``.
        signature_scheme: e.g. ``"hmac-sha256"``.
        kernel_name: the kernelspec name, when known.
        curve_publickey: the kernel's CurveZMQ public key (Z85), when encrypted.
        curve_secretkey: the kernel's CurveZMQ secret key (Z85; only the kernel needs it).
        extra: any other keys found in the file.

    Every field is checked whenever one is built (directly, with ``attrs.evolve``, from a dict
    or a file): a port must be an int in 0..65535, ``transport`` ``"tcp"`` or ``"ipc"``, a
    ``tcp`` ``ip`` an IP address, ``*`` or a host name, a curve key 40 Z85 characters.

    Raises:
        ConnectionInfoError: a field is invalid; the message names it.
    """

    shell_port: int = attrs.field(validator=_port_field)
    iopub_port: int = attrs.field(validator=_port_field)
    stdin_port: int = attrs.field(validator=_port_field)
    control_port: int = attrs.field(validator=_port_field)
    hb_port: int = attrs.field(validator=_port_field)
    ip: str = attrs.field(default="127.0.0.1", validator=_str_field)
    key: str = attrs.field(default="", repr=False, validator=_str_field)
    transport: Literal["tcp", "ipc"] = attrs.field(default="tcp", validator=_transport_field)
    signature_scheme: str = attrs.field(default="hmac-sha256", validator=_scheme_field)
    kernel_name: str = attrs.field(default="", validator=_str_field)
    curve_publickey: str | None = attrs.field(default=None, validator=_curve_field)
    curve_secretkey: str | None = attrs.field(default=None, repr=False, validator=_curve_field)
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False, validator=_mapping_field)

    def __attrs_post_init__(self) -> None:
        if self.transport == "tcp":
            check_ip("ConnectionInfo ip", self.ip, error=ConnectionInfoError)
        elif not self.ip:
            raise ConnectionInfoError("ConnectionInfo ip: the ipc path prefix must not be empty")

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> ConnectionInfo:
        """Validate and load connection info from a dict (a parsed connection file).

        Args:
            data: the mapping.
            source: where it came from (a file name), used in error messages.

        Raises:
            ConnectionInfoError: a required key is missing or a value has the wrong type;
                the message names the field and the source.
        """
        where = source or "connection info"
        if not isinstance(data, Mapping):
            raise ConnectionInfoError(f"{where}: expected a JSON object, got {type(data).__name__}")
        transport = data.get("transport", "tcp")
        if transport not in ("tcp", "ipc"):
            raise ConnectionInfoError(
                f"{where}: transport must be 'tcp' or 'ipc', got {transport!r}"
            )
        ports: dict[str, int] = {}
        for name in _PORT_KEYS:
            if name not in data:
                raise ConnectionInfoError(f"{where}: missing required field {name!r}")
            ports[name] = _check_port(name, data[name], where)
        strings: dict[str, str] = {}
        for name, default in (
            ("ip", "127.0.0.1"),
            ("key", ""),
            ("signature_scheme", "hmac-sha256"),
            ("kernel_name", ""),
        ):
            value = data.get(name, default)
            if value is None:
                value = default
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if not isinstance(value, str):
                raise ConnectionInfoError(f"{where}: {name} must be a string")
            strings[name] = value
        if not strings["signature_scheme"].startswith("hmac-"):
            raise ConnectionInfoError(
                f"{where}: signature_scheme must look like 'hmac-<hash>', "
                f"got {strings['signature_scheme']!r}"
            )
        ip = strings["ip"] or "127.0.0.1"
        if transport == "tcp":
            check_ip(f"{where}: ip", ip, error=ConnectionInfoError)
        extra = {k: v for k, v in data.items() if k not in _KNOWN_KEYS}
        return cls(
            **ports,
            ip=ip,
            key=strings["key"],
            transport=transport,
            signature_scheme=strings["signature_scheme"],
            kernel_name=strings["kernel_name"],
            curve_publickey=_check_curve_key("curve_publickey", data.get("curve_publickey"), where),
            curve_secretkey=_check_curve_key("curve_secretkey", data.get("curve_secretkey"), where),
            extra=extra,
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ConnectionInfo:
        """Load a connection file.

        This reads a file, which may block (a FIFO waits for its writer): the async entry
        points call it in a worker thread.

        Raises:
            ConnectionInfoError: the file cannot be read, is not UTF-8 JSON, or is invalid.
            TypeError: ``path`` is not a path.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConnectionInfoError(f"{path}: cannot read connection file: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConnectionInfoError(f"{path}: connection file is not UTF-8: {exc}") from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConnectionInfoError(f"{path}: not valid JSON: {exc}") from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def allocate(
        cls,
        *,
        ip: str = "127.0.0.1",
        transport: Literal["tcp", "ipc"] = "tcp",
        key: str | None = None,
        signature_scheme: str = "hmac-sha256",
        kernel_name: str = "",
        ipc_prefix: str | os.PathLike[str] | None = None,
    ) -> ConnectionInfo:
        """Fresh connection info with free ports and a new random key.

        TCP ports are probed by binding to port 0; a port is never handed out twice by this
        process. For ``ipc``, ``ip`` becomes a fresh path prefix in a private temporary
        directory (or ``ipc_prefix``), and the ports are 1..5.

        Raises:
            ConnectionInfoError: ``ip`` is not a local address this host can listen on, or
                no free port could be found.
            ConfigurationError: ``transport`` is neither ``"tcp"`` nor ``"ipc"``.
            TypeError: an argument has the wrong type.
        """
        check_choice("transport", transport, ("tcp", "ipc"))
        if transport == "tcp":
            check_ip("ip", ip, bindable=True, error=ConnectionInfoError)
        if key is None:
            key = uuid.uuid4().hex
        check_str("key", key)
        check_str("signature_scheme", signature_scheme)
        check_str("kernel_name", kernel_name)
        if ipc_prefix is not None and not isinstance(ipc_prefix, (str, os.PathLike)):
            raise TypeError(f"ipc_prefix must be a path, got {type(ipc_prefix).__name__}")
        if transport == "ipc":
            global _ipc_counter
            if ipc_prefix is None:
                directory = tempfile.mkdtemp(prefix="trio-enchannel-ipc-")
                with _ports_lock:
                    _ipc_counter += 1
                    count = _ipc_counter
                prefix = os.path.join(directory, f"kernel-{os.getpid()}-{count}")
            else:
                prefix = os.fspath(ipc_prefix)
            return cls(
                shell_port=1,
                iopub_port=2,
                stdin_port=3,
                control_port=4,
                hb_port=5,
                ip=prefix,
                key=key,
                transport="ipc",
                signature_scheme=signature_scheme,
                kernel_name=kernel_name,
            )
        shell, iopub, stdin, control, hb = (_free_tcp_port(ip) for _ in _PORT_KEYS)
        return cls(
            shell_port=shell,
            iopub_port=iopub,
            stdin_port=stdin,
            control_port=control,
            hb_port=hb,
            ip=ip,
            key=key,
            transport="tcp",
            signature_scheme=signature_scheme,
            kernel_name=kernel_name,
        )

    # -- use ----------------------------------------------------------------------------

    def port(self, name: SocketName) -> int:
        """The port of socket ``name`` (``"shell"``, ``"iopub"``, ``"stdin"``,
        ``"control"`` or ``"hb"``).

        Raises:
            ConfigurationError: unknown socket name (a :class:`ValueError`).
        """
        if name == "shell":
            return self.shell_port
        if name == "iopub":
            return self.iopub_port
        if name == "stdin":
            return self.stdin_port
        if name == "control":
            return self.control_port
        if name == "hb":
            return self.hb_port
        raise ConfigurationError(
            f"unknown socket name {name!r:.40}; expected one of {', '.join(_SOCKET_NAMES)}"
        )

    def url(self, name: SocketName, *, bind: bool = False) -> str:
        """The ZeroMQ endpoint of socket ``name``.

        ``tcp://{ip}:{port}`` or ``ipc://{ip}-{port}``. When connecting, an ``ip`` of ``*``
        or ``0.0.0.0`` means the local host; when binding (``bind=True``) it means every
        interface.

        Raises:
            ConfigurationError: unknown socket name (a :class:`ValueError`).
        """
        port = self.port(name)
        if self.transport == "ipc":
            return f"ipc://{self.ip}-{port}"
        ip = self.ip
        if bind:
            if ip == "0.0.0.0":
                ip = "*"
        elif ip in ("*", "0.0.0.0"):
            ip = "127.0.0.1"
        if ":" in ip and not ip.startswith("["):
            ip = f"[{ip}]"
        return f"tcp://{ip}:{port}"

    def ipc_paths(self) -> list[Path]:
        """The filesystem paths of the five ipc sockets (empty for ``tcp``)."""
        if self.transport != "ipc":
            return []
        return [Path(f"{self.ip}-{self.port(name)}") for name in _SOCKET_NAMES]

    def to_dict(self) -> dict[str, Any]:
        """The connection file's JSON object (with the key, and unknown keys kept)."""
        out: dict[str, Any] = dict(self.extra)
        out.update(
            shell_port=self.shell_port,
            iopub_port=self.iopub_port,
            stdin_port=self.stdin_port,
            control_port=self.control_port,
            hb_port=self.hb_port,
            ip=self.ip,
            key=self.key,
            transport=self.transport,
            signature_scheme=self.signature_scheme,
            kernel_name=self.kernel_name,
        )
        if self.curve_publickey is not None:
            out["curve_publickey"] = self.curve_publickey
        if self.curve_secretkey is not None:
            out["curve_secretkey"] = self.curve_secretkey
        return out
