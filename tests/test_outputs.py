"""Sans-I/O pieces of the client: output accumulation, result types, request tracking, and the
dropping queue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from trio_enchannel import (
    ErrorInfo,
    ExecuteResult,
    KernelError,
    KernelInfo,
    Message,
    OutputAccumulator,
    Reply,
    Session,
)
from trio_enchannel._client._queue import DroppingQueue
from trio_enchannel._client._tracking import RequestTracker, Route

SESSION = Session("k")
REQUEST = SESSION.message("execute_request", {"code": "x"}, channel="shell")


def iopub(msg_type: str, parent: Message | None = REQUEST, **content: Any) -> Message:
    """An IOPub message with ``parent`` (by default the execute request) as parent."""
    return SESSION.message(msg_type, content, parent=parent, channel="iopub")


def stream(text: str, name: str = "stdout") -> Message:
    return iopub("stream", name=name, text=text)


def feed(*msgs: Message) -> OutputAccumulator:
    acc = OutputAccumulator()
    for m in msgs:
        acc.feed(m)
    return acc


# -- streams ------------------------------------------------------------------------------


def test_consecutive_stream_chunks_merge_per_name() -> None:
    acc = feed(stream("a"), stream("b\n"), stream("oops", "stderr"), stream("c"))
    assert acc.outputs == [
        {"output_type": "stream", "name": "stdout", "text": "ab\n"},
        {"output_type": "stream", "name": "stderr", "text": "oops"},
        {"output_type": "stream", "name": "stdout", "text": "c"},
    ]
    assert acc.stream_text("stdout") == "ab\nc"


def test_stream_does_not_merge_across_another_output() -> None:
    acc = feed(
        stream("a"), iopub("display_data", data={"text/plain": "d"}, metadata={}), stream("b")
    )
    assert [o["output_type"] for o in acc.outputs] == ["stream", "display_data", "stream"]


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        (["10%\r", "20%\r", "100%\n"], "100%\n"),
        (["abcdef\rxy"], "xycdef"),  # later text overwrites, the rest of the line stays
        (["abc\r\ndef"], "abc\ndef"),  # \r\n is a newline
        (["abc\r", "\ndef"], "abc\ndef"),  # ... even when split across messages
        (["abc\b\bX"], "aX"),  # backspace deletes the character before it
        (["\b\bab"], "ab"),  # ... never past the start of the line
        (["line1\nab\rc"], "line1\ncb"),  # \r only affects the current line
        (["a\n\b"], "a\n"),  # ... and \b too
        (
            ["progress 1/3\rprogress 2/3\rprogress 3/3 done\n", "next\n"],
            "progress 3/3 done\nnext\n",
        ),
        (["x\r"], "x"),
    ],
)
def test_stream_control_characters(chunks: list[str], expected: str) -> None:
    acc = feed(*(stream(c) for c in chunks))
    assert acc.outputs == [{"output_type": "stream", "name": "stdout", "text": expected}]


@given(st.lists(st.text(alphabet="ab \n", max_size=8), max_size=8))
def test_plain_text_is_concatenated_unchanged(chunks: list[str]) -> None:
    acc = feed(*(stream(c) for c in chunks))
    joined = "".join(chunks)
    assert acc.stream_text("stdout") == joined
    assert len(acc.outputs) == (1 if joined else 0)


@given(st.lists(st.text(alphabet="ab\r\n\b", max_size=6), max_size=6))
def test_chunking_does_not_change_the_result(chunks: list[str]) -> None:
    # Feeding the text in pieces or at once shows the same thing; no \r or \b survives.
    whole = feed(stream("".join(chunks))).stream_text()
    pieces = feed(*(stream(c) for c in chunks)).stream_text()
    assert whole == pieces
    assert "\r" not in pieces and "\b" not in pieces


def _terminal_model(text: str) -> str:
    """What a terminal-like frontend shows: one character per cell of the current line."""
    done: list[str] = []
    line: list[str] = []
    cursor = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\r" and text[i + 1 : i + 2] == "\n":
            ch, i = "\n", i + 1
        if ch == "\n":
            done.append("".join(line) + "\n")
            line, cursor = [], 0
        elif ch == "\r":
            cursor = 0
        elif ch == "\b":
            if cursor > 0:
                del line[cursor - 1]
                cursor -= 1
        else:
            line[cursor : cursor + 1] = ch
            cursor += 1
        i += 1
    return "".join(done) + "".join(line)


@given(st.lists(st.text(alphabet="ab\r\n\b", max_size=6), max_size=6))
def test_stream_text_matches_a_character_by_character_terminal(chunks: list[str]) -> None:
    pieces = feed(*(stream(c) for c in chunks)).stream_text()
    assert pieces == _terminal_model("".join(chunks))


def test_a_large_output_is_not_copied() -> None:
    # A 10 MB line is kept as the very string the message carried (no per-character list).
    text = "x" * 10_000_000 + "\n"
    acc = feed(stream(text))
    assert acc.outputs[0]["text"] is text


def test_empty_stream_text_adds_nothing() -> None:
    assert feed(stream("")).outputs == []


# -- rich outputs, errors -----------------------------------------------------------------


def test_display_execute_result_and_error_outputs() -> None:
    acc = feed(
        iopub("execute_input", code="x", execution_count=3),
        iopub("display_data", data={"text/plain": "d"}, metadata={"m": 1}, transient={}),
        iopub("execute_result", data={"text/plain": "42"}, metadata={}, execution_count=3),
        iopub("error", ename="ValueError", evalue="bad", traceback=["tb1", "tb2"]),
        iopub("status", execution_state="idle"),
    )
    assert acc.outputs == [
        {"output_type": "display_data", "data": {"text/plain": "d"}, "metadata": {"m": 1}},
        {
            "output_type": "execute_result",
            "execution_count": 3,
            "data": {"text/plain": "42"},
            "metadata": {},
        },
        {
            "output_type": "error",
            "ename": "ValueError",
            "evalue": "bad",
            "traceback": ["tb1", "tb2"],
        },
    ]
    assert acc.execution_count == 3
    assert acc.error == ErrorInfo("ValueError", "bad", ("tb1", "tb2"))


def test_malformed_content_never_raises() -> None:
    acc = feed(
        iopub("stream", name=5, text=7),
        iopub("display_data", data="not a dict", metadata=None),
        iopub("error", ename=None, traceback="x"),
        iopub("update_display_data", transient="x"),
    )
    assert acc.outputs == [
        {"output_type": "display_data", "data": {}, "metadata": {}},
        {"output_type": "error", "ename": "", "evalue": "", "traceback": []},
    ]
    assert acc.unmatched_updates == 1


# -- clear_output -------------------------------------------------------------------------


def test_clear_output_now() -> None:
    acc = feed(stream("a"), iopub("clear_output", wait=False), stream("b"))
    assert acc.outputs == [{"output_type": "stream", "name": "stdout", "text": "b"}]


def test_clear_output_wait_clears_just_before_the_next_output() -> None:
    acc = feed(stream("frame 1"), iopub("clear_output", wait=True))
    pending_before = acc.clear_pending
    assert acc.stream_text() == "frame 1"  # still shown until something replaces it
    acc.feed(stream("frame 2"))
    assert (pending_before, acc.clear_pending) == (True, False)
    assert acc.outputs == [{"output_type": "stream", "name": "stdout", "text": "frame 2"}]


def test_clear_output_wait_is_not_triggered_by_a_display_update() -> None:
    acc = feed(
        iopub("display_data", data={"text/plain": "1"}, metadata={}, transient={"display_id": "d"}),
        iopub("clear_output", wait=True),
        iopub(
            "update_display_data",
            data={"text/plain": "2"},
            metadata={},
            transient={"display_id": "d"},
        ),
    )
    assert acc.clear_pending
    assert acc.outputs[0]["data"] == {"text/plain": "2"}


def test_clear_forgets_display_ids() -> None:
    acc = feed(
        iopub("display_data", data={"text/plain": "1"}, metadata={}, transient={"display_id": "d"}),
        iopub("clear_output", wait=False),
        stream("s"),
        iopub(
            "update_display_data",
            data={"text/plain": "2"},
            metadata={},
            transient={"display_id": "d"},
        ),
    )
    assert acc.outputs == [{"output_type": "stream", "name": "stdout", "text": "s"}]
    assert acc.unmatched_updates == 1


# -- update_display_data ------------------------------------------------------------------


def test_update_display_data_updates_every_output_with_that_id() -> None:
    t = {"display_id": "abc"}
    acc = feed(
        iopub("display_data", data={"text/plain": "v1"}, metadata={}, transient=t),
        stream("between"),
        iopub(
            "display_data", data={"text/plain": "other"}, metadata={}, transient={"display_id": "z"}
        ),
        iopub("display_data", data={"text/plain": "v1"}, metadata={}, transient=t),
    )
    before = acc.outputs
    assert acc.feed(
        iopub(
            "update_display_data", data={"text/html": "<b>v2</b>"}, metadata={"x": 1}, transient=t
        )
    )
    after = acc.outputs
    assert after[0] == {
        "output_type": "display_data",
        "data": {"text/html": "<b>v2</b>"},
        "metadata": {"x": 1},
    }
    assert after[3] == after[0]
    assert after[2]["data"] == {"text/plain": "other"}
    assert before[0]["data"] == {"text/plain": "v1"}  # earlier snapshots are not mutated
    assert len(after) == 4  # an update never adds an output


def test_update_of_an_execute_result_keeps_its_count() -> None:
    acc = feed(
        iopub(
            "execute_result",
            data={"text/plain": "1"},
            metadata={},
            execution_count=5,
            transient={"display_id": "r"},
        ),
        iopub(
            "update_display_data",
            data={"text/plain": "2"},
            metadata={},
            transient={"display_id": "r"},
        ),
    )
    assert acc.outputs == [
        {
            "output_type": "execute_result",
            "execution_count": 5,
            "data": {"text/plain": "2"},
            "metadata": {},
        }
    ]


def test_outputs_are_valid_nbformat() -> None:
    nbformat = pytest.importorskip("nbformat")
    jsonschema = pytest.importorskip("jsonschema")
    acc = feed(
        stream("a\rb\n"),
        stream("err", "stderr"),
        iopub("display_data", data={"text/plain": "d"}, metadata={}, transient={"display_id": "q"}),
        iopub("execute_result", data={"text/plain": "1"}, metadata={}, execution_count=1),
        iopub("error", ename="E", evalue="v", traceback=[]),
    )
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x", outputs=[nbformat.from_dict(o) for o in acc.outputs])
    nb.cells.append(cell)
    # nbformat's own v4 schema, without the (slow to load) string-format checkers.
    schema_file = Path(nbformat.__file__).parent / "v4" / "nbformat.v4.schema.json"
    jsonschema.Draft4Validator(json.loads(schema_file.read_text())).validate(nb)


# -- result types -------------------------------------------------------------------------


def reply(content: dict[str, Any], msg_type: str = "execute_reply") -> Message:
    return SESSION.message(msg_type, content, parent=REQUEST, channel="shell")


def test_execute_result_ok() -> None:
    msgs = [
        iopub("status", execution_state="busy"),
        iopub("execute_input", code="x", execution_count=7),
        stream("hello\n"),
        stream("warn\n", "stderr"),
        iopub("execute_result", data={"text/plain": "42"}, metadata={}, execution_count=7),
        iopub("status", execution_state="idle"),
    ]
    r = reply(
        {
            "status": "ok",
            "execution_count": 7,
            "user_expressions": {"a": {"status": "ok"}},
            "payload": [],
        }
    )
    result = ExecuteResult.from_messages(r, msgs)
    assert result.ok and result.status == "ok"
    assert result.execution_count == 7
    assert result.stdout == "hello\n" and result.stderr == "warn\n"
    assert result.data == {"text/plain": "42"}
    assert result.user_expressions == {"a": {"status": "ok"}}
    assert result.error is None
    assert result.messages[-1] is r and len(result.messages) == 7
    assert result.raise_for_error() is result


def test_execute_result_error_raises_kernel_error() -> None:
    err: dict[str, Any] = {
        "status": "error",
        "ename": "ZeroDivisionError",
        "evalue": "division by zero",
        "traceback": ["l1"],
    }
    result = ExecuteResult.from_messages(
        reply({**err, "execution_count": 2}), [iopub("error", **err)]
    )
    assert not result.ok
    assert result.error == ErrorInfo("ZeroDivisionError", "division by zero", ("l1",))
    with pytest.raises(KernelError) as info:
        result.raise_for_error()
    assert info.value.ename == "ZeroDivisionError"
    assert info.value.evalue == "division by zero"
    assert info.value.traceback == ["l1"]


def test_execute_result_error_falls_back_to_the_error_output() -> None:
    # Some kernels put no ename in the reply; the error output still says what happened.
    result = ExecuteResult.from_messages(
        reply({"status": "error"}), [iopub("error", ename="E", evalue="v", traceback=[])]
    )
    assert result.error == ErrorInfo("E", "v", ())


def test_aborted_execution() -> None:
    result = ExecuteResult.from_messages(reply({"status": "aborted"}), [])
    assert result.status == "aborted" and result.error is None and result.execution_count is None
    with pytest.raises(KernelError, match="Aborted"):
        result.raise_for_error()


@pytest.mark.parametrize("status", ["aborted", "abort"])
def test_an_abort_is_not_a_success_whatever_its_spelling(status: str) -> None:
    # "abort" is the message schemas' spelling (and bash_kernel's); "aborted" ipykernel's.
    r = Reply(reply({"status": status}, "inspect_reply"))
    assert not r.ok
    with pytest.raises(KernelError, match="Aborted"):
        r.raise_for_status()
    result = ExecuteResult.from_messages(reply({"status": status}), [])
    assert result.aborted and not result.ok and result.error is None
    with pytest.raises(KernelError, match="Aborted"):
        result.raise_for_error()


def test_reply_access() -> None:
    r = Reply(reply({"status": "ok", "matches": ["a", "b"]}, "complete_reply"))
    assert r.ok and r.status == "ok" and r.msg_type == "complete_reply"
    assert r["matches"] == ["a", "b"] and r.get("nope", 1) == 1
    assert r.raise_for_status() is r
    bad = Reply(
        reply({"status": "error", "ename": "E", "evalue": "v", "traceback": []}, "inspect_reply")
    )
    assert not bad.ok and bad.error == ErrorInfo("E", "v")
    with pytest.raises(KernelError):
        bad.raise_for_status()
    with pytest.raises(KernelError):
        Reply(reply({"status": "aborted"}, "inspect_reply")).raise_for_status()


def test_kernel_info() -> None:
    info = KernelInfo(
        reply(
            {
                "status": "ok",
                "protocol_version": "5.5",
                "implementation": "ipython",
                "implementation_version": "9",
                "language_info": {"name": "python", "version": "3"},
                "banner": "hi",
                "help_links": [{"text": "t", "url": "u"}, "junk"],
                "supported_features": ["kernel subshells"],
                "debugger": True,
            },
            "kernel_info_reply",
        )
    )
    assert info.protocol_version == "5.5" and info.implementation == "ipython"
    assert info.language == "python" and info.banner == "hi"
    assert info.help_links == [{"text": "t", "url": "u"}]
    assert info.supported_features == {"kernel subshells", "debugger"}
    assert info.supports_subshells
    assert not KernelInfo(reply({}, "kernel_info_reply")).supports_subshells


# -- request tracking ---------------------------------------------------------------------


def test_tracker_routes_by_parent_msg_id() -> None:
    tracker: RequestTracker[str] = RequestTracker()
    a = SESSION.message("execute_request", channel="shell")
    b = SESSION.message("kernel_info_request", channel="shell")
    tracker.register(a.msg_id, "A")
    tracker.register(b.msg_id, "B")
    assert tracker.route(SESSION.reply(b, {})).owner == "B"
    assert tracker.route(iopub("stream", parent=a)).owner == "A"
    stranger = SESSION.message("kernel_info_request", channel="shell")
    assert tracker.route(SESSION.reply(stranger, {})).route is Route.UNCLAIMED
    assert tracker.route(iopub("status", parent=None)).route is Route.UNCLAIMED
    with pytest.raises(ValueError):
        tracker.register(a.msg_id, "again")
    assert len(tracker) == 2 and set(tracker) == {"A", "B"}


def test_tracker_late_messages_after_release() -> None:
    tracker: RequestTracker[str] = RequestTracker()
    a = SESSION.message("execute_request", channel="shell")
    tracker.register(a.msg_id, "A")
    tracker.release(a.msg_id)  # cancelled before its reply
    # Framing messages of a finished request are dropped, counted.
    assert tracker.route(iopub("status", parent=a, execution_state="busy")).route is Route.DROP
    # A late output or a late reply (the caller was cancelled) stays available.
    assert tracker.route(stream_for(a)).route is Route.UNCLAIMED
    # The idle may overtake the reply (they travel on different sockets)...
    assert tracker.route(iopub("status", parent=a, execution_state="idle")).route is Route.DROP
    assert tracker.route(SESSION.reply(a, {"status": "ok"})).route is Route.UNCLAIMED
    # ... once both arrived the request is forgotten.
    assert tracker.route(iopub("status", parent=a, execution_state="busy")).route is Route.UNCLAIMED
    assert tracker.dropped["late_status"] == 2


def test_tracker_forgets_a_replied_request_at_its_idle() -> None:
    tracker: RequestTracker[str] = RequestTracker()
    a = SESSION.message("kernel_info_request", channel="shell")
    tracker.register(a.msg_id, "A")
    tracker.release(a.msg_id, replied=True)
    assert tracker.route(iopub("status", parent=a, execution_state="idle")).route is Route.DROP
    assert tracker.route(iopub("status", parent=a, execution_state="idle")).route is Route.UNCLAIMED


def test_tracker_quiet_probe_reply_after_its_idle_is_dropped() -> None:
    tracker: RequestTracker[str] = RequestTracker()
    a = SESSION.message("kernel_info_request", channel="shell")
    tracker.register(a.msg_id, "probe")
    tracker.release(a.msg_id, quiet=True)
    assert tracker.route(iopub("status", parent=a, execution_state="idle")).route is Route.DROP
    assert tracker.route(SESSION.reply(a, {})).route is Route.DROP


def stream_for(parent: Message) -> Message:
    return iopub("stream", parent=parent, name="stdout", text="late")


def test_tracker_quiet_release_drops_late_replies() -> None:
    tracker: RequestTracker[str] = RequestTracker()
    a = SESSION.message("kernel_info_request", channel="shell")
    tracker.register(a.msg_id, "A")
    tracker.release(a.msg_id, quiet=True)
    assert tracker.route(SESSION.reply(a, {})).route is Route.DROP
    assert tracker.dropped["late_reply"] == 1


def test_tracker_forgets_oldest_finished_requests() -> None:
    tracker: RequestTracker[int] = RequestTracker(recent_size=3)
    reqs = [SESSION.message("kernel_info_request", channel="shell") for _ in range(5)]
    for i, r in enumerate(reqs):
        tracker.register(r.msg_id, i)
        tracker.release(r.msg_id)
    assert tracker.route(iopub("status", parent=reqs[0])).route is Route.UNCLAIMED
    assert tracker.route(iopub("status", parent=reqs[4])).route is Route.DROP


# -- dropping queue -----------------------------------------------------------------------


async def test_dropping_queue_drops_oldest_and_counts() -> None:
    q: DroppingQueue[int] = DroppingQueue(max_size=2)
    for i in range(5):
        q.put_nowait(i)
    assert q.dropped == 3 and q.delivered == 5
    assert await q.receive() == 3
    assert q.receive_nowait() == 4
    with pytest.raises(trio.WouldBlock):
        q.receive_nowait()
    q.close_producer()
    with pytest.raises(trio.EndOfChannel):
        await q.receive()


async def test_dropping_queue_wakes_a_waiting_receiver_and_iterates() -> None:
    q: DroppingQueue[str] = DroppingQueue()
    got: list[str] = []

    async def reader() -> None:
        async for item in q:
            got.append(item)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        q.put_nowait("a")
        q.put_nowait("b")
        q.close_producer()
    assert got == ["a", "b"]


async def test_dropping_queue_close_and_error() -> None:
    q: DroppingQueue[int] = DroppingQueue()
    q.put_nowait(1)
    q.close_producer(KernelError("E", "v"))
    assert await q.receive() == 1
    with pytest.raises(KernelError):
        await q.receive()
    await q.aclose()
    await q.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await q.receive()
    assert not q.put_nowait(2)


async def test_dropping_queue_hands_items_to_waiters_in_order_and_never_loses_one() -> None:
    # An item handed to a waiting receiver is that receiver's, even if it is cancelled
    # before it runs; the next items go to the next waiters, oldest first.
    q: DroppingQueue[int] = DroppingQueue()
    got: list[tuple[str, int]] = []
    scopes: dict[str, trio.CancelScope] = {}

    async def receiver(name: str) -> None:
        with trio.CancelScope() as scope:
            scopes[name] = scope
            got.append((name, await q.receive()))
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        for name in ("first", "second"):
            nursery.start_soon(receiver, name)
            await trio.testing.wait_all_tasks_blocked()
        q.put_nowait(1)
        scopes["first"].cancel()  # after the hand-over: the item is not lost
        q.put_nowait(2)
        q.put_nowait(3)  # nobody waits: queued
        scopes["second"].cancel()
    assert dict(got) == {"first": 1, "second": 2}  # (Trio may run the two in either order)
    assert q.receive_nowait() == 3 and q.delivered == 3 and q.dropped == 0


async def test_dropping_queue_end_wakes_every_waiter() -> None:
    q: DroppingQueue[int] = DroppingQueue()
    ended = 0

    async def waiter() -> None:
        nonlocal ended
        with pytest.raises(trio.EndOfChannel):
            await q.receive()
        ended += 1

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        q.close_producer()
    assert ended == 3


async def test_dropping_queue_close_wakes_waiter() -> None:
    q: DroppingQueue[int] = DroppingQueue()
    async with trio.open_nursery() as nursery:

        async def waiter() -> None:
            with pytest.raises(trio.ClosedResourceError):
                await q.receive()

        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        q.close()
