"""Layer 6, the launcher: kernel specs, starting and stopping kernel processes, and
:func:`open_kernel` (a launched kernel with a client).

May import: the client, channels, I/O, wire and the base modules.
"""
