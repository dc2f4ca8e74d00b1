"""Port collisions: TCP ports of a launch that another program took before the kernel bound them.

A TCP port is free when ConnectionInfo.allocate() picks it, but another program can take it
before the kernel binds it. Kernels report that on stderr ("Address already in use") and
then either exit (ipykernel for shell/iopub/stdin/control, xeus-python for any port) or, for
ipykernel's heartbeat, carry on without a heartbeat, so the client would declare the kernel
dead some 30 s later. The launcher treats both as a collision: the attempt is stopped and, on
a fresh launch, retried with freshly allocated ports (see :class:`.Kernel`).
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from collections.abc import Mapping

import attrs

from .._wire._connection import ConnectionInfo, SocketName

__all__ = [
    "IN_USE",
    "PORT_ATTEMPTS",
    "PortsInUse",
    "busy_ports",
    "describe_busy",
    "reports_bind_failure",
    "with_fresh_ports",
]

#: How many times a fresh launch is tried when its TCP ports turn out to be taken.
PORT_ATTEMPTS = 3
_SOCKETS: tuple[SocketName, ...] = ("shell", "iopub", "stdin", "control", "hb")
# What a kernel writes when a bind fails: ipykernel and xeus-python ("Address already in use",
# from libzmq's strerror), and EADDRINUSE's name for kernels that print the errno symbol.
IN_USE = re.compile(r"address already in use|EADDRINUSE", re.IGNORECASE)


class PortsInUse(Exception):
    """A launch attempt failed because a port of its connection was taken (internal)."""


def busy_ports(info: ConnectionInfo) -> dict[str, int]:
    """The TCP ports of *info* that another socket holds now, by name.

    Each port is probed by binding it as libzmq does (with ``SO_REUSEADDR``, so connections
    left in TIME_WAIT do not count). Only errors that say "in use" count: anything else (an
    address that is not an IP literal, a missing IPv6 stack) is left to the kernel's own bind.
    """
    if info.transport != "tcp":
        return {}
    host = "0.0.0.0" if info.ip in ("*", "") else info.ip
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return {}
    busy: dict[str, int] = {}
    for socket_name in _SOCKETS:
        name, port = f"{socket_name}_port", info.port(socket_name)
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                busy[name] = port
    return busy


def reports_bind_failure(text: str, info: ConnectionInfo) -> bool:
    """Whether *text* (a kernel's stderr) says that binding one of *info*'s ports failed."""
    ports = {str(info.port(name)) for name in _SOCKETS}
    return any(
        IN_USE.search(line) and not ports.isdisjoint(re.findall(r":(\d+)\b", line))
        for line in text.splitlines()
    )


def with_fresh_ports(info: ConnectionInfo) -> ConnectionInfo:
    """*info* with newly allocated TCP ports (key, address and everything else kept)."""
    fresh = ConnectionInfo.allocate(ip=info.ip, transport=info.transport)
    return attrs.evolve(
        info,
        shell_port=fresh.shell_port,
        iopub_port=fresh.iopub_port,
        stdin_port=fresh.stdin_port,
        control_port=fresh.control_port,
        hb_port=fresh.hb_port,
    )


def describe_busy(busy: Mapping[str, int]) -> str:
    if not busy:
        return "one of its ports was in use by another process"
    ports = ", ".join(f"{name.removesuffix('_port')} port {port}" for name, port in busy.items())
    verb = "was" if len(busy) == 1 else "were"
    return f"{ports} {verb} in use by another process"
