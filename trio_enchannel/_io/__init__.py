"""Layer 2, I/O primitives: the ZeroMQ adapter for Trio, bounded inboxes, the overflow
policy and buffer options, fan-out to subscribers, per-channel counters, statistics and
reject handling (shared by the channels and the kernel side), reading connection files off
the event loop, and the errors that are trio's ``BrokenResourceError`` too.

May import: the wire layer (:mod:`.._wire`), the base modules (``_errors``, ``_validate``,
``_util``), trio and pyzmq.
"""
