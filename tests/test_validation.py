"""Bad input at the public API: a typed error that names the argument, before any I/O.

The tables below are the specification: each row is an entry point called with one bad
argument, the error it must raise (a :class:`TypeError` for a wrong type, an
:class:`~trio_enchannel.EnchannelError` subclass for a wrong value) and the name the message
must contain. The client's rows also check that nothing was sent.
"""

from __future__ import annotations

import array
import inspect
import json
import logging
import math
import os
import re
import stat
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest
import trio

import trio_enchannel
from trio_enchannel import (
    ConfigurationError,
    ConnectionInfo,
    ConnectionInfoError,
    EnchannelError,
    Heartbeat,
    KernelClient,
    KernelSpec,
    LocalProtocolError,
    Session,
    find_kernel_specs,
    get_kernel_spec,
    list_kernel_specs,
    open_channels,
    open_client,
    open_kernel,
    open_kernel_channels,
    write_connection_file,
)
from trio_enchannel.testing import DelayReply, FakeKernel, open_fake_kernel

TIMEOUT = 20


def _remote(name: str) -> Callable[..., Any]:
    """``trio_enchannel.<name>``, imported when called: without the remote extra, the rows
    and tests that call it are skipped and the rest of this module runs."""

    def call(*args: Any, **kwargs: Any) -> Any:
        for module in ("trio_websocket", "httpx"):
            pytest.importorskip(module, reason="the remote extra")
        return getattr(trio_enchannel, name)(*args, **kwargs)

    call.__qualname__ = name
    return call


if TYPE_CHECKING:
    from trio_enchannel import open_remote_channels, open_remote_kernel, open_remote_server
else:
    open_remote_channels = _remote("open_remote_channels")
    open_remote_kernel = _remote("open_remote_kernel")
    open_remote_server = _remote("open_remote_server")

# A connection nobody listens on: opening channels to it does no harm, and an argument error
# must be raised before even that.
NOWHERE = ConnectionInfo(1, 2, 3, 4, 5, key="k")
# A notebook whose kernel does not exist: execute_notebook must refuse a bad option before it
# looks the kernel up (else the error would be NoSuchKernel).
NO_KERNEL_NOTEBOOK: dict[str, Any] = {
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {"kernelspec": {"name": "no-such-kernel", "display_name": "none"}},
    "cells": [],
}


def run_notebook(**kwargs: Any) -> Any:
    """``execute_notebook`` on that notebook (skipped without the notebook extra)."""
    nbformat = pytest.importorskip("nbformat")
    return trio_enchannel.execute_notebook(nbformat.from_dict(NO_KERNEL_NOTEBOOK), **kwargs)


run_notebook.__qualname__ = "execute_notebook"
# A server nobody listens on: the remote entry points must refuse bad arguments before
# making a request.
SERVER = "http://127.0.0.1:1/"


@attrs.frozen
class Row:
    """One bad call: ``call()`` must raise ``error`` with ``name`` in its message."""

    id: str
    call: Callable[..., Any]
    error: type[Exception]
    name: str


def bad(
    error: type[Exception], name: str, func: Callable[..., Any], /, *args: Any, **kwargs: Any
) -> Row:
    """``func(*args, **kwargs)`` raises ``error`` naming ``name``."""
    title = getattr(func, "__qualname__", getattr(func, "__name__", "call"))
    return Row(f"{title}-{name}", lambda: func(*args, **kwargs), error, name)


def req(error: type[Exception], name: str, method: str, /, *args: Any, **kwargs: Any) -> Row:
    """``client.method(*args, **kwargs)`` raises ``error`` naming ``name``."""
    return Row(
        f"{method}-{name}",
        lambda client: getattr(client, method)(*args, **kwargs),
        error,
        name,
    )


async def attempt(call: Callable[[], Any]) -> None:
    """Make the call, awaiting it or entering it as needed."""
    result = call()
    if hasattr(result, "__aenter__"):
        async with result:
            pytest.fail("the block was entered")  # pragma: no cover
    elif inspect.isawaitable(result):
        await result


def ids(table: tuple[Row, ...]) -> list[str]:
    """Unique test ids (a second row for the same argument gets a number)."""
    seen: dict[str, int] = {}
    result = []
    for row in table:
        seen[row.id] = seen.get(row.id, 0) + 1
        result.append(row.id if seen[row.id] == 1 else f"{row.id}-{seen[row.id]}")
    return result


NAN = math.nan

