"""Security: secrets at rest are owner-only, secrets never leak into logs, reprs or errors,
forged messages are rejected in both directions, and CurveZMQ keeps out clients without the
server key (against the kernel side and a real ipykernel).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import psutil
import pytest
import trio

from tests._raw_peer import open_raw_peer
from tests.conftest import kernel_process
from tests.reliability.conftest import record
from trio_enchannel import (
    ConnectionInfo,
    ConnectionInfoError,
    KernelDied,
    Session,
    SignatureMismatch,
    open_client,
    write_connection_file,
)
from trio_enchannel._channels._channels import open_channels
from trio_enchannel._io._zmq import curve_keypair, has_curve
from trio_enchannel._kernel._side import open_kernel_channels
from trio_enchannel._launch._open import open_kernel
from trio_enchannel.testing import (
    DieMidRequest,
    ForgeSignature,
    Malformed,
    ReplaySignature,
    open_fake_kernel,
)

TIMEOUT = 30
needs_curve = pytest.mark.skipif(not has_curve(), reason="libzmq without CurveZMQ")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="checking what another user can reach needs root to switch user"
)
NOBODY = 65534


def secret_key() -> str:
    """A key that cannot appear anywhere by accident."""
    return f"SECRET-{uuid.uuid4().hex}"


def as_other_user(action: Callable[[], object]) -> str:
    """Run ``action`` in a forked child running as user ``nobody``; return the name of the
    exception it raised (``""`` if it succeeded)."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads: 3.12+
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        outcome = b"?"
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                action()
                outcome = b""
            except BaseException as exc:
                outcome = type(exc).__name__.encode()
            os.write(write_end, outcome)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read()
    os.waitpid(pid, 0)
    return outcome.decode()


# -- secrets at rest ---------------------------------------------------------------------


def test_connection_file_is_owner_only_from_creation(tmp_path: Path) -> None:
    info = ConnectionInfo.allocate(key=secret_key())
    old_umask = os.umask(0)  # the most permissive umask: the mode must not depend on it
    try:
        path = write_connection_file(info, runtime_dir=tmp_path / "runtime")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["key"] == info.key
    # No temporary file with the key is left behind.
    assert [p.name for p in path.parent.iterdir()] == [path.name]


@needs_root
def test_another_user_cannot_read_the_connection_file(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)  # the directory is traversable: only the file's mode protects it
    path = write_connection_file(ConnectionInfo.allocate(key=secret_key()), tmp_path / "k.json")
    assert as_other_user(path.read_text) == "PermissionError"
    assert as_other_user(os.getpid) == ""  # the harness itself works
    record("security: another user's attempts refused (files, ipc sockets)")


async def test_ipc_sockets_live_in_an_owner_only_directory() -> None:
    async with open_kernel_channels(transport="ipc") as kc:
        info = kc.connection_info
        paths = info.ipc_paths()
        assert len(paths) == 5
        directory = paths[0].parent
        assert all(p.parent == directory and p.exists() for p in paths)
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert directory.stat().st_uid == os.geteuid()
    # Removed with the channels.
    assert not any(p.exists() for p in paths)
    assert not directory.exists()


@needs_root
async def test_another_user_cannot_connect_to_ipc_sockets() -> None:
    async with open_kernel_channels(transport="ipc") as kc:
        shell = str(kc.connection_info.ipc_paths()[0])

        def connect() -> None:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(shell)

        assert as_other_user(connect) == "PermissionError"
        record("security: another user's attempts refused (files, ipc sockets)")
        connect()  # the owner can


async def test_tcp_ports_listen_on_loopback_only() -> None:
    async with open_kernel_channels() as kc:
        info = kc.connection_info
        ports = {info.port(name) for name in ("shell", "iopub", "stdin", "control", "hb")}
        listening = {
            c.laddr.port: c.laddr.ip
            for c in psutil.Process().net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port in ports
        }
    assert set(listening) == ports
    assert set(listening.values()) == {"127.0.0.1"}


# -- secrets never leak ------------------------------------------------------------------


