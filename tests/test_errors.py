"""The library's errors: one hierarchy, the standard categories mixed in, public names in
tracebacks, and pickling with every attribute intact."""

from __future__ import annotations

import copy
import importlib.util
import pickle
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

import trio_enchannel as te
from trio_enchannel.testing import FakeKernel, Gate

NOTEBOOK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}

# One instance of every public error, built as the library builds it.
EXAMPLES: list[BaseException] = [
    te.EnchannelError("base"),
    te.LocalProtocolError("msg_id must be a non-empty string"),
    te.RemoteProtocolError("bad", reason="custom"),
    te.MalformedMessage("no delimiter", reason="missing_delimiter"),
    te.UnsignedMessage("unsigned"),
    te.InvalidSignature("invalid"),
    te.DuplicateSignature("replayed"),
    te.SignatureMismatch("shell", "invalid_signature"),
    te.ConfigurationError("bad scheme"),
    te.ConnectionInfoError("shell_port out of range"),
    te.ConnectionInfoError("the kernel signs its messages", reason="key_missing"),
    te.UsageError("rejects needs report_rejects=True"),
    te.KernelDied("exit code 1"),
    te.KernelError("ValueError", "boom", ["line 1", "line 2"]),
    te.OutputsLost(3),
    te.NoSuchKernel("nope", ["python3", "bash"]),
    te.InvalidKernelSpec("invalid kernelspec 'k': argv is empty", path=Path("/k/kernel.json")),
    te.KernelStartupError("did not start", stderr_tail="Traceback ..."),
    te.EncryptionUnavailable("no curve"),
    te.NotebookError("stopped", notebook=NOTEBOOK, cell_index=2),
    te.CellExecutionError("NameError", "x", ["tb"], notebook=NOTEBOOK, cell_index=1),
    te.CellTimeoutError(2.5, notebook=NOTEBOOK, cell_index=0, detail="interrupted"),
    te.NotebookKernelDied("heartbeat lost", notebook=NOTEBOOK, cell_index=4),
    te.ParameterError("bad name", name="1x"),
    te.OutputPathError("no such directory", path="/nope/out.ipynb"),
    te.ConnectionLost("the websocket dropped"),
    te.PeerNotConnected("the client b'c' is not connected to stdin"),
    te.RemoteServerError("refused", status_code=500, method="GET", url="http://h/api"),
    te.RemoteAuthenticationError("403", status_code=403, method="POST", url="http://h/"),
    te.RemoteKernelNotFound("no kernel k", kernel_id="k", status_code=404),
]


def _public_errors() -> set[type[BaseException]]:
    names: list[str] = vars(te)["__all__"]  # hidden from type checkers (see __init__)
    values = (getattr(te, name) for name in names)
    return {v for v in values if isinstance(v, type) and issubclass(v, BaseException)}


# Listing the public errors resolves every public name: the remote ones need the remote extra.
needs_remote = pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ("trio_websocket", "httpx")),
    reason="the remote extra",
)


@needs_remote
def test_every_public_error_has_an_example() -> None:
    assert {type(e) for e in EXAMPLES} == _public_errors()


@needs_remote
def test_every_public_error_is_an_enchannel_error() -> None:
    assert all(issubclass(error, te.EnchannelError) for error in _public_errors())


@pytest.mark.parametrize(
    ("error", "category"),
    [
        (te.ConfigurationError, ValueError),
        (te.LocalProtocolError, ValueError),
        (te.InvalidKernelSpec, ValueError),
        (te.NoSuchKernel, LookupError),
        (te.UsageError, RuntimeError),
        (te.ConnectionLost, trio.BrokenResourceError),
        (te.PeerNotConnected, trio.BrokenResourceError),
    ],
)
def test_errors_are_also_the_standard_category_callers_catch(
    error: type[Exception], category: type[Exception]
) -> None:
    assert issubclass(error, category)


def _attributes(error: BaseException) -> dict[str, object]:
    return {"type": type(error), "str": str(error), "args": error.args, **vars(error)}


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("protocol", [0, pickle.HIGHEST_PROTOCOL])
def test_errors_pickle_with_their_message_and_attributes(
    error: BaseException, protocol: int
) -> None:
    again = pickle.loads(pickle.dumps(error, protocol))
    assert _attributes(again) == _attributes(error)
    assert _attributes(copy.copy(error)) == _attributes(error)
    assert _attributes(copy.deepcopy(error)) == _attributes(error)


def test_an_error_pickles_with_its_notes_and_custom_attributes() -> None:
    error = te.KernelDied("exit code 1")
    error.__notes__ = ["while running cell 3"]  # type: ignore[attr-defined,unused-ignore]
    error.custom = 5  # type: ignore[attr-defined]
    again = pickle.loads(pickle.dumps(error))
    assert again.__notes__ == ["while running cell 3"]
    assert again.custom == 5
    assert str(again) == "kernel died: exit code 1"


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
def test_errors_show_their_public_name(error: BaseException) -> None:
    assert type(error).__module__ == "trio_enchannel"
    line = traceback.format_exception_only(type(error), error)[-1]
    assert line.startswith(f"trio_enchannel.{type(error).__name__}: ")


def test_an_error_raised_inside_shows_its_public_name_before_it_is_looked_up() -> None:
    # The caller never touched trio_enchannel.KernelDied: the module that raises it imported
    # it, and that is enough.
    code = """
        import pickle, sys
        from trio_enchannel import Session
        errors = sys.modules["trio_enchannel._errors"]
        print(errors.MalformedMessage.__module__)
        print(errors.KernelDied.__module__)
        print(pickle.loads(pickle.dumps(errors.KernelDied("x"))).reason)
    """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert out.split() == ["trio_enchannel", "trio_enchannel", "x"]