ENTRY_POINTS = (
    # Session: the codec
    bad(TypeError, "key", Session, key=5),
    bad(TypeError, "key", Session, key=None),
    bad(TypeError, "session_id", Session, session_id=1),
    bad(TypeError, "username", Session, username=None),
    bad(TypeError, "signature_scheme", Session, signature_scheme=b"x"),
    bad(ConfigurationError, "signature_scheme", Session, signature_scheme="sha256"),
    bad(ConfigurationError, "replay_history", Session, replay_history=0),
    bad(TypeError, "replay_history", Session, replay_history=1.5),
    # ConnectionInfo built directly
    bad(ConnectionInfoError, "shell_port", ConnectionInfo, 70000, 2, 3, 4, 5),
    bad(ConnectionInfoError, "hb_port", ConnectionInfo, 1, 2, 3, 4, "x"),
    bad(ConnectionInfoError, "iopub_port", ConnectionInfo, 1, True, 3, 4, 5),
    bad(ConnectionInfoError, "transport", ConnectionInfo, 1, 2, 3, 4, 5, transport="udp"),
    bad(ConnectionInfoError, "ip", ConnectionInfo, 1, 2, 3, 4, 5, ip="tcp://1.2.3.4"),
    bad(ConnectionInfoError, "ip", ConnectionInfo, 1, 2, 3, 4, 5, ip=""),
    bad(ConnectionInfoError, "ip", ConnectionInfo, 1, 2, 3, 4, 5, ip=None),
    bad(ConnectionInfoError, "key", ConnectionInfo, 1, 2, 3, 4, 5, key=5),
    bad(
        ConnectionInfoError,
        "signature_scheme",
        ConnectionInfo,
        1,
        2,
        3,
        4,
        5,
        signature_scheme="md5",
    ),
    bad(
        ConnectionInfoError,
        "curve_publickey",
        ConnectionInfo,
        1,
        2,
        3,
        4,
        5,
        curve_publickey="short",
    ),
    bad(ConnectionInfoError, "extra", ConnectionInfo, 1, 2, 3, 4, 5, extra=[]),
    bad(ConnectionInfoError, "control_port", attrs.evolve, NOWHERE, control_port=-1),
    bad(ConnectionInfoError, "ip", ConnectionInfo.from_dict, {**NOWHERE.to_dict(), "ip": "a b"}),
    bad(TypeError, "path", ConnectionInfo.from_file, 5),
    bad(ConfigurationError, "transport", ConnectionInfo.allocate, transport="udp"),
    bad(ConnectionInfoError, "ip", ConnectionInfo.allocate, ip="not-an-ip"),
    bad(ConnectionInfoError, "ip", ConnectionInfo.allocate, ip="192.0.2.1"),
    bad(TypeError, "key", ConnectionInfo.allocate, key=b"k"),
    bad(ConfigurationError, "socket name", NOWHERE.url, "heartbeat"),
    bad(ConfigurationError, "socket name", NOWHERE.port, 5),
    bad(TypeError, "info", write_connection_file, {}),
    bad(TypeError, "path", write_connection_file, NOWHERE, 5),
    # open_channels
    bad(TypeError, "info", open_channels, 42),
    bad(TypeError, "session", open_channels, NOWHERE, session="s"),
    bad(ConfigurationError, "hb_interval", open_channels, NOWHERE, hb_interval=NAN),
    bad(ConfigurationError, "hb_interval", open_channels, NOWHERE, hb_interval=math.inf),
    bad(ConfigurationError, "hb_deadline", open_channels, NOWHERE, hb_deadline=-1),
    bad(TypeError, "hb_startup_deadline", open_channels, NOWHERE, hb_startup_deadline="5"),
    bad(TypeError, "heartbeat", open_channels, NOWHERE, heartbeat="no"),
    bad(TypeError, "buffer_size", open_channels, NOWHERE, buffer_size="10"),
    bad(ConfigurationError, "iopub_buffer_size", open_channels, NOWHERE, iopub_buffer_size=-1),
    bad(ConfigurationError, "iopub_buffer_bytes", open_channels, NOWHERE, iopub_buffer_bytes=0),
    bad(ConfigurationError, "iopub_overflow", open_channels, NOWHERE, iopub_overflow="sometimes"),
    bad(TypeError, "iopub_hwm", open_channels, NOWHERE, iopub_hwm=1.5),
    bad(TypeError, "iopub_topic", open_channels, NOWHERE, iopub_topic="x"),
    bad(TypeError, "multiplexed", open_channels, NOWHERE, multiplexed=None),
    bad(ConfigurationError, "rejects_buffer_size", open_channels, NOWHERE, rejects_buffer_size=0),
    bad(ConfigurationError, "identity", open_channels, NOWHERE, identity=b""),
    bad(ConfigurationError, "identity", open_channels, NOWHERE, identity=b"\0id"),
    bad(TypeError, "identity", open_channels, NOWHERE, identity="id"),
    bad(
        ConfigurationError,
        "curve_client_keys",
        open_channels,
        NOWHERE,
        curve_client_keys=("a", "b"),
    ),
    bad(ConfigurationError, "linger", open_channels, NOWHERE, linger=NAN),
    bad(ConfigurationError, "hb_interval", Heartbeat, interval=0, deadline=1, make_socket=list),
    # open_client
    bad(TypeError, "info_or_channels", open_client, 42),
    bad(TypeError, "stdin", open_client, NOWHERE, stdin="y"),
    bad(ConfigurationError, "unclaimed_buffer", open_client, NOWHERE, unclaimed_buffer=0),
    bad(ConfigurationError, "hb_interval", open_client, NOWHERE, hb_interval=NAN),
    # (the client reads every channel on its own: no multiplexed channels)
    bad(TypeError, "multiplexed", open_client, NOWHERE, multiplexed=True),
    bad(ConnectionInfoError, "shell_port", open_client, {**NOWHERE.to_dict(), "shell_port": 70000}),
    # open_kernel: nothing is looked up or started
    bad(TypeError, "name_or_spec", open_kernel, 123),
    bad(ConfigurationError, "transport", open_kernel, transport="udp"),
    bad(TypeError, "extra_arguments", open_kernel, extra_arguments="--x"),
    bad(TypeError, "extra_arguments[1]", open_kernel, extra_arguments=["--x", 1]),
    bad(ConnectionInfoError, "ip", open_kernel, ip="not-an-ip"),
    bad(ConfigurationError, "startup_timeout", open_kernel, startup_timeout=NAN),
    bad(ConfigurationError, "shutdown_grace", open_kernel, shutdown_grace=-1),
    bad(TypeError, "terminate_grace", open_kernel, terminate_grace="2"),
    bad(ConfigurationError, "output", open_kernel, output="pipe"),
    bad(ConfigurationError, "encryption", open_kernel, encryption="on"),
    bad(TypeError, "env", open_kernel, env={"A": 1}),
    bad(TypeError, "cwd", open_kernel, cwd=5),
    bad(TypeError, "runtime_dir", open_kernel, runtime_dir=5),
    bad(TypeError, "connect", open_kernel, connect="yes"),
    bad(TypeError, "client_options", open_kernel, client_options=[]),
    # before the kernelspec lookup (which would fail here), not after the kernel is up
    bad(TypeError, "hb_intreval", open_kernel, "no-such-kernel", client_options={"hb_intreval": 1}),
    # and their values too (the kernel would otherwise be started first, then stopped)
    bad(
        TypeError, "hb_interval", open_kernel, "no-such-kernel", client_options={"hb_interval": "1"}
    ),
    bad(
        ConfigurationError, "linger", open_kernel, "no-such-kernel", client_options={"linger": NAN}
    ),
    bad(TypeError, "stdin", open_kernel, "no-such-kernel", client_options={"stdin": "y"}),
    bad(TypeError, "session", open_kernel, "no-such-kernel", client_options={"session": "s"}),
    bad(TypeError, "kernel_dirs", open_kernel, kernel_dirs="/nonexistent"),
    bad(TypeError, "kernel_dirs[0]", open_kernel, kernel_dirs=[5]),
    # execute_notebook(kernel_options=...): open_kernel's checks, before the kernel is looked up
    bad(TypeError, "kernel_options", run_notebook, kernel_options=[]),
    bad(
        TypeError,
        "shutdown_graec",
        run_notebook,
        kernel_options={"shutdown_graec": 1},
    ),
    # the runner sets these itself
    bad(
        TypeError,
        "startup_timeout",
        run_notebook,
        kernel_options={"startup_timeout": 5},
    ),
    bad(TypeError, "connect", run_notebook, kernel_options={"connect": 0}),
    bad(
        TypeError,
        "shutdown_grace",
        run_notebook,
        kernel_options={"shutdown_grace": "5"},
    ),
    bad(
        ConfigurationError,
        "encryption",
        run_notebook,
        kernel_options={"encryption": "on"},
    ),
    bad(TypeError, "env", run_notebook, kernel_options={"env": {"A": 1}}),
    bad(
        TypeError,
        "hb_interval",
        run_notebook,
        kernel_options={"client_options": {"hb_interval": "1"}},
    ),
    bad(
        ConfigurationError,
        "startup_timeout",
        run_notebook,
        startup_timeout=NAN,
    ),
    bad(TypeError, "extra_arguments", run_notebook, extra_arguments="--x"),
    bad(TypeError, "cwd", run_notebook, cwd=5),
    # execute_notebook's own options, checked before the kernelspec lookup
    bad(TypeError, "kernel", run_notebook, kernel="python3"),
    bad(TypeError, "kernel_name", run_notebook, kernel_name=5),
    bad(ConfigurationError, "kernel_name", run_notebook, kernel_name=""),
    bad(TypeError, "cell_timeout", run_notebook, cell_timeout="5"),
    bad(TypeError, "cell_timeout", run_notebook, cell_timeout=True),
    bad(ConfigurationError, "cell_timeout", run_notebook, cell_timeout=0),
    bad(TypeError, "allow_errors", run_notebook, allow_errors="yes"),
    bad(TypeError, "allow_error_names", run_notebook, allow_error_names="ValueError"),
    bad(TypeError, "allow_error_names", run_notebook, allow_error_names=[1]),
    bad(TypeError, "interrupt_on_timeout", run_notebook, interrupt_on_timeout=1),
    bad(TypeError, "skip_cells_with_tag", run_notebook, skip_cells_with_tag=3),
    bad(TypeError, "record_timing", run_notebook, record_timing=None),
    bad(TypeError, "store_widget_state", run_notebook, store_widget_state="no"),
    bad(TypeError, "coalesce_streams", run_notebook, coalesce_streams=0),
    bad(TypeError, "ipython_hist_file", run_notebook, ipython_hist_file=5),
    bad(TypeError, "on_event", run_notebook, on_event=5),
    # kernelspecs
    bad(TypeError, "argv", KernelSpec, name="k", argv="python -m kernel"),
    bad(TypeError, "argv", KernelSpec, name="k", argv=["python", 3]),
    bad(ConfigurationError, "argv", KernelSpec, name="k", argv=[]),
    bad(TypeError, "name", KernelSpec, name=5, argv=["k"]),
    bad(TypeError, "display_name", KernelSpec, name="k", argv=["k"], display_name=None),
    bad(TypeError, "env", KernelSpec, name="k", argv=["k"], env="A=1"),
    bad(TypeError, "metadata", KernelSpec, name="k", argv=["k"], metadata=[1]),
    bad(ConfigurationError, "interrupt_mode", KernelSpec, name="k", argv=["k"], interrupt_mode=5),
    bad(TypeError, "name", get_kernel_spec, 5),
    bad(TypeError, "kernel_dirs", get_kernel_spec, "x", kernel_dirs="/nonexistent"),
    bad(TypeError, "kernel_dirs[0]", find_kernel_specs, kernel_dirs=[5]),
    bad(ConfigurationError, "on_error", list_kernel_specs, on_error="ignore"),
    # the kernel side
    bad(TypeError, "key", open_kernel_channels, key=5),
    bad(TypeError, "info", open_kernel_channels, NOWHERE.to_dict()),
    bad(ConfigurationError, "transport", open_kernel_channels, transport="udp"),
    bad(ConnectionInfoError, "ip", open_kernel_channels, ip="not-an-ip"),
    bad(ConfigurationError, "buffer_size", open_kernel_channels, buffer_size=-1),
    bad(ConfigurationError, "rejects_buffer_size", open_kernel_channels, rejects_buffer_size=0),
    bad(TypeError, "iopub_welcome", open_kernel_channels, iopub_welcome=None),
    bad(ConfigurationError, "linger", open_kernel_channels, linger=-1),
    # the testing kit
    bad(ConfigurationError, "wait_timeout", open_fake_kernel, wait_timeout=NAN),
    bad(ConfigurationError, "transport", open_fake_kernel, transport="udp"),
    bad(TypeError, "kernel_info", open_fake_kernel, kernel_info=[]),
    bad(TypeError, "exit_on_shutdown", open_fake_kernel, exit_on_shutdown="no"),
    bad(ConnectionInfoError, "ip", open_fake_kernel, ip="not-an-ip"),
    bad(ConfigurationError, "seconds", DelayReply, seconds=-1),
    # remote kernels: checked before any request
    bad(TypeError, "url", open_remote_server, 5),
    bad(ConfigurationError, "URL", open_remote_server, "ftp://example.invalid/"),
    bad(ConfigurationError, "URL", open_remote_server, "http://127.0.0.1:99999/"),
    bad(TypeError, "token", open_remote_server, "http://127.0.0.1:1/", token=5),
    bad(TypeError, "headers", open_remote_server, "http://127.0.0.1:1/", headers={"a": 1}),
    bad(ConfigurationError, "request_timeout", open_remote_server, SERVER, request_timeout=NAN),
    bad(ConfigurationError, "start_timeout", open_remote_server, SERVER, start_timeout=0),
    bad(TypeError, "server", open_remote_channels, 5, "k"),
    bad(TypeError, "kernel_id", open_remote_channels, SERVER, None),
    bad(ConfigurationError, "kernel_id", open_remote_channels, SERVER, ""),
    bad(TypeError, "session", open_remote_channels, SERVER, "k", session="s"),
    bad(ConfigurationError, "subprotocol", open_remote_channels, SERVER, "k", subprotocol="v2"),
    bad(ConfigurationError, "ping_interval", open_remote_channels, SERVER, "k", ping_interval=0),
    bad(
        ConfigurationError,
        "connect_timeout",
        open_remote_channels,
        SERVER,
        "k",
        connect_timeout=NAN,
    ),
    bad(TypeError, "reconnect", open_remote_channels, SERVER, "k", reconnect="yes"),
    bad(TypeError, "buffer_size", open_remote_channels, SERVER, "k", buffer_size=1.0),
    bad(TypeError, "ssl_context", open_remote_channels, SERVER, "k", ssl_context=True),
    bad(TypeError, "server", open_remote_kernel, None),
    bad(TypeError, "name", open_remote_kernel, SERVER, 5),
    bad(ConfigurationError, "name", open_remote_kernel, SERVER, ""),
    bad(TypeError, "path", open_remote_kernel, SERVER, path=5),
    bad(TypeError, "env", open_remote_kernel, SERVER, env={"A": 1}),
    bad(ConfigurationError, "startup_timeout", open_remote_kernel, SERVER, startup_timeout=NAN),
    bad(ConfigurationError, "subprotocol", open_remote_kernel, SERVER, subprotocol="v2"),
    bad(TypeError, "channel_options", open_remote_kernel, SERVER, channel_options=[]),
    bad(TypeError, "client_options", open_remote_kernel, SERVER, client_options=5),
    bad(
        TypeError, "ping_intreval", open_remote_kernel, SERVER, channel_options={"ping_intreval": 1}
    ),
    bad(
        TypeError, "subprotocol", open_remote_kernel, SERVER, channel_options={"subprotocol": "v1"}
    ),
    bad(TypeError, "hb_interval", open_remote_kernel, SERVER, client_options={"hb_interval": 1}),
    # values too, before the server is asked to start anything
    bad(
        ConfigurationError,
        "ping_interval",
        open_remote_kernel,
        SERVER,
        channel_options={"ping_interval": 0},
    ),
    bad(TypeError, "reconnect", open_remote_kernel, SERVER, channel_options={"reconnect": 1}),
    bad(TypeError, "session", open_remote_kernel, SERVER, channel_options={"session": "s"}),
    bad(
        ConfigurationError,
        "unclaimed_buffer",
        open_remote_kernel,
        SERVER,
        client_options={"unclaimed_buffer": 0},
    ),
    bad(TypeError, "stdin", open_remote_kernel, SERVER, client_options={"stdin": 5}),
)


