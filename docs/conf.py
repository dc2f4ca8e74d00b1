"""Sphinx configuration for trio-enchannel (built with -W: warnings are errors)."""

from __future__ import annotations

project = "trio-enchannel"
author = "trio-enchannel developers"
copyright = "2026, trio-enchannel developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
nitpicky = False

try:
    import furo  # noqa: F401

    html_theme = "furo"
except ImportError:  # pragma: no cover
    html_theme = "alabaster"
html_title = "trio-enchannel"
exclude_patterns = ["_build"]