def test_an_error_pickled_in_one_process_unpickles_in_a_fresh_one() -> None:
    data = pickle.dumps(te.NoSuchKernel("nope", ["python3"]))
    code = """
        import pickle, sys
        error = pickle.loads(sys.stdin.buffer.read())
        print(type(error).__module__, type(error).__name__, error.name, error.available)
    """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        input=data,
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout.decode()
    assert out.split() == ["trio_enchannel", "NoSuchKernel", "nope", "['python3']"]


# -- each error the library raises for its own reasons is one of its own --------------------
# (a subclass of the standard category raised before, so `except ValueError` / `except
# RuntimeError` still catches it)

TIMEOUT = 20
NOWHERE = te.ConnectionInfo(1, 2, 3, 4, 5, key="k")


def test_a_malformed_header_is_a_malformed_message() -> None:
    for data, key in (
        ({"msg_type": "x"}, "msg_id"),
        ({"msg_id": "1", "msg_type": ""}, "msg_type"),
        ({"msg_id": "1", "msg_type": "x", "date": 5}, "date"),
        ({"msg_id": "1", "msg_type": "x", "subshell_id": 5}, "subshell_id"),
    ):
        with pytest.raises(te.MalformedMessage, match=key) as caught:
            te.Header.from_dict(data)
        assert caught.value.reason == "bad_header"


async def test_what_the_channels_were_opened_without_is_a_usage_error() -> None:
    with trio.fail_after(TIMEOUT):
        async with te.open_channels(NOWHERE, heartbeat=False) as ch:
            with pytest.raises(te.UsageError, match="report_rejects=True"):
                _ = ch.rejects
            with pytest.raises(te.UsageError, match="heartbeat=False"):
                await ch.heartbeat.wait_responsive()
            with pytest.raises(te.UsageError, match="multiplexed=True"):
                ch.multiplexed.receive_nowait()
        async with te.open_channels(NOWHERE, heartbeat=False, multiplexed=True) as ch:
            with pytest.raises(te.UsageError, match="multiplexed=True"):
                await ch.shell.receive()


async def test_kernel_side_misuse_is_typed() -> None:
    with trio.fail_after(TIMEOUT):
        async with te.open_kernel_channels() as kc:
            with pytest.raises(te.UsageError, match="report_rejects=True"):
                _ = kc.rejects
            with pytest.raises(te.LocalProtocolError, match="frame"):
                await kc.shell.send_frames([])
            # an input request to a client that is not there
            request = kc.session.message("execute_request", {"code": ""}, channel="shell")
            request = attrs.evolve(request, identities=(b"nobody",))
            with pytest.raises(te.PeerNotConnected, match="nobody"):
                await kc.input_request(request, "?", connect_grace=0)


def test_a_fake_kernel_that_is_not_running_says_so() -> None:
    with pytest.raises(te.UsageError, match="open_fake_kernel"):
        _ = FakeKernel().connection_info


async def test_client_misuse_is_typed(fake_kernel: FakeKernel) -> None:
    gate = Gate()
    fake_kernel.script("slow()", gate)
    with trio.fail_after(TIMEOUT):
        async with te.open_client(fake_kernel.connection_info) as client:
            client.accept_comms("target")
            with pytest.raises(te.ConfigurationError, match="target"):
                client.accept_comms("target")
            async with client.stream_execute("slow()") as run:
                await gate.wait_reached()
                with pytest.raises(te.UsageError, match="not finished"):
                    _ = run.result
                # the same message again while the first is in flight: nothing is sent
                msg = client.session.message("kernel_info_request", channel="shell")
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(client.request, msg)
                    await trio.testing.wait_all_tasks_blocked()
                    sent = client.channels.statistics().shell.sent  # type: ignore[attr-defined]
                    with pytest.raises(te.LocalProtocolError, match=msg.msg_id):
                        await client.request(msg)
                    assert client.channels.statistics().shell.sent == sent  # type: ignore[attr-defined]
                    nursery.cancel_scope.cancel()
                gate.open()
                async for _ in run:
                    pass


def test_zmq_adapter_misuse_is_typed() -> None:
    from trio_enchannel._io._zmq import TrioSocket, curve_public, has_curve

    if has_curve():
        with pytest.raises(te.ConfigurationError, match="Z85"):
            curve_public("not a key")
    sock = TrioSocket("DEALER", linger=0)
    try:
        monitor = sock.open_monitor()
        with pytest.raises(te.UsageError, match="already monitored"):
            sock.open_monitor()
        monitor.close()
        with pytest.raises(te.ConfigurationError, match="no_such_option"):
            sock.set_option("no_such_option", 1)
        with pytest.raises(te.ConfigurationError, match="no_such_option"):
            sock.get_option("no_such_option")
        with pytest.raises(te.LocalProtocolError, match="frame"):
            sock.send_multipart_nowait([])
    finally:
        sock.close()


async def test_remote_channels_without_rejects_say_so() -> None:
    pytest.importorskip("trio_websocket")
    from tests.test_remote_fake import KERNEL, TOKEN, FakeConnection, serving

    async def script(conn: FakeConnection) -> None:
        await conn.answer_forever()

    with trio.fail_after(TIMEOUT):
        async with (
            serving(script) as server,
            te.open_remote_channels(server.url, KERNEL, token=TOKEN) as ch,
        ):
            with pytest.raises(te.UsageError, match="report_rejects=True"):
                _ = ch.rejects
