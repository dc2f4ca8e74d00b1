"""Launching kernels the Trio way: :func:`open_kernel`.

The kernel process belongs to the ``async with`` block that started it. Leaving the block for
any reason (normally, by exception, by cancellation) shuts the kernel down in a shielded
sequence (``shutdown_request`` on control, a grace period, SIGTERM to its process group,
SIGKILL), reaps it, and removes its connection file and ipc socket files. This module checks
the arguments, resolves the kernelspec and writes the connection file; :class:`.Kernel` does
the rest.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import trio

from .._errors import ConfigurationError, EncryptionUnavailable
from .._io._connection_file import write_connection_file
from .._util import unwrap_single
from .._wire._connection import ConnectionInfo
from ._argv import kernel_argv, kernel_env
from ._kernel import Kernel, launched
from ._kernelspec import KernelSpec, get_kernel_spec
from ._options import EncryptionMode, KernelOptions
from ._process import OutputMode

__all__ = ["open_kernel", "open_kernel_with"]


def _resolve_spec(
    name_or_spec: str | KernelSpec, kernel_dirs: Iterable[str | os.PathLike[str]] | None
) -> KernelSpec:
    if isinstance(name_or_spec, KernelSpec):
        return name_or_spec
    return get_kernel_spec(name_or_spec, kernel_dirs=kernel_dirs)


def _encryption_keys(spec: KernelSpec, encryption: EncryptionMode) -> tuple[str, str] | None:
    if encryption == "off":
        return None
    from .._io._zmq import curve_keypair, has_curve

    if encryption == "auto":
        return curve_keypair() if has_curve() and spec.supports_curve else None
    if encryption != "required":
        raise ConfigurationError(
            f"encryption must be 'off', 'auto' or 'required', got {encryption!r}"
        )
    if not spec.supports_curve:
        declared = ", ".join(spec.supported_encryption) or "none"
        raise EncryptionUnavailable(
            f"encryption is required but kernel {spec.name!r} does not declare CurveZMQ support "
            f"(metadata.supported_encryption: {declared})"
        )
    return curve_keypair()  # raises EncryptionUnavailable when libzmq lacks curve


@contextlib.asynccontextmanager
async def open_kernel(
    name_or_spec: str | KernelSpec = "python3",
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str | None] | None = None,
    extra_arguments: Sequence[str] = (),
    startup_timeout: float = 60.0,
    output: OutputMode = "capture",
    encryption: EncryptionMode = "off",
    transport: Literal["tcp", "ipc"] = "tcp",
    ip: str = "127.0.0.1",
    shutdown_grace: float = 5.0,
    terminate_grace: float = 2.0,
    runtime_dir: str | os.PathLike[str] | None = None,
    kernel_dirs: Iterable[str | os.PathLike[str]] | None = None,
    connect: bool = True,
    client_options: Mapping[str, Any] | None = None,
) -> AsyncIterator[Kernel]:
    """Start a kernel, wait until it is ready, and shut it down when the block ends.

    ::

        async with open_kernel("python3") as kernel:
            result = await kernel.client.execute("print(6 * 7)")

    Args:
        name_or_spec: a kernelspec name (looked up with :func:`get_kernel_spec`) or a
            :class:`KernelSpec`.
        cwd: the kernel's working directory (default: ours).
        env: variables set on top of our environment and the spec's ``env``; ``None`` as a
            value removes a variable.
        extra_arguments: appended to the spec's ``argv``.
        startup_timeout: seconds to wait for the kernel to become ready.
        output: ``"capture"`` the kernel's stdout/stderr (the last 64 KiB of each is kept,
            see :meth:`Kernel.stderr_tail`), ``"inherit"`` ours, or ``"discard"`` them.
        encryption: CurveZMQ transport encryption: ``"off"``, ``"auto"`` (when the spec
            declares ``"supported_encryption": ["curve"]`` and libzmq supports it), or
            ``"required"``.
        transport: ``"tcp"`` (loopback ports) or ``"ipc"`` (Unix sockets in a private
            directory; no port race).
        ip: the address to listen on for ``tcp``.
        shutdown_grace: seconds to wait for the kernel to exit after ``shutdown_request``.
        terminate_grace: seconds to wait after SIGTERM before SIGKILL.
        runtime_dir: where to write the connection file (default: Jupyter's runtime dir).
        kernel_dirs: kernelspec directories to search instead of Jupyter's path.
        connect: open a :class:`KernelClient` (``kernel.client``) and wait for the kernel to
            answer. With ``False`` no client is opened; readiness means the kernel listens.
        client_options: keyword arguments for :func:`open_client` (checked, names and
            values, before the kernel starts).

    Yields:
        The running :class:`Kernel`.

    Raises:
        NoSuchKernel: no kernelspec has that name.
        InvalidKernelSpec: the kernelspec's ``kernel.json`` is invalid.
        KernelStartupError: the process could not be started, exited during startup, or did
            not become ready in time (the message includes the tail of its stderr). A launch
            whose TCP ports were taken by another program in the meantime ("Address already
            in use") is retried with fresh ports (3 attempts in all) before
            this is raised.
        EncryptionUnavailable: ``encryption="required"`` and the kernel or libzmq cannot
            provide CurveZMQ.
        ConfigurationError: an invalid option value (it is a :class:`ValueError`);
            :class:`~trio_enchannel.ConnectionInfoError` for an ``ip`` this host cannot
            listen on.
        TypeError: an argument has the wrong type.
    """
    if not isinstance(name_or_spec, (str, KernelSpec)):
        raise TypeError(
            f"name_or_spec must be a kernel name (str) or a KernelSpec, "
            f"got {type(name_or_spec).__name__}"
        )
    options = KernelOptions.build(
        cwd=cwd,
        env=env,
        extra_arguments=extra_arguments,
        startup_timeout=startup_timeout,
        output=output,
        encryption=encryption,
        transport=transport,
        ip=ip,
        shutdown_grace=shutdown_grace,
        terminate_grace=terminate_grace,
        runtime_dir=runtime_dir,
        kernel_dirs=kernel_dirs,
        connect=connect,
        client_options=client_options,
    )
    async with open_kernel_with(name_or_spec, options) as kernel:
        yield kernel


@contextlib.asynccontextmanager
async def open_kernel_with(
    name_or_spec: str | KernelSpec, options: KernelOptions
) -> AsyncIterator[Kernel]:
    """:func:`open_kernel` with its options already checked (:class:`KernelOptions`): the
    entry point of the callers above this layer (``execute_notebook``)."""
    # Kernelspec lookup and the connection file are file I/O, which may block: never on the
    # event loop's thread. A lookup is abandoned on cancellation (it only reads); the write
    # is not, so that no connection file is left behind by an abandoned thread.
    spec = await trio.to_thread.run_sync(
        _resolve_spec, name_or_spec, options.kernel_dirs, abandon_on_cancel=True
    )
    keys = _encryption_keys(spec, options.encryption)
    info = ConnectionInfo.allocate(
        ip=options.ip, transport=options.transport, kernel_name=spec.name
    )
    ipc_dir = Path(info.ip).parent if options.transport == "ipc" else None
    if keys is not None:
        info = attrs.evolve(info, curve_publickey=keys[0], curve_secretkey=keys[1])
    try:
        connection_file = await trio.to_thread.run_sync(
            functools.partial(write_connection_file, info, runtime_dir=options.runtime_dir)
        )
    except BaseException:
        if ipc_dir is not None:
            with contextlib.suppress(OSError):
                ipc_dir.rmdir()
        raise
    with unwrap_single():
        async with trio.open_nursery() as nursery:
            kernel = Kernel(
                spec=spec,
                connection_info=info,
                connection_file=connection_file,
                argv=kernel_argv(spec, connection_file, options.extra_arguments),
                env=kernel_env(spec, options.env),
                cwd=options.cwd,
                output=options.output,
                startup_timeout=options.startup_timeout,
                shutdown_grace=options.shutdown_grace,
                terminate_grace=options.terminate_grace,
                client_options=options.client,
                nursery=nursery,
                ipc_dir=ipc_dir,
            )
            async with launched(kernel, connect=options.connect):
                yield kernel
