"""Remote kernels: Jupyter Server and Enterprise Gateway, over websockets and REST.

Needs the ``remote`` extra (``trio-websocket`` and ``httpx``). The public names are exported
(lazily) by :mod:`trio_enchannel`, which lists them; this package exports nothing itself.
"""
