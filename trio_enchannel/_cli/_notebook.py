"""``trio-enchannel run A.ipynb [B.ipynb ...] [-j N]``: execute notebooks with the runner.

A thin user of :func:`~trio_enchannel.execute_notebook`: each notebook runs in its own kernel
(at most ``-j N`` at once), one progress display follows them all (a redrawn line on a
terminal, one line per cell otherwise), each executed notebook is written as soon as it ends,
and a table sums up the run. Everything the command can check (the notebooks, the kernels they
ask for, the output paths) is checked before any kernel starts.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import math
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import attrs
import trio

from .._errors import (
    CellExecutionError,
    CellTimeoutError,
    EncryptionUnavailable,
    KernelStartupError,
    NoSuchKernel,
    NotebookKernelDied,
    OutputPathError,
    ParameterError,
)
from ._common import (
    DEFAULT_KERNEL,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_KERNEL_DIED,
    EXIT_OK,
    EXIT_OUTPUT_LOST,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    PROG,
    CommandError,
)
from ._render import Renderer, make_renderer

if TYPE_CHECKING:
    from .._launch._kernel import Kernel
    from .._launch._kernelspec import KernelSpec
    from .._notebook._runner import NotebookEvent

__all__ = ["CellRecord", "Progress", "run_notebook_command", "run_notebooks_command"]

#: Above this many cells the timing table shows only the slowest ones.
_TABLE_LIMIT = 20
#: Which exit status wins when several notebooks fail differently.
_EXIT_PRIORITY = (
    EXIT_INTERRUPTED,
    EXIT_KERNEL_DIED,
    EXIT_TIMEOUT,
    EXIT_ERROR,
    EXIT_OUTPUT_LOST,
    EXIT_OK,
)


@attrs.define
class CellRecord:
    """What happened to one code cell."""

    number: int  # 1-based position among all cells
    source: str
    status: str = "pending"  # ok, error, ok (raised), skipped, timeout, interrupted, not run
    seconds: float = 0.0


@attrs.define(eq=False)
class _Job:
    """One notebook of the command."""

    path: Path
    out: Path
    nb: Any
    spec: KernelSpec
    records: dict[int, CellRecord]
    status: str = "waiting"  # running, ok, error, timeout, kernel died, interrupted, ...
    exit: int = EXIT_OK
    startup: float = 0.0
    seconds: float = 0.0
    kernel: Kernel | None = None
    current: tuple[int, int, CellRecord] | None = None  # position, total, record
    started_cell: float = 0.0
    total: int = 0  # cells that will run, once known
    done: int = 0  # cells that ran
    wrote: bool = False

    @property
    def label(self) -> str:
        return self.path.name


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            return line.strip()
    return "(empty)"


def _clip(text: str, width: int) -> str:
    if width <= 1:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


class Progress:
    """One progress display for every notebook on *stream*: a redrawn line on a terminal,
    one line per cell otherwise (prefixed by the notebook's name when there are several)."""

    def __init__(self, jobs: list[_Job], stream: TextIO, *, tty: bool) -> None:
        self.jobs = jobs
        self.stream = stream
        self.tty = tty

    def _prefix(self, job: _Job) -> str:
        return f"{job.label}: " if len(self.jobs) > 1 else ""

    def cell_started(self, job: _Job) -> None:
        if self.tty:
            self.redraw()
            return
        assert job.current is not None
        position, total, record = job.current
        text = f"{self._prefix(job)}[{position}/{total}] cell {record.number}: "
        self.stream.write(_clip(text + _first_line(record.source), 200) + "\n")
        self.stream.flush()

    def line(self) -> str:
        now = trio.current_time()
        if len(self.jobs) == 1:
            job = self.jobs[0]
            if not job.total:
                return f"starting kernel {job.spec.name!r}..."
            filled = int(20 * job.done / job.total)
            text = f"[{'#' * filled + '-' * (20 - filled)}] {job.done}/{job.total}"
            if job.current is not None:
                record = job.current[2]
                elapsed = now - job.started_cell
                text += f"  cell {record.number} ({elapsed:.1f} s): {_first_line(record.source)}"
            return text
        finished = sum(1 for j in self.jobs if j.status not in ("waiting", "running"))
        parts = [f"[{finished}/{len(self.jobs)} notebooks]"]
        for job in self.jobs:
            if job.status != "running":
                continue
            if job.current is None:
                where = f"{job.done}/{job.total} cells" if job.total else "starting"
                parts.append(f"{job.label}: {where}")
            else:
                position, total, _ = job.current
                parts.append(
                    f"{job.label}: cell {position}/{total} ({now - job.started_cell:.1f} s)"
                )
        return "  ".join(parts)

    def redraw(self) -> None:
        if not self.tty:
            return
        width = shutil.get_terminal_size((80, 24)).columns
        self.stream.write("\r\x1b[K" + _clip(self.line(), width - 1))
        self.stream.flush()

    def clear(self) -> None:
        """Remove the line before other text is written (terminal only)."""
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    async def tick(self) -> None:
        """Redraw twice a second so the elapsed times move (runs until cancelled)."""
        while self.tty:
            await trio.sleep(0.5)
            self.redraw()


# --------------------------------------------------------------------------- files

#: Optional modules that importing nbformat loads although nothing this command does uses
#: them: jsonschema (which nbformat imports) imports each of these, when it is installed, for
#: one of its format checkers. ``rfc3987_syntax`` (installed wherever jupyter_events is)
#: compiles a grammar as it is imported: more than a second and a half of CPU before the
#: first kernel could start; the others cost a tenth of a second together. nbformat validates
#: with fastjsonschema (or, if asked, with jsonschema's Draft 4 validator) and never passes a
#: format checker.
_UNUSED_OPTIONAL_MODULES = frozenset(
    {
        "fqdn",
        "idna",
        "isoduration",
        "jsonpointer",
        "rfc3339_validator",
        "rfc3986_validator",
        "rfc3987",
        "rfc3987_syntax",
        "uri_template",
        "webcolors",
    }
)


@contextlib.contextmanager
def _without(names: frozenset[str]) -> Iterator[None]:
    """``import NAME`` fails inside the block, as if *names* were not installed, and
    ``importlib.util.find_spec(NAME)`` finds nothing (the modules already imported stay)."""
    blocked = [name for name in names if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # the documented "not found"
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]


def _import_nbformat() -> Any:
    """Import nbformat without the optional modules it would load for nothing (a later
    import of them, by anything else, works as usual).

    Raises:
        ImportError: nbformat is not installed.
    """
    loaded = sys.modules.get("nbformat")
    if loaded is not None:  # (imported already: nothing to leave out, no modules to hide)
        return loaded
    try:
        with _without(_UNUSED_OPTIONAL_MODULES):
            return importlib.import_module("nbformat")
    except ImportError:
        # Not installed, or (some future version) one of them is no longer optional.
        return importlib.import_module("nbformat")


def _output_paths(args: argparse.Namespace, paths: list[Path]) -> list[Path]:
    """Where each executed notebook goes (``-o`` file, directory or pattern, ``--inplace``).

    Raises:
        CommandError: the options conflict, or two notebooks would write the same file.
    """
    if args.inplace and args.output is not None:
        raise CommandError("use either -o/--output or --inplace, not both", EXIT_USAGE)
    outs: list[Path] = []
    for path in paths:
        stem = path.name[: -len(".ipynb")]
        if args.inplace:
            out = path
        elif args.output is None:
            out = path.with_name(stem + ".out.ipynb")
        else:
            text = str(args.output)
            if "{" in text:
                try:
                    out = Path(text.format(stem=stem, name=path.name, dir=path.parent))
                except (KeyError, IndexError, ValueError) as exc:
                    raise CommandError(
                        f"bad output pattern {text!r} ({exc}): use {{stem}}, {{name}} or {{dir}}",
                        EXIT_USAGE,
                    ) from None
            elif text.endswith(("/", os.sep)) or Path(text).is_dir():
                out = Path(text) / path.name
            elif len(paths) > 1:
                raise CommandError(
                    "-o names one file but there are several notebooks: give a directory "
                    "(-o out/) or a pattern (-o 'out/{stem}.ipynb')",
                    EXIT_USAGE,
                )
            else:
                out = Path(text)
        outs.append(out)
    seen: dict[Path, Path] = {}
    inputs = {p.resolve() for p in paths}
    for path, out in zip(paths, outs, strict=True):
        key = out.resolve()
        if key in seen:
            raise CommandError(f"{seen[key]} and {path} would both be written to {out}", EXIT_USAGE)
        seen[key] = path
        if key in inputs and not args.inplace:
            raise CommandError(
                f"{out} is one of the input notebooks (use --inplace to overwrite inputs)",
                EXIT_USAGE,
            )
    return outs


def _read(path: Path) -> Any:
    nbformat: Any = _import_nbformat()
    try:
        return nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise CommandError(f"no such file: {path}", EXIT_USAGE) from None
    except IsADirectoryError:
        raise CommandError(f"{path} is a directory, not a notebook", EXIT_USAGE) from None
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    except Exception as exc:  # nbformat's NotJSONError, validation and version errors
        raise CommandError(f"{path} is not a valid notebook: {exc}", EXIT_USAGE) from None


def _spec_for(args: argparse.Namespace, nb: Any, path: Path) -> KernelSpec:
    from .._launch._kernelspec import get_kernel_spec

    kernelspec = nb.metadata.get("kernelspec") or {}
    name = str(args.kernel or kernelspec.get("name") or DEFAULT_KERNEL)
    try:
        return get_kernel_spec(name)
    except NoSuchKernel as exc:
        hint = ""
        if not args.kernel and kernelspec.get("name"):
            hint = f" ({path.name} asks for {name!r}; choose another with -k)"
        raise CommandError(f"{exc}{hint}", EXIT_USAGE) from None
    except Exception as exc:  # an invalid kernel.json
        raise CommandError(str(exc), EXIT_USAGE) from None


# --------------------------------------------------------------------------- summary


def _cell_summary(job: _Job) -> str:
    records = list(job.records.values())
    ran = [r for r in records if r.status not in ("pending", "not run")]
    lines: list[str] = []
    shown = ran
    if len(ran) > _TABLE_LIMIT:
        shown = sorted(ran, key=lambda r: r.seconds, reverse=True)[:10]
        lines.append(f"the 10 slowest of {len(ran)} cells:")
    if shown:
        lines.append(f"{'cell':>5}  {'status':<11} {'time':>8}  source")
        for r in shown:
            source = _clip(_first_line(r.source), 50)
            lines.append(f"{r.number:>5}  {r.status:<11} {r.seconds:>7.2f}s  {source}")
    cells = sum(r.seconds for r in ran)
    lines.append(
        f"kernel startup {job.startup:.2f} s, cells {cells:.2f} s, total {job.seconds:.2f} s"
    )
    return "\n".join(lines)


def _counts(job: _Job) -> tuple[int, int, int]:
    records = list(job.records.values())
    ran = [r for r in records if r.status not in ("pending", "not run", "skipped")]
    failed = [r for r in ran if r.status not in ("ok", "ok (raised)")]
    not_run = sum(1 for r in records if r.status in ("pending", "not run"))
    return len(ran), len(failed), not_run


def _notebook_summary(jobs: list[_Job]) -> str:
    rows = [("notebook", "status", "cells", "failed", "time", "output")]
    for job in jobs:
        ran, failed, _ = _counts(job)
        rows.append(
            (
                job.label,
                job.status,
                str(ran),
                str(failed),
                f"{job.seconds:.2f}s",
                str(job.out) if job.wrote else "(not written)",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]  # fmt: skip
    ok = sum(1 for j in jobs if j.exit == EXIT_OK)
    lines.append(f"{ok} of {len(jobs)} notebooks succeeded")
    return "\n".join(lines)


# --------------------------------------------------------------------------- running


@attrs.define(eq=False)
class _State:
    ui: Renderer
    progress: Progress
    jobs: list[_Job]
    inplace: bool = False
    interrupted: bool = False
    stopping: bool = False
    work_scope: trio.CancelScope = attrs.Factory(trio.CancelScope)


class _Interrupted(Exception):
    """Raised from the event callback to stop a notebook after Ctrl-C (internal)."""


async def _watch_sigint(signals: AsyncIterator[int], state: _State) -> None:
    async for _ in signals:
        if state.stopping:
            state.ui.note(f"{PROG}: already shutting the kernels down, please wait")
            continue
        if not state.interrupted:
            state.interrupted = True
            state.progress.clear()
            state.ui.note(f"{PROG}: interrupting (press Ctrl-C again to stop)")
            for job in state.jobs:
                if job.kernel is not None and job.current is not None:
                    try:
                        with trio.move_on_after(5):
                            await job.kernel.interrupt()
                    except Exception as exc:  # the kernel may be dying
                        state.ui.note(f"{PROG}: could not interrupt {job.label}: {exc}")
            continue
        state.stopping = True
        state.ui.note(f"{PROG}: stopping (shutting the kernels down)")
        state.work_scope.cancel()


async def _run_job(
    state: _State, job: _Job, args: argparse.Namespace, limiter: trio.CapacityLimiter
) -> None:
    """Run one notebook; the caller acquired *limiter* on behalf of *job* (released here)."""
    from .._launch._open import open_kernel
    from .._notebook._runner import (
        CellFinished,
        CellStarted,
        execute_notebook,
        notebook_kernel_arguments,
    )

    ui = state.ui
    progress = state.progress
    released = False

    def on_event(event: NotebookEvent) -> None:
        if isinstance(event, CellStarted):
            record = job.records[event.index]
            job.current = (event.position, event.total, record)
            job.total = event.total
            job.started_cell = trio.current_time()
            progress.cell_started(job)
        elif isinstance(event, CellFinished):
            record = job.records[event.index]
            record.seconds = event.seconds
            record.status = event.status
            if event.status == "error" and event.allowed:
                tags = event.cell.metadata.get("tags") or []
                record.status = "ok (raised)" if "raises-exception" in tags else "error"
            job.current = None
            if event.status != "skipped":
                job.done += 1
            if event.outputs_lost:
                if record.status == "ok":  # it ran, but its outputs in the notebook do not
                    record.status = "incomplete"
                progress.clear()
                where = f"{job.label}: " if len(state.jobs) > 1 else ""
                ui.note(
                    f"{PROG}: {where}cell {event.index + 1}: {event.outputs_lost} outputs lost "
                    "(the kernel published faster than they could be received)"
                )
            if event.status in ("error", "timeout") and event.error is not None:
                progress.clear()
                if state.interrupted and event.error.ename == "KeyboardInterrupt":
                    record.status = "interrupted"
                elif record.status != "ok (raised)":
                    where = f"{job.label}: " if len(state.jobs) > 1 else ""
                    ui.note(f"{PROG}: {where}cell {event.index + 1} failed:")
                    ui.error(
                        {
                            "ename": event.error.ename,
                            "evalue": event.error.evalue,
                            "traceback": list(event.error.traceback),
                        }
                    )
            progress.redraw()
            if state.interrupted:
                raise _Interrupted

    try:
        if state.interrupted:
            job.status = "interrupted"
            job.exit = EXIT_INTERRUPTED
            return
        job.status = "running"
        progress.redraw()
        began = trio.current_time()
        try:
            async with open_kernel(
                job.spec,
                startup_timeout=args.startup_timeout,
                output="capture",
                cwd=job.path.parent if str(job.path.parent) else None,
                # CurveZMQ when the kernel supports it: plain TCP lets other local users read
                # the traffic.
                encryption="auto",
                shutdown_grace=3.0,
                extra_arguments=notebook_kernel_arguments(job.spec),
            ) as kernel:
                job.kernel = kernel
                job.startup = trio.current_time() - began
                try:
                    await execute_notebook(
                        job.nb,
                        kernel=kernel,
                        cell_timeout=args.timeout,
                        allow_errors=args.allow_errors,
                        interrupt_on_timeout=args.allow_errors,
                        on_event=on_event,
                    )
                    job.status, job.exit = "ok", EXIT_OK
                    statuses = {r.status for r in job.records.values()}
                    if "timeout" in statuses:  # --allow-errors went on: still a failure
                        job.status, job.exit = "timeout", EXIT_TIMEOUT
                    elif "error" in statuses:
                        job.status, job.exit = "error", EXIT_ERROR
                    elif "incomplete" in statuses:
                        job.status, job.exit = "incomplete", EXIT_OUTPUT_LOST
                except CellTimeoutError as exc:
                    job.status, job.exit = "timeout", EXIT_TIMEOUT
                    progress.clear()
                    ui.note(
                        f"{PROG}: error: {_where(state, job)}cell {exc.cell_index + 1} did not "
                        f"finish within {exc.timeout:g} s (the kernel was interrupted)"
                    )
                except CellExecutionError:
                    job.status, job.exit = "error", EXIT_ERROR
                except NotebookKernelDied as exc:
                    job.status, job.exit = "kernel died", EXIT_KERNEL_DIED
                    progress.clear()
                    message = f"{PROG}: error: {_where(state, job)}{exc}"
                    tail = kernel.stderr_tail(20).rstrip()
                    if tail:
                        message += "\n--- kernel stderr (tail) ---\n" + tail
                    ui.note(message)
                except _Interrupted:
                    job.status, job.exit = "interrupted", EXIT_INTERRUPTED
                finally:
                    job.current = None
                    job.kernel = None
                    # The cells are done: the next notebook's kernel may start while this
                    # one shuts down (-j counts notebooks executing, not kernels exiting).
                    limiter.release_on_behalf_of(job)
                    released = True
        except KernelStartupError as exc:
            job.status, job.exit = "kernel failed", EXIT_KERNEL_DIED
            progress.clear()
            ui.note(f"{PROG}: error: {_where(state, job)}the kernel failed to start: {exc}")
        except EncryptionUnavailable as exc:
            job.status, job.exit = "kernel failed", EXIT_USAGE
            progress.clear()
            ui.note(f"{PROG}: error: {_where(state, job)}{exc}")
        finally:
            job.seconds = trio.current_time() - began
            if job.status == "running":  # cancelled by a second Ctrl-C
                job.status, job.exit = "interrupted", EXIT_INTERRUPTED
            if job.status != "kernel failed":
                with trio.CancelScope(shield=True):
                    await _finish(state, job)

    finally:
        if not released:
            limiter.release_on_behalf_of(job)


def _where(state: _State, job: _Job) -> str:
    return f"{job.label}: " if len(state.jobs) > 1 else ""


async def _finish(state: _State, job: _Job) -> None:
    """Mark what did not run, write the notebook, report it."""
    for record in job.records.values():
        if record.status == "pending":
            record.status = "not run"
    progress = state.progress
    progress.clear()
    if len(state.jobs) == 1:
        sys.stderr.write(_cell_summary(job) + "\n")
    from .._notebook._files import write_notebook_file

    try:
        await trio.to_thread.run_sync(
            functools.partial(write_notebook_file, job.out, job.nb, inplace=state.inplace)
        )
    except OutputPathError as exc:
        state.ui.note(f"{PROG}: error: {exc}")
        if job.exit == EXIT_OK:
            job.exit = EXIT_USAGE
        job.status = "not written"
    except OSError as exc:
        state.ui.note(f"{PROG}: error: cannot write {job.out}: {exc.strerror or exc}")
        if job.exit == EXIT_OK:
            job.exit = EXIT_USAGE
        job.status = "not written"
    else:
        job.wrote = True
        ran, failed, not_run = _counts(job)
        counts = f"{ran} cells run, {failed} failed"
        if not_run:
            counts += f", {not_run} not run"
        sys.stderr.write(f"wrote {job.out} ({counts})\n")
    sys.stderr.flush()
    progress.redraw()


def run_notebooks_command(args: argparse.Namespace, files: list[str]) -> int:
    """Execute notebooks (``-j`` at once) and write the executed notebooks.

    Raises:
        CommandError: nbformat is missing, a notebook is missing or invalid, a kernel is
            unknown, or the options conflict (all checked before any kernel starts).
    """
    try:
        _import_nbformat()
    except ImportError:
        raise CommandError(
            "running notebooks needs nbformat: python3 -m pip install 'trio-enchannel[notebook]'",
            EXIT_USAGE,
        ) from None
    from .._notebook._files import check_output_path
    from .._notebook._parameters import inject_parameters, parameters_language, parse_parameters

    paths = [Path(f) for f in files]
    outs = _output_paths(args, paths)
    parameters: dict[str, Any] | None = None
    try:
        if args.parameters or args.raw_parameters or args.parameter_files or args.parameters_yaml:
            parameters = parse_parameters(
                [tuple(pair) for pair in args.parameters or ()],
                raw_pairs=[tuple(pair) for pair in args.raw_parameters or ()],
                files=[Path(f) for f in args.parameter_files or ()],
                yaml_text=args.parameters_yaml,
            )
    except ParameterError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    jobs: list[_Job] = []
    for path, out in zip(paths, outs, strict=True):
        nb = _read(path)
        spec = _spec_for(args, nb, path)
        if parameters is not None:
            try:  # before any kernel starts: the values must be writable in its language
                language = parameters_language(
                    nb, kernel_name=spec.name, kernel_language=spec.language
                )
                nb = inject_parameters(nb, parameters, language=language)
            except ParameterError as exc:
                raise CommandError(f"{path}: {exc}", EXIT_USAGE) from None
        try:
            check_output_path(out)
        except OutputPathError as exc:
            raise CommandError(str(exc), EXIT_USAGE) from None
        records = {
            i: CellRecord(i + 1, str(cell.source))
            for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and str(cell.source).strip()
        }
        jobs.append(_Job(path, out, nb, spec, records))
    jobs_at_once: int = args.jobs if args.jobs is not None else 1
    ui = make_renderer(args, paths[0].name[: -len(".ipynb")])
    progress = Progress(jobs, sys.stderr, tty=sys.stderr.isatty())
    state = _State(ui, progress, jobs, inplace=args.inplace)
    limiter = trio.CapacityLimiter(jobs_at_once if jobs_at_once > 0 else math.inf)

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_watch_sigint, signals, state)
                nursery.start_soon(progress.tick)
                with state.work_scope:
                    async with trio.open_nursery() as runs:
                        for job in jobs:  # started in the order given
                            await limiter.acquire_on_behalf_of(job)
                            runs.start_soon(_run_job, state, job, args, limiter)
                nursery.cancel_scope.cancel()

    trio.run(main)
    progress.clear()
    if len(jobs) > 1:
        sys.stderr.write(_notebook_summary(jobs) + "\n")
    if state.work_scope.cancelled_caught:
        return EXIT_INTERRUPTED
    exits = {job.exit for job in jobs}
    if EXIT_USAGE in exits:
        return EXIT_USAGE
    return next(status for status in _EXIT_PRIORITY if status in exits)


def run_notebook_command(args: argparse.Namespace) -> int:
    """Execute the notebook ``args.file`` (and ``args.more_files``)."""
    return run_notebooks_command(args, [str(args.file), *(args.more_files or [])])
