"""Layer 3, channels: the transport-neutral channel core and the four ZeroMQ channels
(shell, control, stdin, iopub) plus the heartbeat, opened by :func:`open_channels`.

May import: ``_io``, ``_wire`` and the base modules (``_errors``, ``_validate``, ``_util``).
Beyond the standard library: trio, attrs (pyzmq only through ``_io``).
"""
