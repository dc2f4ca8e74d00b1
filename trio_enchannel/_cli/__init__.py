"""Layer 8, the command line (``trio-enchannel``): the top of the stack; nothing imports it.

May import: every layer below.

Inside, one job per module, each importing only those listed before it: ``_common`` (exit
statuses, :class:`CommandError`, how the command ends; no Trio), ``_render`` (showing outputs
in a terminal), ``_parser`` (the command line), ``_jobs`` (the job runner: one Trio program
with Ctrl-C handling), ``_info`` (``kernels`` and ``info``), ``_notebook`` (``run`` for
notebooks), ``_run`` (``run`` for code and files), ``_main`` (the entry point).
"""

from ._main import main as main

__all__ = ["main"]
