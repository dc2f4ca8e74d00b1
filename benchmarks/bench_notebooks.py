"""Running notebooks: trio-enchannel vs nbclient (sequential and gathered) vs papermill.

Two workloads, each run by every runner in a fresh Python process of its own (so the memory
one runner used is not counted against the next):

* **20 small notebooks** (five cells: a little arithmetic, prints, an HTML display, stderr).
  Runners: nbclient one after the other (``NotebookClient.execute``); nbclient's
  ``async_execute`` gathered with asyncio, at most ``JOBS`` at once; papermill one after the
  other (``execute_notebook``); ours, ``JOBS`` at once. Each run writes every executed
  notebook to disk. Measured: wall time; the peak resident memory of the runner's whole
  process tree (the runner and its kernels), sampled every 50 ms, divided by the number of
  notebooks running at once ("per running notebook"); the runner's peak without the kernels
  (its processes' resident memory, sampled, or its ``ru_maxrss`` if higher).
* **one notebook with 10 MB of output** (100,000 printed lines of 100 bytes): ours vs
  nbclient, wall time and the runner's peak memory (without, then with the kernel).

Ours runs twice. ``trio-enchannel`` is, in order of preference: the public API
(``trio_enchannel.execute_notebook``, many notebooks in one Trio program under a
``CapacityLimiter``) when the package has it; else the command line with ``-j N`` when ``run``
has it; else ``JOBS`` concurrent ``trio-enchannel run`` processes (each pays a Python
start-up, so that variant flatters nbclient). ``trio-enchannel cli`` is the command line,
``trio-enchannel run a.ipynb b.ipynb ... -j JOBS``, as a user runs it (its Python start-up
and imports count in its wall time; its own CPU and its kernels' are told apart).

Rounds alternate the runners' order, and the report gives the median and the range over the
rounds: this machine is shared, so single numbers are noisy.

Run: ``python benchmarks/bench_notebooks.py`` or ``python -m benchmarks notebooks``;
``BENCH_NOTEBOOK_ROUNDS=N`` (default 3), ``BENCH_NOTEBOOK_JOBS=N`` (default 4),
``BENCH_NOTEBOOK_COUNT=N`` (default 20), ``BENCH_QUICK=1`` runs one round and writes no
result files; ``BENCH_NOTEBOOK_RUNNERS="nbclient gathered,trio-enchannel"`` runs only those,
``BENCH_NOTEBOOK_LARGE=0`` leaves out the 10 MB notebook (neither writes result files);
``BENCH_OURS_VARIANT="cli -j"`` makes ``trio-enchannel`` the command line too.
The runner ``trio-enchannel slot held`` (ours inside ``async with limiter:``, the way
nbclient gathered holds its semaphore through the kernel's shutdown) runs only when named.

Besides wall time and memory, each runner reports where its time went: the imports before
the first notebook can be read (``nbformat`` costs seconds where ``jsonschema`` finds its
optional format checkers; the command line does without the one that costs them), when the
first cell started (since the runner's process started), and per notebook, from the phases
each runner's own hooks report (nbclient's ``on_cell_execute``/``on_cell_executed``, our
``on_event``, the command's progress lines), the kernel start (slot to first cell), the
cells, how long the slot stays held after the cells (ours gives it back while the kernel
shuts down), the shutdown (last cell to the call's return) and the first cell to the
written file; and the CPU time of the runner (the command's own, for the command line) and
of its kernels.
"""

from __future__ import annotations

import asyncio
import compileall
import contextvars
import datetime as _dt
import importlib
import importlib.util
import inspect
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: python benchmarks/bench_notebooks.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks._util import table
else:
    from ._util import table

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
ROUNDS = 1 if QUICK else int(os.environ.get("BENCH_NOTEBOOK_ROUNDS", "3"))
JOBS = int(os.environ.get("BENCH_NOTEBOOK_JOBS", "4"))
COUNT = int(os.environ.get("BENCH_NOTEBOOK_COUNT", "20"))
#: ``BENCH_NOTEBOOK_RUNNERS="nbclient gathered,trio-enchannel"``: only these runners.
RUNNER_NAMES = os.environ.get("BENCH_NOTEBOOK_RUNNERS", "")
#: ``BENCH_NOTEBOOK_LARGE=0``: leave out the 10 MB-output notebook.
LARGE = os.environ.get("BENCH_NOTEBOOK_LARGE", "1") not in ("", "0")
KERNEL = "python3"
ROOT = Path(__file__).resolve().parent.parent

