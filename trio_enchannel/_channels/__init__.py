"""Layer 3, channels: the transport-neutral channel core and the four ZeroMQ channels
(shell, control, stdin, iopub) plus the heartbeat, opened by :func:`open_channels`.

May import: the I/O and wire layers and the base modules.
"""
