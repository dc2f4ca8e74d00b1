"""Measuring what a test may leak: file descriptors, threads, processes, memory, tasks, objects.

A :class:`Snapshot` records the process's resources; :func:`settle` waits (bounded) until they
are back at a baseline, because ZeroMQ tears connections down asynchronously in its I/O thread.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections import Counter
from collections.abc import Iterable

import attrs
import psutil
import trio

_PROC = psutil.Process()


def open_fds() -> int:
    """File descriptors open in this process."""
    return len(os.listdir("/proc/self/fd"))


def rss() -> int:
    """Resident memory of this process, in bytes."""
    return int(_PROC.memory_info().rss)


def child_pids() -> set[int]:
    """Pids of every live descendant process (zombies excluded)."""
    alive: set[int] = set()
    for child in _PROC.children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                alive.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def trio_tasks() -> int:
    """Tasks alive in the current Trio run (the whole tree from the root task)."""
    count = 0
    todo = [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        if task is None:
            continue
        count += 1
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return count


def live_objects(type_names: Iterable[str]) -> Counter[str]:
    """How many instances of each named class are alive (after a full collection)."""
    wanted = set(type_names)
    gc.collect()
    counts: Counter[str] = Counter()
    for obj in gc.get_objects():
        name = type(obj).__name__
        if name in wanted:
            counts[name] += 1
    return counts


@attrs.frozen
class Snapshot:
    """The resources of this process at one moment."""

    fds: int
    os_threads: int
    py_threads: int
    children: frozenset[int]
    rss: int
    blocks: int
    tasks: int

    @classmethod
    def take(cls, *, in_trio: bool = True) -> Snapshot:
        gc.collect()
        return cls(
            fds=open_fds(),
            os_threads=_PROC.num_threads(),
            py_threads=threading.active_count(),
            children=frozenset(child_pids()),
            rss=rss(),
            blocks=sys.getallocatedblocks(),
            tasks=trio_tasks() if in_trio else 0,
        )

    def leaks_against(self, baseline: Snapshot, *, block_slack: int) -> list[str]:
        """What is above ``baseline`` (memory blocks beyond ``block_slack`` count)."""
        problems = []
        if self.fds > baseline.fds:
            problems.append(f"file descriptors {baseline.fds} -> {self.fds}")
        if self.os_threads > baseline.os_threads:
            problems.append(f"OS threads {baseline.os_threads} -> {self.os_threads}")
        if self.py_threads > baseline.py_threads:
            problems.append(f"Python threads {baseline.py_threads} -> {self.py_threads}")
        extra = self.children - baseline.children
        if extra:
            problems.append(f"child processes left: {sorted(extra)}")
        if self.tasks > baseline.tasks:
            problems.append(f"Trio tasks {baseline.tasks} -> {self.tasks}")
        if self.blocks - baseline.blocks > block_slack:
            problems.append(
                f"Python memory blocks {baseline.blocks} -> {self.blocks} "
                f"(+{self.blocks - baseline.blocks}, slack {block_slack})"
            )
        return problems


async def settle(
    baseline: Snapshot, *, block_slack: int, within: float = 10.0
) -> tuple[Snapshot, list[str]]:
    """Wait until nothing is above ``baseline`` (or ``within`` seconds); return the last snapshot
    and what is still above it.

    ZeroMQ closes sockets and TCP connections in its I/O thread after ``close()`` returns, and
    a reaped process can take a moment to disappear from ``/proc``: resources are compared
    again every 50 ms until they are back or the deadline passes.
    """
    with trio.move_on_after(within):
        while True:
            now = Snapshot.take()
            problems = now.leaks_against(baseline, block_slack=block_slack)
            if not problems:
                return now, problems
            await trio.sleep(0.05)
    now = Snapshot.take()
    return now, now.leaks_against(baseline, block_slack=block_slack)


class PeakRss:
    """Samples resident memory while a block runs (a task started with :meth:`run`)."""

    def __init__(self, every: float = 0.02) -> None:
        self.start = rss()
        self.peak = self.start
        self._every = every

    def sample(self) -> None:
        self.peak = max(self.peak, rss())

    @property
    def growth(self) -> int:
        """Peak resident memory above the start, in bytes."""
        return self.peak - self.start

    async def run(self) -> None:
        while True:
            self.sample()
            await trio.sleep(self._every)