def leaks(secret: str, *things: object) -> list[str]:
    """The reprs and strs among ``things`` that contain ``secret``."""
    found = []
    for thing in things:
        for text in (repr(thing), str(thing)):
            if secret in text:
                found.append(text[:200])
    return found


@needs_curve
async def test_keys_never_appear_in_logs_reprs_or_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    key = secret_key()
    public, secret = curve_keypair()
    info = ConnectionInfo(
        shell_port=0,
        iopub_port=0,
        stdin_port=0,
        control_port=0,
        hb_port=0,
        key=key,
        curve_publickey=public,
        curve_secretkey=secret,
    )
    seen: list[object] = []
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel(info=info) as fk:
            bound = fk.connection_info
            assert bound.curve_secretkey == secret
            seen += [fk, bound, fk.session, fk.channels, bound.to_dict().keys()]
            async with open_client(
                bound, report_rejects=True, hb_interval=0.1, hb_deadline=1.0
            ) as client:
                ch: Any = client.channels
                seen += [client, ch, ch.session, ch.heartbeat]
                await client.wait_ready()
                # Faults that make every layer log and raise.
                fk.inject(ForgeSignature(), Malformed("bad_json"))
                with pytest.raises(SignatureMismatch):
                    await client.execute("forged")
                fk.inject(ReplaySignature(), msg_type="kernel_info_request")
                await client.kernel_info()
                fk.inject(DieMidRequest())
                with pytest.raises(KernelDied) as died:
                    await client.execute("die")
                seen += [died.value, client.statistics(), ch.statistics(), fk.statistics()]
                while True:
                    try:
                        seen.append(ch.rejects.receive_nowait())
                    except trio.WouldBlock:
                        break
                rejected = ch.statistics().shell.rejected
                assert rejected.keys() >= {"bad_json", "invalid_signature", "duplicate_signature"}
    # Errors about connection files name the file and the field, never the values.
    broken = dict(bound.to_dict(), shell_port="x")
    for bad in (broken, dict(broken, curve_secretkey=secret[:-1])):
        with pytest.raises(ConnectionInfoError) as error:
            ConnectionInfo.from_dict(bad, source="kernel.json")
        seen.append(error.value)
    assert not leaks(key, *seen), leaks(key, *seen)
    assert not leaks(secret, *seen), leaks(secret, *seen)
    assert caplog.records, "the faults above should have been logged"
    assert key not in caplog.text
    assert secret not in caplog.text
    record("security: reprs, errors and log records checked for secrets", len(seen))


# -- forged messages ---------------------------------------------------------------------


async def test_wrong_key_is_rejected_both_ways_by_the_kernel_side() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel(key=secret_key()) as fk:
            wrong = attrs.evolve(fk.connection_info, key=secret_key())
            async with open_channels(wrong, heartbeat=False) as ch:
                request = ch.session.message("kernel_info_request", channel="shell")
                await ch.shell.send(request)
                # The kernel rejects the request: it never answers and never records it.
                with trio.move_on_after(0.5):
                    await ch.shell.receive()
                    pytest.fail("a request signed with the wrong key was answered")
                assert fk.statistics().shell.rejected == {"invalid_signature": 1}
                assert fk.requests == []
                record("security: wrong-key requests rejected by the kernel side")
                # What the kernel broadcasts is rejected by the client (iopub_welcome).
                assert ch.statistics().iopub.received == 0


