"""trio-calc: a small but real Jupyter kernel written with trio-enchannel's kernel side.

Run by Jupyter as ``python trio_calc_kernel.py -f {connection_file}`` (see kernel.json).
Install it with ``jupyter kernelspec install --user examples/trio_calc`` and try it with
``jupyter console --kernel trio_calc``.

It answers every shell and control request a frontend sends (execute, complete, inspect,
is_complete, history, comm_info, kernel_info, shutdown, interrupt), streams output, shows rich
output, asks for input on stdin, pages help, and can be interrupted (by message or SIGINT)
while it sleeps or waits for input.
"""

from __future__ import annotations

import argparse
import fnmatch
import math
import os
import signal
import sys
from collections import deque
from collections.abc import Mapping
from typing import Any

import trio

from trio_enchannel import ConnectionInfo, KernelChannels, Message, open_kernel_channels

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from calc_language import CalcError, Interpreter, is_complete, show, token_at, word_at

__version__ = "1.0.0"

KERNEL_INFO: Mapping[str, Any] = {
    "status": "ok",
    "protocol_version": "5.5",
    "implementation": "trio_calc",
    "implementation_version": __version__,
    "language_info": {
        "name": "calc",
        "version": "1.0",
        "mimetype": "text/x-calc",
        "file_extension": ".calc",
        "pygments_lexer": "python",
        "codemirror_mode": "python",
    },
    "banner": "trio-calc: arithmetic, variables, print(), input(), display(), help()",
    "help_links": [],
    "debugger": False,
}


class RequestIO:
    """The calculator's view of the outside world, for one execute request."""

    def __init__(self, kernel: CalcKernel, request: Message) -> None:
        self.kernel = kernel
        self.request = request
        self.pages: list[str] = []

    async def write(self, stream: str, text: str) -> None:
        await self.kernel.channels.publish(
            "stream", {"name": stream, "text": text}, parent=self.request
        )

    async def display(self, data: dict[str, str]) -> None:
        await self.kernel.channels.publish(
            "display_data", {"data": data, "metadata": {}, "transient": {}}, parent=self.request
        )

    async def clear(self) -> None:
        await self.kernel.channels.publish("clear_output", {"wait": False}, parent=self.request)

    async def input(self, prompt: str) -> str:
        if not self.request.content.get("allow_stdin", True):
            raise CalcError("StdinNotImplementedError", "this frontend does not support input")
        return await self.kernel.channels.input_request(self.request, prompt)

    async def sleep(self, seconds: float) -> None:
        if not math.isfinite(seconds) or seconds < 0:
            raise CalcError("ValueError", "sleep() needs a finite, non-negative number")
        await trio.sleep(seconds)

    def page(self, text: str) -> None:
        self.pages.append(text)