@pytest.mark.parametrize("row", ENTRY_POINTS, ids=ids(ENTRY_POINTS))
async def test_entry_point_rejects_bad_argument(row: Row) -> None:
    with trio.fail_after(TIMEOUT), pytest.raises(row.error) as caught:
        await attempt(row.call)
    assert row.name in str(caught.value)
    assert isinstance(caught.value, (TypeError, EnchannelError))


# -- the client's requests -----------------------------------------------------------------


REQUESTS = (
    req(TypeError, "code", "execute", None),
    req(TypeError, "code", "execute", b"1"),
    req(TypeError, "silent", "execute", "1", silent="no"),
    req(TypeError, "store_history", "execute", "1", store_history=None),
    req(TypeError, "allow_stdin", "execute", "1", allow_stdin=1),
    req(TypeError, "stop_on_error", "execute", "1", stop_on_error=0),
    req(TypeError, "user_expressions", "execute", "1", user_expressions={"a": 1}),
    req(TypeError, "stdin", "execute", "1", stdin="y"),
    req(LocalProtocolError, "subshell_id", "execute", "1", subshell_id=""),
    req(TypeError, "subshell_id", "execute", "1", subshell_id=1),
    req(TypeError, "metadata", "execute", "1", metadata=[]),
    req(TypeError, "raise_on_error", "execute", "1", raise_on_error=None),
    req(TypeError, "keep_messages", "execute", "1", keep_messages="all"),
    req(TypeError, "code", "stream_execute", None),
    req(ConfigurationError, "live_buffer", "stream_execute", "1", live_buffer=0),
    req(TypeError, "code", "complete", None),
    req(LocalProtocolError, "cursor_pos", "complete", "ab", 3),
    req(LocalProtocolError, "cursor_pos", "complete", "ab", -1),
    req(TypeError, "cursor_pos", "complete", "ab", "1"),
    req(TypeError, "code", "inspect", 5),
    req(LocalProtocolError, "detail_level", "inspect", "x", detail_level=2),
    req(LocalProtocolError, "detail_level", "inspect", "x", detail_level=True),
    req(LocalProtocolError, "hist_access_type", "history", hist_access_type="all"),
    req(TypeError, "n", "history", hist_access_type="tail", n="3"),
    req(LocalProtocolError, "n", "history", hist_access_type="tail", n=-1),
    req(TypeError, "session", "history", session=1.5),
    req(TypeError, "pattern", "history", hist_access_type="search", pattern=5),
    req(TypeError, "unique", "history", unique="yes"),
    req(TypeError, "output", "history", output=None),
    req(TypeError, "code", "is_complete", None),
    req(TypeError, "target_name", "comm_info", 5),
    req(LocalProtocolError, "channel", "kernel_info", channel="stdin"),
    req(TypeError, "restart", "shutdown", restart="yes"),
    req(TypeError, "command", "debug_request", 5),
    req(LocalProtocolError, "command", "debug_request", ""),
    req(TypeError, "arguments", "debug_request", "x", [1]),
    req(TypeError, "subshell_id", "delete_subshell", 5),
    req(TypeError, "target_name", "open_comm", 5),
    req(TypeError, "data", "open_comm", "t", [("a", 1)]),
    req(TypeError, "metadata", "open_comm", "t", metadata="m"),
    req(TypeError, "buffers", "open_comm", "t", buffers=b"xy"),
    req(TypeError, "buffers[0]", "open_comm", "t", buffers=["xy"]),
    req(LocalProtocolError, "comm_id", "open_comm", "t", comm_id=""),
    req(LocalProtocolError, "target_name", "accept_comms", ""),
    req(ConfigurationError, "max_buffer", "accept_comms", "t", max_buffer=0),
    req(TypeError, "msg", "send", {"msg_type": "x"}),
    req(TypeError, "msg", "request", "kernel_info_request"),
)


