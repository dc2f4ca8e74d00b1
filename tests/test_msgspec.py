"""The message-schema check that every real-kernel test runs (tests/_msgspec.py and the
``received_messages`` fixture in conftest.py): it must catch what does not follow the protocol,
and accept only the documented deviations."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from trio_enchannel import Session, open_channels, open_kernel_channels

from .test_kernel_side import KERNEL_INFO

pytest.importorskip("jupyter_kernel_test", reason="its message schemas validate what kernels send")

from ._msgspec import DEVIATIONS, ReceivedMessages

TIMEOUT = 15


def check(msg_type: str, content: dict[str, Any]) -> list[str]:
    received = ReceivedMessages()
    received.check(Session().message(msg_type, content, channel="shell"))
    assert received.validated == {msg_type: 1}
    return received.problems


@pytest.mark.parametrize(
    ("msg_type", "content"),
    [
        ("kernel_info_reply", KERNEL_INFO),
        ("execute_reply", {"status": "aborted"}),
        ("execute_reply", {"status": "abort", "execution_count": 2}),
        ("execute_reply", {"status": "error", "ename": "E", "evalue": "", "traceback": []}),
        ("input_request", {"prompt": "? ", "password": False}),
        ("iopub_welcome", {"subscription": ""}),
        ("create_subshell_reply", {"status": "ok", "subshell_id": "s"}),
        ("list_subshell_reply", {"status": "ok", "subshell_id": ["s"]}),
        ("usage_reply", {"hostname": "h", "pid": 1, "kernel_cpu": 0.5, "kernel_memory": 10}),
        ("shutdown", {"status": "ok", "restart": False}),  # xeus-python's IOPub copy
    ],
)
def test_protocol_messages_pass(msg_type: str, content: dict[str, Any]) -> None:
    assert check(msg_type, content) == []


@pytest.mark.parametrize(
    ("msg_type", "content", "complaint"),
    [
        ("kernel_info_reply", {"status": "ok"}, "required"),
        ("execute_reply", {"status": "fine"}, "ok/error/abort"),
        ("execute_reply", {"status": "aborted", "execution_count": "2"}, None),
        ("stream", {"name": "stdout", "text": 5}, "not of type"),
        ("made_up_reply", {"status": "ok"}, "no schema"),
        ("shutdown", {"restart": "no"}, None),  # the deviation is checked as shutdown_reply
        ("input_request", {"prompt": "? ", "password": "no"}, None),
    ],
)
def test_invalid_messages_are_caught(
    msg_type: str, content: dict[str, Any], complaint: str | None
) -> None:
    if msg_type == "execute_reply" and content.get("execution_count") == "2":
        # An aborted reply is checked for its status only (see _msgspec): nothing to catch.
        assert check(msg_type, content) == []
        return
    problems = check(msg_type, content)
    assert len(problems) == 1
    if complaint is not None:
        assert complaint in problems[0]


def test_jupyter_client_dicts_are_checked_too() -> None:
    received = ReceivedMessages()
    header = {
        "msg_id": "1",
        "msg_type": "stream",
        "username": "u",
        "session": "s",
        "date": None,
        "version": "5.3",
    }
    received.check({"header": header, "parent_header": {}, "metadata": {}, "content": {}})
    assert received.validated == {"stream": 1}
    assert len(received.problems) == 1


def test_jupyter_servers_own_states_only_through_a_server() -> None:
    restarting = Session().message("status", {"execution_state": "restarting"}, channel="iopub")
    direct, served = ReceivedMessages(), ReceivedMessages()
    direct.check(restarting)
    served.check(restarting, via_server=True)
    assert len(direct.problems) == 1 and served.problems == []
    served.check(
        Session().message("status", {"execution_state": "sleepy"}, channel="iopub"),
        via_server=True,
    )
    assert len(served.problems) == 1


def test_floods_are_sampled_but_every_type_is_checked() -> None:
    received = ReceivedMessages(full=3, sample=10)
    session = Session()
    bad = session.message("stream", {"name": "stdout", "text": 1}, channel="iopub")
    for _ in range(30):
        received.check(bad)
    received.check(session.message("status", {"execution_state": "nap"}, channel="iopub"))
    assert received.validated == {"stream": 3 + 3, "status": 1}  # 3, then the 10th, 20th, 30th
    assert received.sampled_out == {"stream": 24}
    assert len(received.problems) == 7


def test_every_deviation_names_its_kernel() -> None:
    for alias, (msg_type, reason) in DEVIATIONS.items():
        assert msg_type != alias and ":" in reason


@pytest.mark.kernel
async def test_the_fixture_checks_every_received_message(
    received_messages: ReceivedMessages | None,
) -> None:
    """In a ``kernel`` test, what the channels receive is validated without being asked."""
    assert received_messages is not None
    with trio.fail_after(TIMEOUT):
        async with open_kernel_channels() as kc, open_channels(kc.connection_info) as ch:
            request = ch.session.message("kernel_info_request")
            await ch.shell.send(request)
            await kc.reply(await kc.shell.receive(), {"status": "ok"})  # not a valid reply
            reply = await ch.shell.receive()
            assert reply.content == {"status": "ok"}  # delivered unchanged
    assert received_messages.validated["kernel_info_request"] == 1  # the kernel side's
    assert received_messages.validated["kernel_info_reply"] == 1
    assert [p.split(":")[0] for p in received_messages.problems] == ["shell kernel_info_reply"]
    received_messages.problems.clear()  # or this test would fail at teardown, as it should


def test_the_fixture_is_off_outside_kernel_tests(
    received_messages: ReceivedMessages | None,
) -> None:
    assert received_messages is None
