"""Layer 2, I/O primitives: the ZeroMQ adapter for Trio, bounded inboxes, the overflow
policy, fan-out to subscribers, reading connection files off the event loop, and the errors
that are trio's ``BrokenResourceError`` too.

May import: the wire layer (:mod:`.._wire`), the base modules (``_errors``, ``_validate``,
``_util``), trio and pyzmq.
"""