@pytest.fixture
async def ready_client() -> AsyncIterator[tuple[FakeKernel, KernelClient]]:
    async with open_fake_kernel() as kernel, open_client(kernel.connection_info) as client:
        with trio.fail_after(TIMEOUT):
            await client.wait_ready()
        yield kernel, client


def sent(client: KernelClient) -> int:
    stats = client.channels.statistics()  # type: ignore[attr-defined]
    return int(sum(stats[name].sent for name in ("shell", "control", "stdin")))


@pytest.mark.parametrize("row", REQUESTS, ids=ids(REQUESTS))
async def test_request_rejects_bad_argument_before_sending(
    ready_client: tuple[FakeKernel, KernelClient], row: Row
) -> None:
    _, client = ready_client
    before = sent(client)
    with trio.fail_after(TIMEOUT), pytest.raises(row.error) as caught:
        await attempt(lambda: row.call(client))
    assert row.name in str(caught.value)
    assert sent(client) == before, "something was sent"
    assert client.statistics().pending == 0


async def test_comm_send_and_close_check_their_arguments(
    ready_client: tuple[FakeKernel, KernelClient],
) -> None:
    _, client = ready_client
    with trio.fail_after(TIMEOUT):
        comm = await client.open_comm("nobody")
        before = sent(client)
        with pytest.raises(TypeError, match="data"):
            await comm.send([1])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="buffers"):
            await comm.send({}, buffers="xy")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="metadata"):
            await comm.close(metadata=5)  # type: ignore[arg-type]
        assert sent(client) == before


