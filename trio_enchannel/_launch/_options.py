"""The options of :func:`~trio_enchannel.open_kernel` (:class:`KernelOptions`), checked once
before any kernelspec is read, file written or process started.

:func:`~trio_enchannel.open_kernel` builds them from its keyword arguments; the callers that
take a ``kernel_options`` dict (``execute_notebook``) build them from it with
:meth:`KernelOptions.from_mapping` before any I/O and hand the checked object down: no dict of
keyword arguments travels between the layers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Literal, cast

import attrs

from .._client._options import ClientOptions
from .._errors import ConnectionInfoError
from .._validate import (
    check_bool,
    check_choice,
    check_ip,
    check_mapping,
    check_seconds,
    check_str_sequence,
    merged_options,
)
from ._process import OutputMode

__all__ = ["KERNEL_DEFAULTS", "EncryptionMode", "KernelOptions"]

EncryptionMode = Literal["off", "auto", "required"]
Transport = Literal["tcp", "ipc"]

#: The keyword arguments of :func:`open_kernel` and their defaults.
KERNEL_DEFAULTS: Mapping[str, object] = {
    "cwd": None,
    "env": None,
    "extra_arguments": (),
    "startup_timeout": 60.0,
    "output": "capture",
    "encryption": "off",
    "transport": "tcp",
    "ip": "127.0.0.1",
    "shutdown_grace": 5.0,
    "terminate_grace": 2.0,
    "runtime_dir": None,
    "kernel_dirs": None,
    "connect": True,
    "client_options": None,
}


def _check_path(name: str, value: object) -> str | os.PathLike[str] | None:
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path or None, got {type(value).__name__}")
    return cast("str | os.PathLike[str] | None", value)


def _check_env(value: object) -> dict[str, str | None] | None:
    given = check_mapping("env", value)
    if given is None:
        return None
    for key, item in given.items():
        if not isinstance(key, str) or not (item is None or isinstance(item, str)):
            raise TypeError(f"env must map str to str or None, got {key!r:.40}: {item!r:.40}")
    return dict(given)


def _check_kernel_dirs(value: object) -> tuple[str | os.PathLike[str], ...] | None:
    if value is None:
        return None
    # A lone path is iterable too (a str by its characters): never search "/", "h", ...
    if isinstance(value, (str, bytes, os.PathLike)) or not isinstance(value, Iterable):
        raise TypeError(
            f"kernel_dirs must be a list of directories or None, got {type(value).__name__}"
        )
    dirs = tuple(value)
    for index, item in enumerate(dirs):
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"kernel_dirs[{index}] must be a path, got {type(item).__name__}")
    return cast("tuple[str | os.PathLike[str], ...]", dirs)


@attrs.frozen
class KernelOptions:
    """The options of :func:`~trio_enchannel.open_kernel`, checked once by :meth:`build` or
    :meth:`from_mapping` (use them, not the constructor). The attributes are
    :func:`open_kernel`'s keyword arguments of the same names, checked; ``client`` holds the
    checked ``client_options``."""

    cwd: str | os.PathLike[str] | None
    env: Mapping[str, str | None] | None
    extra_arguments: tuple[str, ...]
    startup_timeout: float
    output: OutputMode
    encryption: EncryptionMode
    transport: Transport
    ip: str
    shutdown_grace: float
    terminate_grace: float
    runtime_dir: str | os.PathLike[str] | None
    kernel_dirs: tuple[str | os.PathLike[str], ...] | None
    connect: bool
    client: ClientOptions

    @classmethod
    def build(
        cls,
        *,
        cwd: object,
        env: object,
        extra_arguments: object,
        startup_timeout: object,
        output: object,
        encryption: object,
        transport: object,
        ip: object,
        shutdown_grace: object,
        terminate_grace: object,
        runtime_dir: object,
        kernel_dirs: object,
        connect: object,
        client_options: object,
    ) -> KernelOptions:
        """The options from :func:`open_kernel`'s keyword arguments of the same names,
        checked (the error names the argument).

        Raises:
            ConfigurationError: a value is out of range;
                :class:`~trio_enchannel.ConnectionInfoError` for an ``ip`` this host cannot
                listen on.
            TypeError: a value has the wrong type.
        """
        checked_cwd = _check_path("cwd", cwd)
        checked_runtime_dir = _check_path("runtime_dir", runtime_dir)
        checked_env = _check_env(env)
        arguments = check_str_sequence("extra_arguments", extra_arguments)
        check_seconds("startup_timeout", startup_timeout, allow_inf=True)
        check_choice("output", output, ("capture", "inherit", "discard"))
        check_choice("encryption", encryption, ("off", "auto", "required"))
        check_choice("transport", transport, ("tcp", "ipc"))
        if transport == "tcp":
            check_ip("ip", ip, bindable=True, error=ConnectionInfoError)
        check_seconds("shutdown_grace", shutdown_grace, allow_zero=True, allow_inf=True)
        check_seconds("terminate_grace", terminate_grace, allow_zero=True, allow_inf=True)
        check_bool("connect", connect)
        dirs = _check_kernel_dirs(kernel_dirs)
        # The client's options too, names and values, before the kernel starts.
        client = ClientOptions.from_mapping("client_options", client_options)
        return cls(
            cwd=checked_cwd,
            env=checked_env,
            extra_arguments=arguments,
            # checked above, each by name
            startup_timeout=cast("float", startup_timeout),
            output=cast("OutputMode", output),
            encryption=cast("EncryptionMode", encryption),
            transport=cast("Transport", transport),
            ip=cast("str", ip),
            shutdown_grace=cast("float", shutdown_grace),
            terminate_grace=cast("float", terminate_grace),
            runtime_dir=checked_runtime_dir,
            kernel_dirs=dirs,
            connect=cast("bool", connect),
            client=client,
        )

    @classmethod
    def from_mapping(
        cls, label: str, options: object, *, caller: Mapping[str, object] | None = None
    ) -> KernelOptions:
        """The options from the dict ``options`` (a ``kernel_options`` argument named
        ``label``): each key one of :func:`open_kernel`'s keyword arguments except those in
        ``caller`` (the values the caller sets itself), checked as by :meth:`build`.

        Raises:
            TypeError: ``options`` is not a dict (or ``None``), a key is unknown or one the
                caller sets, or a value has the wrong type.
            ConfigurationError: a value is out of range.
        """
        values = merged_options(label, options, KERNEL_DEFAULTS, fixed=caller)
        return cls.build(
            cwd=values["cwd"],
            env=values["env"],
            extra_arguments=values["extra_arguments"],
            startup_timeout=values["startup_timeout"],
            output=values["output"],
            encryption=values["encryption"],
            transport=values["transport"],
            ip=values["ip"],
            shutdown_grace=values["shutdown_grace"],
            terminate_grace=values["terminate_grace"],
            runtime_dir=values["runtime_dir"],
            kernel_dirs=values["kernel_dirs"],
            connect=values["connect"],
            client_options=values["client_options"],
        )
