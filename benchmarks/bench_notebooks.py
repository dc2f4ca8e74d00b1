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

Ours is, in order of preference: the public API (``trio_enchannel.execute_notebook``, many
notebooks in one Trio program under a ``CapacityLimiter``) when the package has it; else the
command line with ``-j N`` when ``run`` has it; else ``JOBS`` concurrent ``trio-enchannel run``
processes (each pays a Python start-up, so that variant flatters nbclient).

Rounds alternate the runners' order, and the report gives the median and the range over the
rounds: this machine is shared, so single numbers are noisy.

Run: ``python benchmarks/bench_notebooks.py`` or ``python -m benchmarks notebooks``;
``BENCH_NOTEBOOK_ROUNDS=N`` (default 3), ``BENCH_NOTEBOOK_JOBS=N`` (default 4),
``BENCH_NOTEBOOK_COUNT=N`` (default 20), ``BENCH_QUICK=1`` runs one round and writes no
result files.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import importlib
import importlib.util
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
# Each runs in its own process (``--worker``) and executes *paths* into *out*.


def run_nbclient_sequential(paths: list[Path], out: Path, jobs: int) -> None:
    nbformat = _nbformat()
    nbclient: Any = importlib.import_module("nbclient")
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        resources = {"metadata": {"path": str(path.parent)}}
        nbclient.NotebookClient(nb, kernel_name=KERNEL, resources=resources).execute()
        nbformat.write(nb, out / path.name)


def run_nbclient_gathered(paths: list[Path], out: Path, jobs: int) -> None:
    nbformat = _nbformat()
    nbclient: Any = importlib.import_module("nbclient")

    async def main() -> None:
        gate = asyncio.Semaphore(jobs)

        async def one(path: Path) -> None:
            async with gate:
                nb = nbformat.read(path, as_version=4)
                resources = {"metadata": {"path": str(path.parent)}}
                client = nbclient.NotebookClient(nb, kernel_name=KERNEL, resources=resources)
                await client.async_execute()
                nbformat.write(nb, out / path.name)

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


def run_ours(paths: list[Path], out: Path, jobs: int) -> None:
    import trio

    variant = os.environ.get("BENCH_OURS_VARIANT") or ours_variant()
    if variant == "cli -j":
        command = [sys.executable, "-m", "trio_enchannel", "run", *map(str, paths)]
        command += ["-j", str(jobs), "-o", str(out / "{stem}.ipynb")]
        subprocess.run(command, check=True, env=_env(), stdout=DEVNULL, stderr=DEVNULL)
        return

    async def main() -> None:
        limiter = trio.CapacityLimiter(jobs)
        async with trio.open_nursery() as nursery:
            for path in paths:
                nursery.start_soon(one, path, limiter)

    async def one(path: Path, limiter: trio.CapacityLimiter) -> None:
        async with limiter:
            if variant == "api":
                await _ours_api(path, out / path.name)
            else:
                command = [sys.executable, "-m", "trio_enchannel", "run", str(path)]
                command += ["-o", str(out / path.name)]
                await trio.run_process(command, env=_env(), stdout=DEVNULL, stderr=DEVNULL)

    trio.run(main)


async def _ours_api(path: Path, target: Path) -> None:
    import trio

    nbformat = _nbformat()
    package = _ours_package()
    nb = await trio.to_thread.run_sync(lambda: nbformat.read(path, as_version=4))
    nb = await package.execute_notebook(nb, kernel_name=KERNEL, cwd=path.parent)
    try:
        writer: Callable[[Path, Any], None] = importlib.import_module(
            "trio_enchannel._notebook._files"
        ).write_notebook_file
    except (ImportError, AttributeError):

        def writer(target: Path, nb: Any) -> None:
            nbformat.write(nb, target)

    await trio.to_thread.run_sync(writer, target, nb)


RUNNERS: dict[str, Callable[[list[Path], Path, int], None]] = {
    "nbclient sequential": run_nbclient_sequential,
    "nbclient gathered": run_nbclient_gathered,
    "papermill sequential": run_papermill,
    "trio-enchannel": run_ours,
}


DEVNULL = subprocess.DEVNULL


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def worker(runner: str, out: str, jobs: str, paths: list[str]) -> None:
    """The ``--worker`` entry point: run, then print the wall time and own peak as JSON."""
    start = time.perf_counter()
    RUNNERS[runner]([Path(p) for p in paths], Path(out), int(jobs))
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "self_peak_mib": peak_kib / 1024}))


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
    result["tree_peak_mib"] = peak_tree / 2**20
    # The sampled peak may miss a short one; the worker's own ru_maxrss cannot.
    result["runner_peak_mib"] = max(peak_runner / 2**20, result["self_peak_mib"])
    missing = [p.name for p in paths if not (out / p.name).is_file()]
    if missing:
        raise RuntimeError(f"{runner} wrote no {', '.join(missing)}")
    return dict(result)


def _spread(values: list[float], fmt: str = "{:.1f}") -> str:
    if len(values) == 1:
        return fmt.format(values[0])
    low, high = fmt.format(min(values)), fmt.format(max(values))
    return f"{fmt.format(statistics.median(values))} ({low}-{high})"


def run(directory: Path, variant: str) -> dict[str, Any]:
    os.environ["BENCH_OURS_VARIANT"] = variant  # the workers need not find it out again
    small, large = write_inputs(directory)
    runners = list(RUNNERS)
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
            ["nbclient", "trio-enchannel"]
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
    base = statistics.median(s["seconds"] for s in small["nbclient sequential"])
    gathered = statistics.median(s["seconds"] for s in small["nbclient gathered"])
    rows: list[list[object]] = []
    for name, samples in small.items():
        at_once = 1 if "sequential" in name else JOBS
        seconds = [s["seconds"] for s in samples]
        median = statistics.median(seconds)
        rows.append(
            [
                name + (f" ({variant}, {JOBS} at once)" if name == "trio-enchannel" else ""),
                _spread(seconds),
                f"{base / median:.2f}x",
                f"{gathered / median:.2f}x",
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
    large: dict[str, list[dict[str, float]]] = results["large"]
    large_rows = [
        [
            name,
            _spread([s["seconds"] for s in samples]),
            _spread([s["runner_peak_mib"] for s in samples], "{:.0f}"),
            _spread([s["tree_peak_mib"] for s in samples], "{:.0f}"),
        ]
        for name, samples in large.items()
    ]
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


def main() -> None:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    variant = ours_variant()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-notebooks-") as tmp:
        results = run(Path(tmp), variant)
    text = (
        f"{stamp}; {machine()}; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after\n\n{report(results, variant)}"
    )
    print(text)
    if QUICK:
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
