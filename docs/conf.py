"""Sphinx configuration for trio-enchannel (built with -n -W: broken references are errors)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import sys
import typing
from typing import Any

project = "trio-enchannel"
author = "trio-enchannel developers"
copyright = "2026, trio-enchannel developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Every cross-reference must resolve: to this package, or to Python's or Trio's docs.
nitpicky = True

# Python's and Trio's names link to their documentation, but the build never fetches their
# inventories (CI and the development machines may have no network): each inventory is a
# small plain-text file in _inventories/ (Sphinx's inventory format version 1: one
# "name type page" line per object, the anchor being the name), listing only the names these
# docs refer to. When the nitpicky build reports "reference target not found: trio.X", add
# trio.X there with the page that documents it (see docs/contributing.rst).
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", "_inventories/python.txt"),
    "trio": ("https://trio.readthedocs.io/en/stable", "_inventories/trio.txt"),
}
intersphinx_timeout = 1
# Private types that public signatures still show (issue 14), until each gets a public name;
# tests/test_docs.py::AWAITING_A_PUBLIC_NAME lists the same ones, for the same reason.
nitpick_ignore: list[tuple[str, str]] = []
# The type variable of the generic DroppingQueue[T] has no page of its own.
nitpick_ignore_regex = [("py:class", r"trio_enchannel\._client\._queue\.T")]

try:
    import furo  # noqa: F401

    html_theme = "furo"
except ImportError:  # pragma: no cover
    html_theme = "alabaster"
html_title = "trio-enchannel"
exclude_patterns = ["_build", "_inventories"]


def _resolve_type_checking_imports(package: str) -> None:
    """Run the ``if TYPE_CHECKING:`` imports of every module of *package*.

    Annotations may name what a module imports only for type checkers (to import lazily or
    to avoid a cycle); ``typing.get_type_hints``, which autodoc and napoleon use, would fail
    on them and show every annotation of the object as unlinked text. After this they resolve
    to the real objects, so a private one shows up as a broken reference (nitpicky fails).
    """
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        try:
            importlib.import_module(info.name)
        except ImportError:  # an optional dependency the docs build does not install
            continue
    for name, module in list(sys.modules.items()):
        if not name.startswith(package + ".") or module.__file__ is None:
            continue
        if hasattr(module, "_EXPORTS"):  # a public package: its names load (and are renamed)
            continue  # on first use, which its TYPE_CHECKING re-exports would bypass
        with open(module.__file__, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in tree.body:
            if isinstance(node, ast.If) and ast.unparse(node.test) in (
                "TYPE_CHECKING",
                "typing.TYPE_CHECKING",
            ):
                for statement in node.body:
                    if isinstance(statement, ast.ImportFrom | ast.Import):
                        code = compile(ast.Module([statement], []), module.__file__, "exec")
                        namespace = dict(vars(module))
                        try:
                            exec(code, namespace)
                        except ImportError:  # a type-checking-only dependency
                            continue
                        for key, value in namespace.items():
                            vars(module).setdefault(key, value)


_resolve_type_checking_imports("trio_enchannel")

for _package in ("trio_enchannel", "trio_enchannel.testing"):  # load (and so rename) every
    _module = importlib.import_module(_package)  # public name before autodoc reads them
    for _name in _module.__all__:
        getattr(_module, _name)
# typing caches subscripted generics (DroppingQueue[Message]) with the module their class had
# when they were first built, before the package renamed it: start from fresh ones.
for _clear in getattr(typing, "_cleanups", []):
    _clear()


def _analyze_public_packages(*packages: str) -> None:
    """Let autodoc find the attribute docs of classes renamed to their package.

    The package renames its public classes (``__module__`` is ``trio_enchannel``, as with
    trio's names), so autodoc looks for ``self.x: T`` followed by a docstring in the package's
    ``__init__.py`` instead of the private module that defines the class. Give the package's
    source analyzer what the private modules' analyzers found for the names it exports.
    """
    from sphinx.pycode import ModuleAnalyzer

    for package in packages:
        module = importlib.import_module(package)
        public = ModuleAnalyzer.for_module(package)
        public.analyze()
        for private_name, names in module._EXPORTS.items():
            private = ModuleAnalyzer.for_module(importlib.util.resolve_name(private_name, package))
            private.analyze()
            for attr in ("attr_docs", "annotations"):
                ours = getattr(public, attr)
                for key, value in getattr(private, attr).items():
                    if key[0].split(".")[0] in names:
                        ours.setdefault(key, value)
            for key, value in private.tagorder.items():
                if key.split(".")[0] in names:
                    public.tagorder.setdefault(key, value)


_analyze_public_packages("trio_enchannel", "trio_enchannel.testing")


def _hide_constructor_types(app: Any, domain: str, objtype: str, contentnode: Any) -> None:
    """A class documented without a signature (``.. autoclass:: Channels()``) is made by the
    library, not by users: do not list its private constructor's parameters either."""
    from sphinx import addnodes

    if domain != "py" or objtype not in ("class", "exception"):
        return
    signature = contentnode.parent[0]
    if any(len(p.children) for p in signature.findall(addnodes.desc_parameterlist)):
        return
    module = signature.get("module")
    fullname = f"{module}.{signature['fullname']}" if module else signature["fullname"]
    document = getattr(app.env, "current_document", None)
    annotations = getattr(document, "autodoc_annotations", None)
    if annotations is None:  # Sphinx < 8.2
        annotations = app.env.temp_data.get("annotations", {})
    annotations.pop(fullname, None)


def setup(app: Any) -> None:
    # Before autodoc merges the recorded type hints into the description (priority 500).
    app.connect("object-description-transform", _hide_constructor_types, priority=400)