async def test_remote_server_methods_check_their_arguments() -> None:
    async with open_remote_server(SERVER) as server:
        for call in (
            lambda: server.get_kernel(""),
            lambda: server.interrupt_kernel(""),
            lambda: server.shutdown_kernel(""),
        ):
            with pytest.raises(ConfigurationError, match="kernel_id"):
                await call()
        with pytest.raises(TypeError, match="kernel_id"):
            await server.restart_kernel(None)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="env"):
            await server.start_kernel("python3", env={"A": 1})  # type: ignore[dict-item]
        with pytest.raises(TypeError, match="path"):
            await server.start_kernel("python3", path=5)  # type: ignore[arg-type]


async def test_fake_kernel_scripting_checks_its_arguments(fake_kernel: FakeKernel) -> None:
    with pytest.raises(TypeError, match="code"):
        fake_kernel.script(5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="status"):
        fake_kernel.script("x", status="failed")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="times"):
        fake_kernel.inject(msg_type="execute_request", times=0)
    with pytest.raises(TypeError, match="times"):
        fake_kernel.inject(times=1.5)  # type: ignore[arg-type]


def test_session_message_checks_its_parts() -> None:
    session = Session(key="k")
    for kwargs, name in (
        ({"content": 5}, "content"),
        ({"content": [("a", 1)]}, "content"),  # dict() would have accepted the pairs
        ({"metadata": "m"}, "metadata"),
        ({"parent": 5}, "parent"),
        ({"buffers": "ab"}, "buffers"),  # tuple() would have split the string
        ({"buffers": [b"a", "b"]}, "buffers[1]"),
        ({"subshell_id": 5}, "subshell_id"),
    ):
        with pytest.raises(TypeError, match=re.escape(name)):
            session.message("comm_msg", **kwargs)
    # any object with the buffer protocol is a buffer
    buffers = session.message("comm_msg", buffers=[array.array("i", [1])]).buffers  # type: ignore[list-item]
    assert bytes(buffers[0]) == array.array("i", [1]).tobytes()


