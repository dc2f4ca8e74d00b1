"""Layer 8, the command line (``trio-enchannel``): the top of the stack; only
``trio_enchannel.__main__`` imports it.

May import: ``trio_enchannel`` (the public API), ``_notebook``, ``_launch``, ``_remote``,
``_client``, ``_channels``, ``_io``, ``_wire`` and the base modules (``_errors``, ``_validate``,
``_util``).
Beyond the standard library: trio, attrs, jupyter_core, nbformat (imported when used).
"""

from ._main import main as main

__all__ = ["main"]
