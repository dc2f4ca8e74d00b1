"""Layer 2, I/O primitives: the ZeroMQ adapter for Trio (the only module that imports
pyzmq), bounded inboxes, the overflow policy and buffer options, fan-out to subscribers,
per-channel counters, statistics and reject handling (shared by the channels and the kernel
side), connection files on disk (read off the event loop, written owner-only and
atomically), and the errors that are trio's ``BrokenResourceError`` too.

May import: ``_wire`` and the base modules (``_errors``, ``_validate``, ``_util``).
Beyond the standard library: trio, pyzmq, attrs, outcome, jupyter_core.
"""
