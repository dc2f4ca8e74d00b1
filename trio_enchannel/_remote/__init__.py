"""Layer 5, remote kernels: Jupyter Server and Enterprise Gateway, over websockets and REST.

Needs the ``remote`` extra (``trio-websocket`` and ``httpx``). The public names are exported
(lazily) by :mod:`trio_enchannel`, which lists them; this package exports nothing itself.

May import: ``_client``, ``_channels``, ``_io``, ``_wire`` and the base modules (``_errors``,
``_validate``, ``_util``).
Beyond the standard library: trio, attrs, trio-websocket and httpx.
"""