class CalcKernel:
    """Serves one connection: the shell loop, the control loop and SIGINT."""

    def __init__(self, channels: KernelChannels) -> None:
        self.channels = channels
        self.interpreter = Interpreter()
        self.execution_count = 0
        self.history: list[tuple[int, str, str]] = []  # (line, input, output)
        self._running: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._deferred: deque[Message] = deque()

    async def serve(self) -> None:
        """Serve until a shutdown request arrives (or the process is told to stop)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._shell_loop)
            nursery.start_soon(self._control_loop)
            nursery.start_soon(self._sigint_loop)
            nursery.start_soon(self._parent_watch)

    def interrupt(self) -> None:
        """Stop the running execution (it replies with a KeyboardInterrupt error)."""
        if self._running is not None:
            self._running.cancel()

    # -- loops ---------------------------------------------------------------------------

    async def _shell_loop(self) -> None:
        async for request in self.channels.shell:
            await self.handle(request, shell=True)
            while self._deferred:
                await self.handle(self._deferred.popleft(), shell=True)

    async def _control_loop(self) -> None:
        async for request in self.channels.control:
            await self.handle(request)

    async def _sigint_loop(self) -> None:
        # With interrupt_mode "signal" Jupyter sends SIGINT: treat it like interrupt_request.
        with trio.open_signal_receiver(signal.SIGINT) as signals:
            async for _ in signals:
                self.interrupt()

    async def _parent_watch(self) -> None:
        # Like ipykernel: exit when the process that started us dies (jupyter_client names it
        # in JPY_PARENT_PID), so a frontend killed outright leaves no orphaned kernel.
        await wait_parent_exit()
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()

    async def _abort_queued(self) -> None:
        # Like ipykernel: executions queued behind a failed one are not run (and this happens
        # before the failed one's idle, so a client that waits for idle is never aborted).
        # Other queued requests are handled afterwards, in order.
        while True:
            try:
                request = self.channels.shell.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            if request.msg_type == "execute_request":
                async with self.channels.busy(request):
                    await self.channels.reply(request, {"status": "aborted"})
            else:
                self._deferred.append(request)

    # -- requests ------------------------------------------------------------------------

    async def handle(self, request: Message, *, shell: bool = False) -> None:
        """Answer one request between busy and idle."""
        handler = getattr(self, "do_" + request.msg_type, None)
        if handler is None:
            return  # unknown requests are ignored, as real kernels do
        async with self.channels.busy(request):
            content: dict[str, Any] | None = await handler(request)
            if content is not None:
                await self.channels.reply(request, content)
            if (
                shell
                and request.msg_type == "execute_request"
                and content is not None
                and content.get("status") == "error"
                and request.content.get("stop_on_error", True)
            ):
                await self._abort_queued()
        if request.msg_type == "shutdown_request" and self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def do_kernel_info_request(self, request: Message) -> dict[str, Any]:
        return dict(KERNEL_INFO)

    async def do_execute_request(self, request: Message) -> dict[str, Any]:
        code = str(request.content.get("code", ""))
        silent = bool(request.content.get("silent", False))
        store_history = bool(request.content.get("store_history", True)) and not silent
        if store_history:
            self.execution_count += 1
        count = self.execution_count
        if not silent:
            await self.channels.publish(
                "execute_input", {"code": code, "execution_count": count}, parent=request
            )
        io = RequestIO(self, request)
        output = ""
        error: CalcError | None = None
        with trio.CancelScope() as scope:
            self._running = scope
            try:
                value = await self.interpreter.run(code, io)
                if value is not None:
                    output = show(value)
            except CalcError as exc:
                error = exc
            finally:
                self._running = None
        if scope.cancelled_caught:
            error = CalcError("KeyboardInterrupt", "interrupted")
        if store_history:
            self.history.append((count, code, output))
        if error is not None:
            failure = {"ename": error.ename, "evalue": error.evalue, "traceback": error.traceback}
            await self.channels.publish("error", failure, parent=request)
            return {"status": "error", "execution_count": count, **failure}
        if output and not silent:
            await self.channels.publish(
                "execute_result",
                {"data": {"text/plain": output}, "metadata": {}, "execution_count": count},
                parent=request,
            )
        payload = [{"source": "page", "data": {"text/plain": p}, "start": 0} for p in io.pages]
        expressions = await self._user_expressions(request)
        return {
            "status": "ok",
            "execution_count": count,
            "payload": payload,
            "user_expressions": expressions,
        }

    async def _user_expressions(self, request: Message) -> dict[str, Any]:
        expressions = request.content.get("user_expressions") or {}
        results: dict[str, Any] = {}
        for name, expression in expressions.items():
            try:
                value = await self.interpreter.run(str(expression), RequestIO(self, request))
                results[name] = {
                    "status": "ok",
                    "data": {"text/plain": show(value)},
                    "metadata": {},
                }
            except CalcError as exc:
                results[name] = {
                    "status": "error",
                    "ename": exc.ename,
                    "evalue": exc.evalue,
                    "traceback": exc.traceback,
                }
        return results

    async def do_complete_request(self, request: Message) -> dict[str, Any]:
        code = str(request.content.get("code", ""))
        cursor = _cursor(request.content, code)
        token, start = token_at(code, cursor)
        matches = [name for name in self.interpreter.names() if name.startswith(token)]
        return {
            "status": "ok",
            "matches": matches,
            "cursor_start": start,
            "cursor_end": cursor,
            "metadata": {},
        }

    async def do_inspect_request(self, request: Message) -> dict[str, Any]:
        code = str(request.content.get("code", ""))
        text = self.interpreter.describe(word_at(code, _cursor(request.content, code)))
        data = {"text/plain": text} if text is not None else {}
        return {"status": "ok", "found": text is not None, "data": data, "metadata": {}}

    async def do_is_complete_request(self, request: Message) -> dict[str, Any]:
        status, indent = is_complete(str(request.content.get("code", "")))
        reply: dict[str, Any] = {"status": status}
        if status == "incomplete":
            reply["indent"] = indent
        return reply

    async def do_history_request(self, request: Message) -> dict[str, Any]:
        content = request.content
        output = bool(content.get("output", False))
        entries = list(self.history)
        access = content.get("hist_access_type", "tail")
        if access == "range":
            start = _int(content.get("start"), None) or 0
            stop = _int(content.get("stop"), None)
            entries = [e for e in entries if e[0] >= start and (stop is None or e[0] < stop)]
        elif access == "search":
            pattern = str(content.get("pattern", "*"))
            entries = [e for e in entries if fnmatch.fnmatchcase(e[1], pattern)]
            if content.get("unique", False):
                seen: set[str] = set()
                unique = []
                for entry in reversed(entries):
                    if entry[1] not in seen:
                        seen.add(entry[1])
                        unique.append(entry)
                entries = unique[::-1]
        n = _int(content.get("n"), None)
        if access in ("tail", "search") and n is not None:
            entries = entries[-n:] if n > 0 else []
        history = [[1, line, [code, out] if output else code] for line, code, out in entries]
        return {"status": "ok", "history": history}

    async def do_comm_info_request(self, request: Message) -> dict[str, Any]:
        return {"status": "ok", "comms": {}}

    async def do_comm_open(self, request: Message) -> None:
        # No comm targets: close every comm a frontend opens, as the protocol asks.
        comm_id = request.content.get("comm_id", "")
        await self.channels.publish("comm_close", {"comm_id": comm_id, "data": {}}, parent=request)

    async def do_shutdown_request(self, request: Message) -> dict[str, Any]:
        return {"status": "ok", "restart": bool(request.content.get("restart", False))}

    async def do_interrupt_request(self, request: Message) -> dict[str, Any]:
        self.interrupt()
        return {"status": "ok"}


def _cursor(content: Mapping[str, Any], code: str) -> int:
    cursor = content.get("cursor_pos")
    if not isinstance(cursor, int):
        return len(code)
    return max(0, min(cursor, len(code)))


def _int(value: Any, default: int | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


async def wait_parent_exit() -> None:
    """Return when the process named by ``JPY_PARENT_PID`` exits; wait forever when there is
    none, or when it is not this process's parent (an inherited variable: ipykernel ignores
    it too)."""
    try:
        parent = int(os.environ.get("JPY_PARENT_PID", ""))
    except ValueError:
        parent = 0
    if parent <= 1 or parent != os.getppid():
        await trio.sleep_forever()
    pidfd_open = getattr(os, "pidfd_open", None)  # Linux 5.3+: readable once it exits
    try:
        pidfd = pidfd_open(parent) if pidfd_open is not None else None
    except OSError:
        pidfd = None
    if pidfd is None:
        # Without pidfds nothing signals a parent's death: poll, as ipykernel does.
        while os.getppid() == parent:  # noqa: ASYNC110 - no event to wait for
            await trio.sleep(1.0)
        return
    try:
        await trio.lowlevel.wait_readable(pidfd)
    finally:
        os.close(pidfd)


async def main(connection_file: str) -> None:
    """Serve the kernel described by ``connection_file`` until it is shut down."""
    info = ConnectionInfo.from_file(connection_file)
    async with open_kernel_channels(info) as channels:
        await CalcKernel(channels).serve()


def parse_args(argv: list[str] | None = None) -> str:
    """The connection file named on the command line.

    Arguments the kernel does not know are ignored with a warning on stderr, never refused:
    frontends add their own (``jupyter run --kernel=trio_calc script.calc`` passes the script's
    name, ``KernelManager.start_kernel(extra_arguments=...)`` anything), and a kernel that
    exits on them dies before its first reply.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-f", "--connection-file", required=True)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"trio_calc: ignoring unknown arguments {unknown!r}", file=sys.stderr)
    connection_file: str = args.connection_file
    return connection_file


def cli(argv: list[str] | None = None) -> None:
    trio.run(main, parse_args(argv))


if __name__ == "__main__":
    cli()