SMALL_CELLS = [
    "import math\nx = sum(math.sqrt(i) for i in range(20000))\nx",
    "print('notebook {i}')\nfor k in range(5):\n    print(k)",
    "from IPython.display import HTML, display\ndisplay(HTML('<b>{i}</b>'))",
    "import sys\nprint('to stderr', file=sys.stderr)",
    "y = [k * k for k in range(1000)]\nlen(y)",
]
LARGE_CELL = "for i in range(100_000):\n    print('x' * 99)"


# --------------------------------------------------------------------------- notebooks


def _nbformat() -> Any:
    return importlib.import_module("nbformat")


def write_inputs(directory: Path) -> tuple[list[Path], Path]:
    """The 20 small notebooks and the large-output one, written in *directory*."""
    nbformat = _nbformat()
    small = []
    for i in range(COUNT):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {
            "name": KERNEL,
            "display_name": "Python 3",
            "language": "python",
        }
        nb.cells.append(nbformat.v4.new_markdown_cell(f"# Notebook {i}"))
        nb.cells += [nbformat.v4.new_code_cell(c.replace("{i}", str(i))) for c in SMALL_CELLS]
        path = directory / f"small-{i:02d}.ipynb"
        nbformat.write(nb, path)
        small.append(path)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbformat.v4.new_code_cell(LARGE_CELL))
    large = directory / "large.ipynb"
    nbformat.write(nb, large)
    return small, large


# --------------------------------------------------------------------------- runners
# Each runs in its own process (``--worker``) and executes *paths* into *out*, noting when
# each notebook reaches each phase (:func:`mark`) for the breakdown.

#: notebook name -> phase -> seconds since the worker started. Phases: ``slot`` (it may
#: start: the limit let it in), ``first cell`` (its kernel is ready and the first cell was
#: sent), ``cells done`` (the last cell finished), ``slot free`` (the next notebook may
#: start), ``returned`` (the runner's call returned: its kernel has exited), ``written``.
TIMELINE: dict[str, dict[str, float]] = {}
_WORKER_START = time.perf_counter()


def mark(path: Path, phase: str) -> None:
    TIMELINE.setdefault(path.name, {})[phase] = time.perf_counter() - _WORKER_START


def _nbclient_hooks(path: Path, nb: Any) -> dict[str, Any]:
    """nbclient's hooks, noting the phases (``on_cell_executed`` of the last code cell)."""
    last = max((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), default=-1)
    started: list[bool] = []

    def on_cell_execute(cell: Any, cell_index: int, **_: Any) -> None:
        if not started:
            started.append(True)
            mark(path, "first cell")

    def on_cell_executed(cell: Any, cell_index: int, **_: Any) -> None:
        if cell_index == last:
            mark(path, "cells done")

    return {"on_cell_execute": on_cell_execute, "on_cell_executed": on_cell_executed}


def run_nbclient_sequential(paths: list[Path], out: Path, jobs: int) -> None:
    nbformat = _nbformat()
    nbclient: Any = importlib.import_module("nbclient")
    for path in paths:
        mark(path, "slot")
        nb = nbformat.read(path, as_version=4)
        resources = {"metadata": {"path": str(path.parent)}}
        hooks = _nbclient_hooks(path, nb)
        nbclient.NotebookClient(nb, kernel_name=KERNEL, resources=resources, **hooks).execute()
        mark(path, "returned")
        mark(path, "slot free")
        nbformat.write(nb, out / path.name)
        mark(path, "written")