async def test_kernel_side_calls_check_their_arguments() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_kernel_channels() as kc:
            request = kc.session.message("execute_request", {"code": ""}, channel="shell")
            request = attrs.evolve(request, identities=(b"client",))
            with pytest.raises(TypeError, match="msg"):
                await kc.send(None)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="request"):
                await kc.reply({"msg_type": "execute_request"})  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="content"):
                await kc.publish("stream", 5)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="topic"):
                await kc.publish("stream", {}, topic="t")  # type: ignore[arg-type]
            with pytest.raises(LocalProtocolError, match="state"):
                await kc.publish_status("sleepy")
            with pytest.raises(TypeError, match="prompt"):
                await kc.input_request(request, None)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="password"):
                await kc.input_request(request, "?", password="no")  # type: ignore[arg-type]
            with pytest.raises(ConfigurationError, match="connect_grace"):
                await kc.input_request(request, "?", connect_grace=NAN)
            stats = kc.statistics()
            assert stats.iopub.sent == stats.stdin.sent == stats.shell.sent == 0


async def test_channel_waits_check_their_arguments() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_channels(NOWHERE, heartbeat=False) as ch:
            # nudge_every=0 would send kernel_info_request in a busy loop
            with pytest.raises(ConfigurationError, match="nudge_every"):
                await ch.wait_iopub_ready(nudge_every=0)
            with pytest.raises(ConfigurationError, match="welcome_grace"):
                await ch.wait_iopub_ready(welcome_grace=NAN)
            with pytest.raises(TypeError, match="above"):
                await ch.iopub.wait_dropped("1")  # type: ignore[arg-type]
            assert ch.statistics().shell.sent == 0


