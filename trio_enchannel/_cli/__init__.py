"""Layer 8, the command line (``trio-enchannel``): the top of the stack; only
``trio_enchannel.__main__`` imports it.

May import: ``trio_enchannel`` (the public API), ``_notebook``, ``_launch``, ``_remote``,
``_client``, ``_channels``, ``_io``, ``_wire`` and the base modules (``_errors``, ``_validate``,
``_util``).
Beyond the standard library: trio, attrs, jupyter_core, nbformat (imported when used).

Inside, one job per module, each importing only those listed before it: ``_common`` (exit
statuses, :class:`CommandError`, how the command ends; no Trio), ``_render`` (showing outputs
in a terminal), ``_parser`` (the command line), ``_jobs`` (the job runner: one Trio program
with Ctrl-C handling), ``_info`` (``kernels`` and ``info``), ``_notebook`` (``run`` for
notebooks), ``_run`` (``run`` for code and files), ``_main`` (the entry point).
"""

from ._main import main as main

__all__ = ["main"]