def run_nbclient_gathered(paths: list[Path], out: Path, jobs: int) -> None:
    nbformat = _nbformat()
    nbclient: Any = importlib.import_module("nbclient")

    async def main() -> None:
        gate = asyncio.Semaphore(jobs)

        async def one(path: Path) -> None:
            async with gate:
                mark(path, "slot")
                nb = nbformat.read(path, as_version=4)
                resources = {"metadata": {"path": str(path.parent)}}
                client = nbclient.NotebookClient(
                    nb, kernel_name=KERNEL, resources=resources, **_nbclient_hooks(path, nb)
                )
                await client.async_execute()
                mark(path, "returned")
                mark(path, "slot free")
                nbformat.write(nb, out / path.name)
                mark(path, "written")

        await asyncio.gather(*(one(p) for p in paths))

    asyncio.run(main())


def run_papermill(paths: list[Path], out: Path, jobs: int) -> None:
    papermill: Any = importlib.import_module("papermill")
    for path in paths:
        papermill.execute_notebook(
            str(path), str(out / path.name), kernel_name=KERNEL, progress_bar=False
        )


def _ours_package() -> Any:
    """``trio_enchannel.notebook`` if there is such a module, else ``trio_enchannel``."""
    if importlib.util.find_spec("trio_enchannel.notebook") is not None:
        return importlib.import_module("trio_enchannel.notebook")
    return importlib.import_module("trio_enchannel")


