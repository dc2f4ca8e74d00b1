"""Layer 8, the command line (``trio-enchannel``): the top of the stack; nothing imports it.

May import: every layer below.
"""

from ._main import main as main

__all__ = ["main"]