@pytest.mark.kernel
async def test_ipykernel_ignores_code_signed_with_a_wrong_key(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    forged_code = f"open({str(marker)!r}, 'w').write('pwned')"
    with trio.fail_after(60):
        async with (
            kernel_process(tmp_path) as kernel,
            open_raw_peer(kernel.info) as peer,
        ):
            forger = Session(secret_key())
            content = {
                "code": forged_code,
                "silent": False,
                "store_history": False,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            }
            for forged in (
                forger.serialize(forger.message("execute_request", content)),
                Session("").serialize(Session("").message("execute_request", content)),
            ):
                await peer.send_frames("shell", [bytes(f) for f in forged])
            # Then, on the same socket (so processed after), a genuine request.
            check = dict(content, code=f"import os; print(os.path.exists({str(marker)!r}))")
            request = await peer.request("execute_request", check)
            reply = await peer.receive("shell")
            while reply.parent_id != request.msg_id:  # pragma: no cover - nothing else is sent
                reply = await peer.receive("shell")
            assert reply.content["status"] == "ok"
            outputs = await peer.outputs(request)
    text = "".join(m.content.get("text", "") for m in outputs if m.msg_type == "stream")
    assert text == "False\n"
    assert not marker.exists()
    record("security: forged execute_requests ignored by ipykernel", 2)


# -- CurveZMQ ----------------------------------------------------------------------------


def curve_info(**kw: Any) -> ConnectionInfo:
    public, secret = curve_keypair()
    return attrs.evolve(
        ConnectionInfo.allocate(key=secret_key()),
        curve_publickey=public,
        curve_secretkey=secret,
        **kw,
    )


async def cannot_talk(info: ConnectionInfo) -> None:
    """A client on ``info`` gets no answer and no broadcast from the kernel, and is told so:
    the failed handshake is a ConnectionInfoError, not a silence."""
    async with open_channels(info, heartbeat=False) as ch:
        with trio.fail_after(TIMEOUT), pytest.raises(ConnectionInfoError, match="handshake"):
            await ch.shell.send(ch.session.message("kernel_info_request", channel="shell"))
            msg = await ch.shell.receive()
            pytest.fail(f"got through: {msg.msg_type}")
        assert ch.statistics().iopub.received == 0
    record("security: clients without the CurveZMQ server key refused")


@needs_curve
async def test_curve_kernel_side_refuses_clients_without_the_server_key() -> None:
    info = curve_info()
    with trio.fail_after(TIMEOUT):
        async with open_fake_kernel(info=attrs.evolve(info)) as fk:
            bound = fk.connection_info
            # With the server key (from the connection info): it works, encrypted.
            async with open_client(bound) as client:
                ready = await client.wait_ready()
                assert ready.implementation == "trio-enchannel-fake"
            before = len(fk.requests)
            # Without it (a plain client), or with another server's key: nothing gets through.
            await cannot_talk(attrs.evolve(bound, curve_publickey=None, curve_secretkey=None))
            await cannot_talk(attrs.evolve(bound, curve_publickey=curve_keypair()[0]))
            assert len(fk.requests) == before
            assert fk.statistics().rejected_total == 0  # refused below the message layer


@needs_curve
@pytest.mark.kernel
async def test_curve_ipykernel_refuses_clients_without_the_server_key(tmp_path: Path) -> None:
    info = curve_info()
    with trio.fail_after(60):
        async with kernel_process(tmp_path, info=info) as kernel:
            async with open_client(kernel.info) as client:
                with trio.fail_after(30):
                    ready = await client.wait_ready()
                assert ready.implementation == "ipython"
            await cannot_talk(attrs.evolve(info, curve_publickey=None, curve_secretkey=None))
            await cannot_talk(attrs.evolve(info, curve_publickey=curve_keypair()[0]))


@needs_curve
@pytest.mark.kernel
async def test_launched_kernel_secrets_are_owner_only_encrypted_and_removed(
    tmp_path: Path,
) -> None:
    runtime = tmp_path / "runtime"
    with trio.fail_after(60):
        async with open_kernel(
            "python3", runtime_dir=runtime, transport="ipc", encryption="required"
        ) as kernel:
            info = kernel.connection_info
            assert info.curve_publickey is not None and info.curve_secretkey is not None
            path = kernel.connection_file
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            directory = info.ipc_paths()[0].parent
            assert stat.S_IMODE(directory.stat().st_mode) == 0o700
            if os.geteuid() == 0:
                assert as_other_user(path.read_text) == "PermissionError"
            # The launcher's own objects never show the secrets.
            assert (await kernel.client.execute("print(1)")).stdout == "1\n"
            seen = [kernel, kernel.client, info, kernel.client.channels, kernel.argv]
            for secret in (info.key, info.curve_secretkey):
                assert not leaks(secret, *seen), leaks(secret, *seen)
            # A client without the server key cannot talk to it, even on its ipc sockets.
            await cannot_talk(attrs.evolve(info, curve_publickey=None, curve_secretkey=None))
    assert not path.exists()
    assert not directory.exists()