def ours_variant() -> str:
    """Which of our runners this checkout has: ``api``, ``cli -j`` or ``cli``."""
    if callable(getattr(_ours_package(), "execute_notebook", None)):
        return "api"
    help_text = subprocess.run(
        [sys.executable, "-m", "trio_enchannel", "run", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env=_env(),
    ).stdout
    return "cli -j" if "--jobs" in help_text or " -j " in help_text else "cli"


def run_ours_slot_held(paths: list[Path], out: Path, jobs: int) -> None:
    """Ours with ``async with limiter:`` around each call (the slot is held through the
    kernel's shutdown, as nbclient gathered holds its semaphore): not run by default."""
    run_ours(paths, out, jobs, hold_slot=True)


def run_ours_cli(paths: list[Path], out: Path, jobs: int) -> None:
    """``trio-enchannel run A.ipynb B.ipynb ... -j JOBS -o OUT/{stem}.ipynb``: one process
    (its Python start-up and imports count), its progress lines timed as they come."""
    command = [sys.executable, "-m", "trio_enchannel", "run", *map(str, paths)]
    command += ["-j", str(jobs), "-o", str(out / "{stem}.ipynb")]
    by_name = {path.name: path for path in paths}
    proc = subprocess.Popen(
        command, env=_env(), stdout=DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    assert proc.stderr is not None
    tail: list[str] = []
    for line in proc.stderr:  # "NAME: [1/5] cell 2: ..." and "wrote OUT/NAME (...)"
        tail = [*tail[-20:], line]
        name, _, rest = line.partition(": ")
        if len(paths) == 1:  # no name before the progress lines
            name, rest = paths[0].name, line
        if rest.startswith("[1/") and name in by_name:
            mark(by_name[name], "first cell")
        elif line.startswith("wrote "):
            written = Path(line[len("wrote ") :].split(" (", 1)[0])
            if written.name in by_name:
                mark(by_name[written.name], "written")
    _split_cpu(proc.pid)
    if proc.wait() != 0:
        raise RuntimeError(f"the command failed ({proc.returncode}):\n{''.join(tail)}")


def _split_cpu(pid: int) -> None:
    """The command's own CPU time and its kernels' (Linux: read from /proc while the exited
    process is still a zombie), in :data:`CPU_OVERRIDE`."""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (AttributeError, OSError):
        return
    tick = os.sysconf("SC_CLK_TCK")
    utime, stime, cutime, cstime = (int(v) / tick for v in fields[11:15])
    CPU_OVERRIDE["runner cpu s"] = _cpu(resource.RUSAGE_SELF) + utime + stime
    CPU_OVERRIDE["kernels cpu s"] = cutime + cstime


#: CPU times a runner measured itself (the command's own, apart from its kernels').
CPU_OVERRIDE: dict[str, float] = {}


def run_ours(paths: list[Path], out: Path, jobs: int, *, hold_slot: bool = False) -> None:
    import trio

    variant = os.environ.get("BENCH_OURS_VARIANT") or ours_variant()
    if variant == "cli -j":
        run_ours_cli(paths, out, jobs)
        return

    async def main() -> None:
        limiter = trio.CapacityLimiter(jobs)
        _READ_LIMITER.set(trio.CapacityLimiter(1))
        async with trio.open_nursery() as nursery:
            for path in paths:
                nursery.start_soon(one, path, limiter)

    async def one(path: Path, limiter: trio.CapacityLimiter) -> None:
        if variant == "api" and not hold_slot and _takes_limiter():
            # The run holds a token while its kernel starts and its cells run, and gives it
            # back while its kernel shuts down.
            await _ours_api(path, out / path.name, limiter)
            return
        async with limiter:
            if variant == "api":
                mark(path, "slot")
                await _ours_api(path, out / path.name, None)
            else:
                command = [sys.executable, "-m", "trio_enchannel", "run", str(path)]
                command += ["-o", str(out / path.name)]
                await trio.run_process(command, env=_env(), stdout=DEVNULL, stderr=DEVNULL)

    trio.run(main)


_READ_LIMITER: contextvars.ContextVar[Any] = contextvars.ContextVar("read_limiter")


def _takes_limiter() -> bool:
    execute = _ours_package().execute_notebook
    return "limiter" in inspect.signature(execute).parameters


async def _ours_api(path: Path, target: Path, limiter: Any) -> None:
    import trio

    nbformat = _nbformat()
    package = _ours_package()
    first: list[bool] = []

    def on_event(event: Any) -> None:
        kind = type(event).__name__
        if kind == "CellStarted" and not first:
            first.append(True)
            mark(path, "first cell")
        elif kind == "CellFinished" and event.position == event.total:
            mark(path, "cells done")
        elif kind == "NotebookFinished" and limiter is not None:
            # The run got its token just before starting its kernel (its seconds count from
            # there), and gives it back now.
            mark(path, "slot free")
            TIMELINE[path.name]["slot"] = TIMELINE[path.name]["slot free"] - event.seconds

    options: dict[str, Any] = {"on_event": on_event}
    if limiter is not None:
        options["limiter"] = limiter
    # One read at a time, in the order the notebooks were started: twenty reads at once (all
    # started before any kernel, when the token is taken inside the call) would share the
    # GIL and all finish late, holding back the first kernels.
    nb = await trio.to_thread.run_sync(
        lambda: nbformat.read(path, as_version=4), limiter=_READ_LIMITER.get()
    )
    nb = await package.execute_notebook(nb, kernel_name=KERNEL, cwd=path.parent, **options)
    mark(path, "returned")
    if limiter is None:
        mark(path, "slot free")
    try:
        writer: Callable[[Path, Any], None] = importlib.import_module(
            "trio_enchannel._notebook._files"
        ).write_notebook_file
    except (ImportError, AttributeError):

        def writer(target: Path, nb: Any) -> None:
            nbformat.write(nb, target)

    await trio.to_thread.run_sync(writer, target, nb)
    mark(path, "written")


RUNNERS: dict[str, Callable[[list[Path], Path, int], None]] = {
    "nbclient sequential": run_nbclient_sequential,
    "nbclient gathered": run_nbclient_gathered,
    "papermill sequential": run_papermill,
    "trio-enchannel": run_ours,
    "trio-enchannel cli": run_ours_cli,
    "trio-enchannel slot held": run_ours_slot_held,
}
#: The runners run unless ``BENCH_NOTEBOOK_RUNNERS`` names others.
DEFAULT_RUNNERS = [name for name in RUNNERS if name != "trio-enchannel slot held"]


DEVNULL = subprocess.DEVNULL
CHOSEN = [n.strip() for n in RUNNER_NAMES.split(",") if n.strip()] or DEFAULT_RUNNERS
if unknown := sorted(set(CHOSEN) - set(RUNNERS)):
    raise SystemExit(f"unknown runner(s) {unknown}; available: {', '.join(RUNNERS)}")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


#: What each runner imports before it can read a notebook (timed apart, inside the wall
#: time: nbformat alone takes seconds where jsonschema finds its optional format checkers).
IMPORTS: dict[str, list[str]] = {
    "nbclient sequential": ["nbformat", "nbclient"],
    "nbclient gathered": ["nbformat", "nbclient"],
    "papermill sequential": ["nbformat", "papermill"],
    # (the package imports its modules on first use: name what the runner uses)
    "trio-enchannel": ["nbformat", "trio", "trio_enchannel:execute_notebook,open_kernel"],
    "trio-enchannel slot held": ["nbformat", "trio", "trio_enchannel:execute_notebook,open_kernel"],
    "trio-enchannel cli": [],  # the command imports what it needs (inside its wall time)
}


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def worker(runner: str, out: str, jobs: str, paths: list[str]) -> None:
    """The ``--worker`` entry point: run, then print the wall time, own peak, CPU times and
    the phases of each notebook as JSON."""
    global _WORKER_START
    start = _WORKER_START = time.perf_counter()
    imports_needed = IMPORTS[runner]
    if runner == "trio-enchannel" and os.environ.get("BENCH_OURS_VARIANT") == "cli -j":
        imports_needed = IMPORTS["trio-enchannel cli"]  # the command imports its own
    for name in imports_needed:
        module, _, attributes = name.partition(":")
        for attribute in filter(None, attributes.split(",")):
            getattr(importlib.import_module(module), attribute)
        importlib.import_module(module)
    imports = time.perf_counter() - start
    RUNNERS[runner]([Path(p) for p in paths], Path(out), int(jobs))
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result: dict[str, Any] = {
        "seconds": seconds,
        "self_peak_mib": peak_kib / 1024,
        "runner cpu s": _cpu(resource.RUSAGE_SELF),
        "kernels cpu s": _cpu(resource.RUSAGE_CHILDREN),
        "timeline": TIMELINE,
    }
    if imports_needed:
        result["imports s"] = imports
    result.update(CPU_OVERRIDE)
    print(json.dumps(result))


# --------------------------------------------------------------------------- measuring


def _tree_rss(process: Any) -> tuple[int, int]:
    """Resident bytes of *process* and its descendants: (all of them, the kernels alone)."""
    psutil: Any = importlib.import_module("psutil")
    total = kernels = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for member in members:
        try:
            rss = int(member.memory_info().rss)
            is_kernel = any("ipykernel_launcher" in arg for arg in member.cmdline())
        except psutil.Error:
            continue
        total += rss
        kernels += rss if is_kernel else 0
    return total, kernels


def measure(runner: str, paths: list[Path], out: Path, jobs: int) -> dict[str, float]:
    """Run *runner* in a fresh process: its wall time, and peak memory sampled every 50 ms
    (``tree``: the runner's processes and the kernels; ``runner``: without the kernels)."""
    psutil: Any = importlib.import_module("psutil")
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", runner, str(out)]
    command += [str(jobs), *map(str, paths)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=_env())
    peak_tree = peak_runner = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree, peak_runner
        handle = psutil.Process(proc.pid)
        while not done.is_set():
            total, kernels = _tree_rss(handle)
            peak_tree = max(peak_tree, total)
            peak_runner = max(peak_runner, total - kernels)
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{runner} failed with status {proc.returncode}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result.update(phases(result.pop("timeline", {})))
    result["tree_peak_mib"] = peak_tree / 2**20
    # The sampled peak may miss a short one; the worker's own ru_maxrss cannot.
    result["runner_peak_mib"] = max(peak_runner / 2**20, result["self_peak_mib"])
    missing = [p.name for p in paths if not (out / p.name).is_file()]
    if missing:
        raise RuntimeError(f"{runner} wrote no {', '.join(missing)}")
    return dict(result)


#: The breakdown's columns: (name, from phase, to phase), each a mean over the notebooks.
PHASES = [
    ("kernel start", "slot", "first cell"),
    ("cells", "first cell", "cells done"),
    ("end", "cells done", "slot free"),
    ("shutdown", "cells done", "returned"),
    ("slot held", "slot", "slot free"),
    # comparable for every runner, the command line too (written after the kernel exited)
    ("to written", "first cell", "written"),
]


def phases(timeline: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean seconds per notebook of each of :data:`PHASES`, and when the first notebook got
    its slot (``first slot s``: the imports and reading before any kernel starts)."""
    result: dict[str, float] = {}
    for name, begin, end in PHASES:
        spans = [t[end] - t[begin] for t in timeline.values() if begin in t and end in t]
        if spans:
            result[f"{name} s"] = statistics.mean(spans)
    slots = [t["slot"] for t in timeline.values() if "slot" in t]
    if slots:
        result["first slot s"] = min(slots)
    firsts = [t["first cell"] for t in timeline.values() if "first cell" in t]
    if firsts:
        result["first cell s"] = min(firsts)
    return result


def _spread(values: list[float], fmt: str = "{:.1f}") -> str:
    if len(values) == 1:
        return fmt.format(values[0])
    low, high = fmt.format(min(values)), fmt.format(max(values))
    return f"{fmt.format(statistics.median(values))} ({low}-{high})"


def run(directory: Path, variant: str) -> dict[str, Any]:
    os.environ["BENCH_OURS_VARIANT"] = variant  # the workers need not find it out again
    small, large = write_inputs(directory)
    runners = CHOSEN
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in runners}
    large_samples: dict[str, list[dict[str, float]]] = {"nbclient": [], "trio-enchannel": []}
    large_runner = {"nbclient": "nbclient sequential", "trio-enchannel": "trio-enchannel"}
    for round_index in range(ROUNDS):
        order = runners if round_index % 2 == 0 else runners[::-1]
        for name in order:
            out = directory / f"out-{round_index}-{name.replace(' ', '-')}"
            samples[name].append(measure(name, small, out, JOBS))
            print(
                f"round {round_index + 1}/{ROUNDS}: {name}: {samples[name][-1]['seconds']:.1f} s",
                flush=True,
            )
        for name in (
            []
            if not LARGE
            else ["nbclient", "trio-enchannel"]
            if round_index % 2 == 0
            else ["trio-enchannel", "nbclient"]
        ):
            out = directory / f"large-{round_index}-{name}"
            large_samples[name].append(measure(large_runner[name], [large], out, 1))
            print(
                f"round {round_index + 1}/{ROUNDS}: large output, {name}: "
                f"{large_samples[name][-1]['seconds']:.1f} s, "
                f"{large_samples[name][-1]['runner_peak_mib']:.0f} MiB",
                flush=True,
            )
    return {"small": samples, "large": large_samples}


def report(results: dict[str, Any], variant: str) -> str:
    small: dict[str, list[dict[str, float]]] = results["small"]

    def median_of(name: str) -> float | None:
        samples = small.get(name)
        return statistics.median(s["seconds"] for s in samples) if samples else None

    def ratio(base: float | None, median: float) -> str:
        return f"{base / median:.2f}x" if base is not None else "-"

    base, gathered = median_of("nbclient sequential"), median_of("nbclient gathered")
    rows: list[list[object]] = []
    for name, samples in small.items():
        at_once = 1 if "sequential" in name else JOBS
        seconds = [s["seconds"] for s in samples]
        median = statistics.median(seconds)
        label = name
        if name == "trio-enchannel cli":
            label = f"trio-enchannel run ... -j {JOBS}"
        elif name.startswith("trio-enchannel"):
            label = f"{name} ({variant}, {JOBS} at once)"
        rows.append(
            [
                label,
                _spread(seconds),
                ratio(base, median),
                ratio(gathered, median),
                _spread([s["tree_peak_mib"] / at_once for s in samples], "{:.0f}"),
                _spread([s["runner_peak_mib"] for s in samples], "{:.0f}"),
            ]
        )
    text = table(
        f"{COUNT} small notebooks, {KERNEL}; median (min-max) of {ROUNDS} rounds",
        [
            "runner",
            "wall s",
            "vs nbclient seq",
            "vs nbclient gathered",
            "MiB per running nb",
            "runner peak MiB (no kernels)",
        ],
        rows,
    )
    theirs = small.get("nbclient gathered")
    for name in ("trio-enchannel", "trio-enchannel cli"):
        ours = small.get(name)
        if ours and theirs:  # rounds alternate the order: each round's ratio, and their spread
            per_round = [t["seconds"] / o["seconds"] for o, t in zip(ours, theirs, strict=True)]
            text += f"\n\n{name} vs nbclient gathered, round by round: " + ", ".join(
                f"{r:.2f}x" for r in per_round
            )
    breakdown_rows: list[list[object]] = []
    columns = ["imports s", "first slot s", "first cell s"]
    columns += [f"{name} s" for name, _, _ in PHASES]
    columns += ["runner cpu s", "kernels cpu s"]
    for name, samples in small.items():
        row: list[object] = [name]
        for key in columns:
            values = [s[key] for s in samples if key in s]
            per_run = ("imports s", "first slot s", "first cell s")
            fmt = "{:.2f}" if key in per_run or key.endswith("cpu s") else None
            row.append(_spread(values, fmt or "{:.3f}") if values else "-")
        breakdown_rows.append(row)
    text += "\n\n" + table(
        f"Where the time goes ({COUNT} small notebooks): seconds per notebook, mean over "
        "the notebooks, median (min-max) over the rounds; imports, first slot, first cell "
        "(the earliest, since the runner's process started) and CPU: per run (the command "
        "line's own CPU is its runner CPU)",
        [
            "runner",
            "imports",
            "first slot",
            "first cell",
            "kernel start",
            "cells",
            "end (slot held)",
            "shutdown",
            "slot held",
            "first cell to written",
            "runner CPU",
            "kernels CPU",
        ],
        breakdown_rows,
    )
    large: dict[str, list[dict[str, float]]] = results["large"]
    large_rows = [
        [
            name,
            _spread([s["seconds"] for s in samples]),
            _spread([s["runner_peak_mib"] for s in samples], "{:.0f}"),
            _spread([s["tree_peak_mib"] for s in samples], "{:.0f}"),
        ]
        for name, samples in large.items()
        if samples
    ]
    if not large_rows:
        return text
    text += "\n\n" + table(
        "One notebook with 10 MB of stream output",
        ["runner", "wall s", "runner peak MiB (no kernel)", "with the kernel MiB"],
        large_rows,
    )
    return text


def machine() -> str:
    versions = []
    for name in ("nbclient", "papermill", "ipykernel"):
        try:
            versions.append(f"{name} {importlib.import_module(name).__version__}")
        except ImportError:
            versions.append(f"{name} missing")
    cpu = platform.processor() or platform.machine()
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, {', '.join(versions)}"
    )


def _compile_ours() -> None:
    """Write our modules' bytecode (``__pycache__``, ignored by git) before the runs, as an
    installed package has it: nbclient and papermill come with theirs, and with
    ``PYTHONDONTWRITEBYTECODE`` set every worker would compile ours again (a fifth of a
    second of CPU per run, in the wall time)."""
    compileall.compile_dir(ROOT / "trio_enchannel", quiet=1)


def main() -> None:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    _compile_ours()
    variant = os.environ.get("BENCH_OURS_VARIANT") or ours_variant()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-notebooks-") as tmp:
        results = run(Path(tmp), variant)
    text = (
        f"{stamp}; {machine()}; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after\n\n{report(results, variant)}"
    )
    print(text)
    if QUICK or RUNNER_NAMES or not LARGE:  # the saved results are the complete set
        return
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "notebooks.txt").write_text(text + "\n")
    (out / "notebooks.json").write_text(
        json.dumps({"date": stamp, "machine": machine(), "variant": variant, **results}, indent=1)
        + "\n"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    else:
        main()
