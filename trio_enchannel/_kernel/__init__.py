"""The kernel side: channels for writing a kernel (ROUTER/PUB sockets, replies, publishing).

It sits on the I/O and wire layers, beside the channels and the client rather than on them;
only the public API and the testing kit (the fake kernel) import it.

May import: ``_io``, ``_wire`` and the base modules (``_errors``, ``_validate``, ``_util``).
Beyond the standard library: trio, attrs (pyzmq only through ``_io``).
"""
