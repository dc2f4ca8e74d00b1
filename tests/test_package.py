"""The package namespaces: public names are imported lazily, and importing is cheap."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pickle
import subprocess
import sys
import textwrap
import typing
from pathlib import Path
from types import FunctionType, ModuleType

import pytest

import trio_enchannel
import trio_enchannel.testing

PUBLIC_MODULES = ["trio_enchannel", "trio_enchannel.testing"]

# Resolving every public name imports the remote names too: they need the remote extra.
needs_remote = pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ("trio_websocket", "httpx")),
    reason="the remote extra",
)
EVERY_NAME_MODULES = [pytest.param("trio_enchannel", marks=needs_remote), "trio_enchannel.testing"]


def _run_fresh(code: str) -> str:
    """Run ``code`` in a fresh interpreter and return its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_importing_the_pytest_plugin_imports_neither_trio_nor_zmq() -> None:
    # Every pytest run in an environment with trio-enchannel installed imports the plugin.
    out = _run_fresh(
        """
        import sys
        import trio_enchannel.testing._plugin
        import trio_enchannel, trio_enchannel.testing
        heavy = ("trio", "zmq", "attrs", "trio_enchannel._channels", "trio_enchannel._wire")
        print(sorted(name for name in heavy if name in sys.modules))
        """
    )
    assert out.strip() == "[]"


def test_a_public_name_imports_only_what_it_needs() -> None:
    out = _run_fresh(
        """
        import sys
        from trio_enchannel import Session, open_channels
        print("trio_enchannel._wire._session" in sys.modules)
        print("trio_enchannel._remote._rest" in sys.modules)
        """
    )
    assert out.split() == ["True", "False"]


@pytest.mark.parametrize("module_name", EVERY_NAME_MODULES)
def test_every_public_name_resolves_and_is_listed_by_dir(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names: list[str] = module.__all__
    assert len(set(names)) == len(names)
    listing = dir(module)
    for name in names:
        value = getattr(module, name)
        assert name in listing
        assert vars(module)[name] is value  # cached after the first lookup


@needs_remote
def test_public_names_are_the_objects_their_private_modules_define() -> None:
    assert (
        trio_enchannel.Session is importlib.import_module("trio_enchannel._wire._session").Session
    )
    remote = importlib.import_module("trio_enchannel._remote._kernel")
    assert trio_enchannel.RemoteKernel is remote.RemoteKernel
    assert (
        trio_enchannel.testing.FakeKernel
        is importlib.import_module("trio_enchannel.testing._fake_kernel").FakeKernel
    )


@pytest.mark.parametrize("module_name", EVERY_NAME_MODULES)
def test_star_import_gives_every_public_name(module_name: str) -> None:
    module = importlib.import_module(module_name)
    namespace: dict[str, object] = {}
    exec(f"from {module_name} import *", namespace)
    namespace.pop("__builtins__")
    assert sorted(namespace) == sorted(module.__all__)
    assert all(namespace[name] is getattr(module, name) for name in module.__all__)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_an_unknown_name_raises_attribute_error(module_name: str) -> None:
    module: ModuleType = importlib.import_module(module_name)
    with pytest.raises(AttributeError, match=rf"^module '{module_name}' has no attribute 'nope'$"):
        module.nope  # noqa: B018
    assert not hasattr(module, "nope")
    with pytest.raises(ImportError, match="cannot import name 'nope'"):
        exec(f"from {module_name} import nope", {})


def test_version_is_eager() -> None:
    assert "__version__" in vars(trio_enchannel)
    assert isinstance(trio_enchannel.__version__, str)


def _type_checked_imports(module: ModuleType) -> dict[str, list[str]]:
    """The ``if TYPE_CHECKING:`` re-exports of a package: module -> names, in order."""
    tree = ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))
    blocks = [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    ]
    assert len(blocks) == 1
    imports: dict[str, list[str]] = {}
    for statement in blocks[0].body:
        assert isinstance(statement, ast.ImportFrom), ast.unparse(statement)
        for alias in statement.names:
            # "X as X" is what makes a name public for mypy --strict (no implicit re-export)
            assert alias.asname == alias.name, ast.unparse(statement)
            key = "." * statement.level + (statement.module or "")
            imports.setdefault(key, []).append(alias.name)
    return imports


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_type_checkers_see_exactly_the_exported_names(module_name: str) -> None:
    # _EXPORTS is the list; the TYPE_CHECKING block repeats it for mypy and IDEs, which
    # cannot read a table. Paste the block below when they differ.
    module = importlib.import_module(module_name)
    exports: dict[str, tuple[str, ...]] = module._EXPORTS
    expected = "\n".join(
        f"    from {source} import {name} as {name}"
        for source, names in exports.items()
        for name in names
    )
    seen = _type_checked_imports(module)
    assert {k: sorted(v) for k, v in seen.items()} == {k: sorted(v) for k, v in exports.items()}, (
        f"the TYPE_CHECKING block of {module_name} should be:\n{expected}"
    )
    assert sorted(module.__all__) == sorted(n for names in exports.values() for n in names)


@pytest.mark.parametrize("module_name", EVERY_NAME_MODULES)
def test_public_classes_and_functions_name_their_public_module(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in module.__all__:
        value = getattr(module, name)
        if isinstance(value, (type, FunctionType)):
            assert (value.__module__, value.__qualname__) == (module_name, name)


# Annotations that name something imported for type checkers only (they never resolved).
_UNRESOLVABLE_BEFORE = {"CellOutput", "Kernel"}


@pytest.mark.parametrize("module_name", EVERY_NAME_MODULES)
def test_public_classes_keep_their_type_hints(module_name: str) -> None:
    # get_type_hints looks string annotations up in the module __module__ names: the
    # package, which lacks the private names they use, unless they were evaluated before.
    module = importlib.import_module(module_name)
    failing = set()
    for name in module.__all__:
        value = getattr(module, name)
        if isinstance(value, type):
            try:
                typing.get_type_hints(value)
            except NameError:
                failing.add(name)
    assert failing <= _UNRESOLVABLE_BEFORE


def test_public_values_pickle_by_their_public_name() -> None:
    header = trio_enchannel.Header("id", "kernel_info_request")
    info = trio_enchannel.ConnectionInfo(1, 2, 3, 4, 5, key="k")
    for value in (header, info):
        data = pickle.dumps(value)
        assert b"trio_enchannel._" not in data
        assert pickle.loads(data) == value