# -- what used to be accepted by accident --------------------------------------------------


def test_session_key_is_never_an_integer() -> None:
    # bytes(5) is five NUL bytes: that key used to sign every message.
    with pytest.raises(TypeError, match="key"):
        Session(key=5)  # type: ignore[arg-type]
    assert Session(key="k").key == Session(key=b"k").key == b"k"


async def test_open_client_accepts_a_dict(fake_kernel: FakeKernel) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_client(fake_kernel.connection_info.to_dict()) as client:
            info = await client.kernel_info()
    assert info.protocol_version


def test_non_utf8_connection_file_is_a_connection_info_error(tmp_path: Path) -> None:
    path = tmp_path / "kernel.json"
    path.write_bytes(json.dumps(NOWHERE.to_dict()).encode().replace(b'"k"', b'"\xff"'))
    with pytest.raises(ConnectionInfoError, match="UTF-8") as caught:
        ConnectionInfo.from_file(path)
    assert str(path) in str(caught.value)


# -- empty key -------------------------------------------------------------------------------


async def test_an_empty_key_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="trio_enchannel")
    async with open_channels(attrs.evolve(NOWHERE, key=""), heartbeat=False):
        pass
    async with open_kernel_channels(key=""):
        pass
    warnings = [r for r in caplog.records if "signing is disabled" in r.getMessage()]
    assert [r.levelno for r in warnings] == [logging.WARNING] * 2
    caplog.clear()
    async with open_channels(NOWHERE, heartbeat=False):
        pass
    assert not [r for r in caplog.records if "signing is disabled" in r.getMessage()]


