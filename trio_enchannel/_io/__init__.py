"""Layer 2, I/O primitives: the ZeroMQ adapter for Trio (the only module that imports
pyzmq), bounded inboxes, the overflow policy, fan-out to subscribers, connection files on disk
(read off the event loop, written owner-only and atomically).

May import: ``_wire`` and the base modules (``_errors``, ``_validate``, ``_util``).
Beyond the standard library: trio, pyzmq, attrs, outcome, jupyter_core.
"""
