"""The package namespaces: public names are imported lazily, and importing is cheap."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
import textwrap
from types import ModuleType

import pytest

import trio_enchannel
import trio_enchannel.testing

PUBLIC_MODULES = ["trio_enchannel", "trio_enchannel.testing", "trio_enchannel._remote"]

# Resolving every public name imports the remote names too: they need the remote extra.
needs_remote = pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ("trio_websocket", "httpx")),
    reason="the remote extra",
)
EVERY_NAME_MODULES = [
    pytest.param("trio_enchannel", marks=needs_remote),
    "trio_enchannel.testing",
    pytest.param("trio_enchannel._remote", marks=needs_remote),
]


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
    remote = importlib.import_module("trio_enchannel._remote")
    assert trio_enchannel.RemoteKernel is remote.RemoteKernel
    assert (
        trio_enchannel.testing.FakeKernel
        is importlib.import_module("trio_enchannel.testing._fake_kernel").FakeKernel
    )


@pytest.mark.parametrize("module_name", EVERY_NAME_MODULES[:2])
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
