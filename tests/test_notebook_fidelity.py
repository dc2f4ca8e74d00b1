"""The notebook runner's output matches nbclient's, cell by cell, on the same kernel.

Each notebook in ``tests/notebooks`` runs through :func:`trio_enchannel.execute_notebook` and
through nbclient (in a subprocess, on the same ipykernel kernelspec); what legitimately differs
(timestamps, memory addresses, widget model ids, the temporary file names in tracebacks) is
normalised and the notebooks must then be identical. So is how the streams were cut into
messages, which varies from run to run with the kernel's timing.

``update-display-id.ipynb``, ``skip-exceptions-with-cell-tags.ipynb``,
``skip-execution-with-cell-tag.ipynb``, ``clear-output.ipynb`` and
``check-history-in-memory.ipynb`` come from nbclient's (and before it nbconvert's) own test
suite (BSD-3-Clause, outputs removed); ``frontend-protocol.ipynb`` and ``widgets.ipynb`` were
written here.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_enchannel import execute_notebook

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).parent / "notebooks"

_NBCLIENT = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, kernel_name="python3", allow_errors=True, timeout=120,
               resources={"metadata": {"path": sys.argv[3]}}).execute()
nbformat.write(nb, sys.argv[2])
"""

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
_CELL_FILE = re.compile(r"/tmp/ipykernel_\d+/\d+\.py|ipykernel_\d+/\d+\.py")
_WIDGETS = "application/vnd.jupyter.widget-state+json"
_HEX_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")


def normalise(nb: Any) -> Any:
    """A copy of *nb* without what legitimately differs between two runs."""
    ids: dict[str, str] = {}

    def hex_id(match: re.Match[str]) -> str:
        return ids.setdefault(match.group(0), f"ID{len(ids)}")

    def text(value: str) -> str:
        value = _ADDRESS.sub("0xADDRESS", value)
        value = _CELL_FILE.sub("CELL_FILE", value)
        return _HEX_ID.sub(hex_id, value)

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {text(k): walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str):
            return text(value)
        return value

    plain = copy.deepcopy(dict(nb))
    for cell in plain["cells"]:
        timing = cell.get("metadata", {}).get("execution")
        if isinstance(timing, dict):
            cell["metadata"]["execution"] = dict.fromkeys(sorted(timing), "TIME")
        if "outputs" in cell:
            cell["outputs"] = _streams_by_name(cell["outputs"])
    # Number the ids in a canonical order: as the cells show them, then the widget models
    # these refer to (layouts, styles), breadth first.
    walk(plain["cells"])
    widgets = plain["metadata"].get("widgets", {}).get(_WIDGETS, {}).get("state", {})
    seen: set[str] = set()
    while True:
        pending = [key for key in ids if key in widgets and key not in seen]
        if not pending:
            break
        for key in pending:
            seen.add(key)
            walk(widgets[key])
    return walk(nbformat.from_dict(plain))


def _streams_by_name(outputs: list[Any]) -> list[Any]:
    """How a kernel splits its streams into messages, and the order of stdout and stderr
    chunks written close together, depend on timing (for nbclient too): each run of
    consecutive stream outputs becomes one output per stream name, in name order. (That each
    message is one output, as in nbclient, is tested in test_notebook.py.)"""
    result: list[Any] = []
    run: dict[str, str] = {}
    for out in [*outputs, None]:
        if out is not None and out.get("output_type") == "stream":
            name = out.get("name", "")
            run[name] = run.get(name, "") + "".join(out.get("text", ""))
            continue
        result += [
            {"output_type": "stream", "name": name, "text": run[name]} for name in sorted(run)
        ]
        run = {}
        if out is not None:
            result.append(out)
    return result


async def run_nbclient(path: Path, tmp_path: Path) -> Any:
    out = tmp_path / f"nbclient-{path.name}"
    await trio.run_process(
        [sys.executable, "-c", _NBCLIENT, str(path), str(out), str(tmp_path)],
        capture_stdout=True,
        capture_stderr=True,
    )
    return nbformat.read(out, as_version=4)


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
async def test_executed_notebook_matches_nbclient(path: Path, tmp_path: Path) -> None:
    with trio.fail_after(180):
        theirs = await run_nbclient(path, tmp_path)
        nb = nbformat.read(path, as_version=4)
        ours = await execute_notebook(
            nb, kernel_name="python3", allow_errors=True, cell_timeout=120, cwd=tmp_path
        )
    assert ours is nb
    mine, reference = normalise(ours), normalise(theirs)
    assert mine["metadata"] == reference["metadata"]
    assert len(mine["cells"]) == len(reference["cells"])
    for index, (a, b) in enumerate(zip(mine["cells"], reference["cells"], strict=True)):
        assert a == b, f"cell {index} differs"
