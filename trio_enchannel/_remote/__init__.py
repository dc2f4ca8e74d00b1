"""Remote kernels: Jupyter Server / Enterprise Gateway over websockets and REST."""

from __future__ import annotations
