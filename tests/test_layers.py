"""The package's layers: every import points down, no import cycles, no trio or pyzmq in the wire
layer and the base modules, and each package docstring says what it may import.

This reads the source with :mod:`ast` (nothing is imported), so it sees every import: module
level, under ``if TYPE_CHECKING:``, and inside functions.

The layer table below is the rule; ``docs/design.rst`` and each package's docstring state it
in words and must agree with it.
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

PACKAGE = "trio_enchannel"

# -- the rule -------------------------------------------------------------------------------

# The layers from the bottom up: each may import every layer before it (and its own modules,
# as long as they form no cycle). "base" is the three root modules _errors, _validate, _util;
# "api" is the package itself (trio_enchannel/__init__.py, the public names).
STACK = (
    "base",
    "_wire",
    "_io",
    "_channels",
    "_client",
    "_remote",
    "_launch",
    "_notebook",
    "api",
    "_cli",
)
BASE_MODULES = frozenset({"_errors", "_validate", "_util"})

# layer -> the other layers it may import.
MAY_IMPORT: dict[str, frozenset[str]] = {
    layer: frozenset(STACK[:index]) for index, layer in enumerate(STACK)
}
# The kernel side sits on the wire and I/O layers, beside the channels and the client.
MAY_IMPORT["_kernel"] = frozenset({"base", "_wire", "_io"})
# The testing kit (the fake kernel, the pytest plugin) may use anything but the CLI.
MAY_IMPORT["testing"] = frozenset(set(STACK) - {"_cli"} | {"_kernel"})
# The public API re-exports the kernel side too (and package __init__ files are exempt anyway).
MAY_IMPORT["api"] |= {"_kernel"}

# The wire layer and the base modules are sans-I/O, testable without an event loop or a
# socket: never trio, never pyzmq. Beyond the standard library they import only these.
THIRD_PARTY_ALLOWED: dict[str, frozenset[str]] = {
    "base": frozenset({"exceptiongroup"}),  # the backport of a built-in on Python 3.10
    "_wire": frozenset({"attrs", "orjson"}),  # orjson: optional, the "fast" extra
}
# pyzmq is adapted to Trio in exactly one module (docs/design.rst says so).
ONLY_ZMQ_MODULE = f"{PACKAGE}._io._zmq"

# Known violations that other work on issue #14 removes: a listed violation that no longer
# exists fails the test (so the list cannot go stale). Keys as the failure messages print them.
# Empty since the merge of the channel core, the client interfaces and the CLI split.
KNOWN_VIOLATIONS_ISSUE_14: frozenset[str] = frozenset()


# -- reading the imports ----------------------------------------------------------------------


@attrs.frozen
class Import:
    importer: str  # dotted module name
    imported: str  # dotted module name (a module of this package) or a top-level package
    path: Path
    line: int

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def package_root() -> Path:
    spec = importlib.util.find_spec(PACKAGE)  # does not import the package
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent


def module_name(root: Path, path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def relative(path: Path) -> Path:
    """``path`` relative to the working directory where it can be (shorter messages)."""
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def is_package_init(name: str, modules: dict[str, Path]) -> bool:
    return modules[name].name == "__init__.py"


def find_modules() -> dict[str, Path]:
    root = package_root()
    return {module_name(root, path): path for path in sorted(root.rglob("*.py"))}


def read_imports(modules: dict[str, Path]) -> Iterator[Import]:
    """Every import of every module: package modules by full name, others by top-level name."""
    for name, path in modules.items():
        shown = relative(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    source = ".".join([*base, node.module] if node.module else base)
                else:
                    source = node.module or ""
                # "from . import _x" imports the module _x; "from ._x import name" the module _x.
                submodules = [f"{source}.{alias.name}" for alias in node.names]
                targets = [m for m in submodules if m in modules] or [source]
            else:
                continue
            for target in targets:
                if target == PACKAGE or target.startswith(PACKAGE + "."):
                    while target not in modules:  # "import trio_enchannel.x.y" -> nearest module
                        target = target.rpartition(".")[0]
                else:
                    target = target.partition(".")[0]
                yield Import(name, target, shown, node.lineno)


def layer_of(name: str) -> str:
    parts = name.split(".")
    if len(parts) == 1:
        return "api"
    if parts[1] in BASE_MODULES:
        return "base"
    if parts[1] == "__main__":
        return "_cli"  # ``python -m trio_enchannel`` is the command line
    return parts[1]


def short(name: str) -> str:
    return name.removeprefix(PACKAGE + ".") if name != PACKAGE else PACKAGE


# -- the checks -------------------------------------------------------------------------------


def direction_violations(modules: dict[str, Path]) -> dict[str, list[Import]]:
    found: dict[str, list[Import]] = {}
    for imp in read_imports(modules):
        if imp.imported not in modules or is_package_init(imp.importer, modules):
            continue
        source, target = layer_of(imp.importer), layer_of(imp.imported)
        if source != target and target not in MAY_IMPORT[source]:
            found.setdefault(f"{short(imp.importer)} -> {short(imp.imported)}", []).append(imp)
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, dict[str, Import]]:
    """importer -> imported -> the first import statement, between non-__init__ modules."""
    graph: dict[str, dict[str, Import]] = {
        name: {} for name in modules if not is_package_init(name, modules)
    }
    for imp in read_imports(modules):
        if imp.importer in graph and imp.imported in graph and imp.imported != imp.importer:
            graph[imp.importer].setdefault(imp.imported, imp)
    return graph


def strongly_connected(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one module (the import cycles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def one_cycle(graph: dict[str, dict[str, Import]], members: list[str]) -> list[str]:
    """A shortest import path from the first member back to itself, within the component."""
    start = members[0]
    paths: dict[str, list[str]] = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for succ in sorted(graph[node]):
            if succ == start:
                return [*paths[node], start]
            if succ in members and succ not in paths:
                paths[succ] = [*paths[node], succ]
                queue.append(succ)
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover


def cycle_violations(modules: dict[str, Path]) -> dict[str, list[str]]:
    graph = import_graph(modules)
    found: dict[str, list[str]] = {}
    for members in strongly_connected(graph):
        cycle = one_cycle(graph, members)
        lines = [" -> ".join(short(m) for m in cycle)]
        lines += [
            f"{graph[a][b].where()}: {short(a)} imports {short(b)}"
            for a, b in itertools.pairwise(cycle)
        ]
        found["cycle: " + ", ".join(short(m) for m in members)] = lines
    return found


def third_party_violations(modules: dict[str, Path]) -> dict[str, list[Import]]:
    found: dict[str, list[Import]] = {}
    for imp in read_imports(modules):
        if imp.imported in modules or imp.imported in sys.stdlib_module_names:
            continue
        allowed = THIRD_PARTY_ALLOWED.get(layer_of(imp.importer))
        if (allowed is not None and imp.imported not in allowed) or (
            imp.imported == "zmq" and imp.importer != ONLY_ZMQ_MODULE
        ):
            found.setdefault(f"{short(imp.importer)} imports {imp.imported}", []).append(imp)
    return found


def check(kind: str, found: dict[str, list[str]], explain: str) -> None:
    """Fail on violations not in the allow-list, and on allow-listed ones of ``kind`` that are
    gone."""
    new = {key: lines for key, lines in found.items() if key not in KNOWN_VIOLATIONS_ISSUE_14}
    listed = {key for key in KNOWN_VIOLATIONS_ISSUE_14 if _kind(key) == kind}
    gone = sorted(listed - set(found))
    message: list[str] = []
    if new:
        message.append(explain)
        for key, lines in sorted(new.items()):
            message.append(f"  {key}")
            message.extend(f"      {line}" for line in lines)
    if gone:
        message.append(
            "No longer found, so remove from KNOWN_VIOLATIONS_ISSUE_14 in tests/test_layers.py: "
            + "; ".join(gone)
        )
    if message:
        pytest.fail("\n".join(message), pytrace=False)


def _kind(key: str) -> str:
    if key.startswith("cycle: "):
        return "cycle"
    if " imports " in key:
        return "third-party"
    return "direction"


def _table() -> str:
    return "\n".join(
        f"      {layer:<10} may import: {', '.join(sorted(MAY_IMPORT[layer], key=_rank)) or '-'}"
        for layer in sorted(MAY_IMPORT, key=_rank)
    )


def _rank(layer: str) -> tuple[int, str]:
    if layer in STACK:
        return STACK.index(layer), layer
    # the side layers, after the layer they sit on
    return STACK.index({"_kernel": "_io", "testing": "_notebook"}[layer]), layer


# -- the tests --------------------------------------------------------------------------------


def test_the_layer_table_names_every_package() -> None:
    layers = {layer_of(name) for name in find_modules()}
    assert layers <= set(MAY_IMPORT), f"not in the layer table: {sorted(layers - set(MAY_IMPORT))}"
    assert set(MAY_IMPORT) <= layers, f"no such layer: {sorted(set(MAY_IMPORT) - layers)}"


def test_imports_point_down() -> None:
    found = direction_violations(find_modules())
    check(
        "direction",
        {key: [f"{imp.where()}" for imp in imps] for key, imps in found.items()},
        "Imports that point up or sideways between layers (package __init__ files are exempt);"
        f" the layers and what each may import:\n{_table()}\n  Violations:",
    )


def test_no_import_cycles() -> None:
    check(
        "cycle",
        cycle_violations(find_modules()),
        "Import cycles between modules (all imports count: TYPE_CHECKING and function-level):",
    )


def test_wire_and_base_import_neither_trio_nor_zmq() -> None:
    check(
        "third-party",
        {
            key: [imp.where() for imp in imps]
            for key, imps in third_party_violations(find_modules()).items()
        },
        "The wire layer and the base modules (_errors, _validate, _util) import neither trio nor"
        " pyzmq; beyond the standard library, only: "
        + "; ".join(
            f"{layer}: {', '.join(sorted(names))}" for layer, names in THIRD_PARTY_ALLOWED.items()
        )
        + f". And only {short(ONLY_ZMQ_MODULE)} imports pyzmq. Violations:",
    )


def test_each_package_docstring_says_what_it_may_import() -> None:
    # "May import: ``_io``, ``_wire`` and the base modules (``_errors``, ...)." up to the next
    # line that starts "Beyond" (third-party packages) or a blank line.
    names = {f"``{layer}``": layer for layer in MAY_IMPORT} | {f"``{PACKAGE}``": "api"}
    names |= {f"``{module}``": "base" for module in BASE_MODULES}
    wrong: list[str] = []
    modules = find_modules()
    for name, path in modules.items():
        layer = layer_of(name)
        if path.name != "__init__.py" or layer == "api":
            continue
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        _, found, rest = docstring.partition("May import:")
        paragraph = re.split(r"\n\s*\n|\nBeyond", rest)[0]
        said = {names[token] for token in re.findall(r"``[\w.]+``", paragraph) if token in names}
        if not found or said != MAY_IMPORT[layer]:
            says = ", ".join(sorted(said, key=_rank)) or "nothing"
            table = ", ".join(sorted(MAY_IMPORT[layer], key=_rank))
            wrong.append(f"  {relative(path)}: says {says}; the table: {table}")
    if wrong:
        pytest.fail(
            "Package docstrings whose 'May import:' paragraph (layers as ``_name``, the base"
            " modules as ``_errors``...) differs from MAY_IMPORT in tests/test_layers.py:\n"
            + "\n".join(wrong),
            pytrace=False,
        )
