"""The job runner of the commands that talk to a kernel (``run`` for code and files,
``info``): one Trio program in which a task watches SIGINT (the first Ctrl-C interrupts the
kernel, the second cancels the work so that :func:`open_kernel` shuts the kernel down) while
the job runs.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import attrs
import trio

from .._util import lone_exception
from ._common import EXIT_INTERRUPTED, PROG
from ._render import Renderer

if TYPE_CHECKING:  # without importing the launcher at startup
    from .._launch._kernel import Kernel

__all__ = ["CliState", "interrupt_kernel", "run_job"]


@attrs.define(eq=False)
class CliState:
    """What the SIGINT watcher and the job share."""

    ui: Renderer
    work_scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    kernel: Kernel | None = None
    busy: bool = False
    interrupted: bool = False
    stopping: bool = False
    input_scope: trio.CancelScope | None = None
    stdin_closed_noted: bool = False


# --------------------------------------------------------------------------- Ctrl-C


async def interrupt_kernel(state: CliState) -> None:
    """Interrupt the job's kernel (if it has one), giving up after 5 s; failures are noted."""
    kernel = state.kernel
    if kernel is None:
        return
    try:
        with trio.move_on_after(5):
            await kernel.interrupt()
    except Exception as exc:  # the kernel may be dying; the second Ctrl-C still works
        state.ui.note(f"{PROG}: could not interrupt the kernel: {exc}")


async def _watch_sigint(
    signals: AsyncIterator[int], state: CliState, nursery: trio.Nursery
) -> None:
    async for _ in signals:
        if state.stopping:
            state.ui.note(f"{PROG}: already shutting the kernel down, please wait")
            continue
        if state.busy and not state.interrupted:
            state.interrupted = True
            state.ui.note(f"{PROG}: interrupting the kernel (press Ctrl-C again to stop)")
            if state.input_scope is not None:
                state.input_scope.cancel()
            nursery.start_soon(interrupt_kernel, state)
            continue
        state.stopping = True
        state.interrupted = True
        state.ui.note(f"{PROG}: stopping (shutting the kernel down)")
        state.work_scope.cancel()


def run_job(ui: Renderer, job: Callable[[CliState], Awaitable[int]]) -> int:
    """Run *job* under ``trio.run`` with Ctrl-C handling; return its exit status."""

    async def main() -> int:
        state = CliState(ui)
        status = EXIT_INTERRUPTED
        with trio.open_signal_receiver(signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_watch_sigint, signals, state, nursery)
                with state.work_scope:
                    status = await job(state)
                nursery.cancel_scope.cancel()
        if state.work_scope.cancelled_caught:
            return EXIT_INTERRUPTED
        return status

    try:
        return trio.run(main)
    except BaseException as exc:
        inner = lone_exception(exc)
        if inner is exc:
            raise
        raise inner from None