# -- connection files: private directories, no blocking reads on the event loop ---------------


def test_write_connection_file_makes_every_new_directory_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        target = tmp_path / "a" / "b" / "c" / "kernel.json"
        write_connection_file(NOWHERE, target)
    finally:
        os.umask(old)
    for directory in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


def _holding_a_fifo(fifo: Path, reader_waits: threading.Event, release: threading.Event) -> None:
    """Open the FIFO for writing (which returns once a reader has opened it), report that the
    reader is now blocked in its read, and write nothing until released."""
    fd = os.open(fifo, os.O_WRONLY)
    try:
        reader_waits.set()
        release.wait(TIMEOUT)
    finally:
        os.close(fd)  # the reader sees end of file (invalid JSON), wherever it is


ASYNC_READERS: dict[str, Callable[[Path], Any]] = {
    "open_channels": lambda path: open_channels(path),
    "open_client": lambda path: open_client(path),
}


@pytest.mark.parametrize("entry", sorted(ASYNC_READERS))
async def test_a_blocking_connection_file_can_be_cancelled(tmp_path: Path, entry: str) -> None:
    fifo = tmp_path / "kernel.json"
    os.mkfifo(fifo)
    reader_waits, release = threading.Event(), threading.Event()
    writer = threading.Thread(target=_holding_a_fifo, args=(fifo, reader_waits, release))
    writer.start()
    try:
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def read_it() -> None:
                with scope:
                    await attempt(lambda: ASYNC_READERS[entry](fifo))

            nursery.start_soon(read_it)
            # The event loop keeps running while the file blocks its reader: this task
            # gets to wait for the writer and to cancel the reader.
            assert await trio.to_thread.run_sync(reader_waits.wait, TIMEOUT)
            scope.cancel()
        assert scope.cancelled_caught
    finally:
        release.set()
        if not reader_waits.is_set():  # nobody opened the FIFO: let the writer's open return
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join()


def test_the_option_dicts_take_the_defaults_of_the_openers() -> None:
    """``open_kernel(client_options=...)``, ``execute_notebook(kernel_options=...)`` and
    ``open_remote_kernel(channel_options=..., client_options=...)`` check their dicts before
    any I/O, filling in what is not given: with the defaults of ``open_client``,
    ``open_kernel`` and ``open_remote_channels`` themselves."""
    import inspect

    from trio_enchannel._client._options import CHANNEL_DEFAULTS, CLIENT_DEFAULTS
    from trio_enchannel._launch._options import KERNEL_DEFAULTS

    remote_channels = pytest.importorskip("trio_enchannel._remote._channels")

    def defaults(func: Any) -> dict[str, object]:
        params = inspect.signature(func).parameters.values()
        return {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}

    assert defaults(open_client) == {**CLIENT_DEFAULTS, **CHANNEL_DEFAULTS}
    assert defaults(open_kernel) == KERNEL_DEFAULTS
    remote = defaults(remote_channels.open_remote_channels)
    given = remote_channels.REMOTE_CHANNEL_DEFAULTS
    assert {k: v for k, v in remote.items() if k in given} == given
    # the rest are separate arguments of open_remote_kernel
    assert set(remote) - set(given) == {
        "token",
        "subprotocol",
        "ssl_context",
        "headers",
    }
