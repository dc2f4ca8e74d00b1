"""Layer 4, the client: :class:`KernelClient`, the dispatcher that routes replies and IOPub
to the request waiting for them, executions, comms and result objects.

May import: ``_channels``, ``_io``, ``_wire`` and the base modules (``_errors``, ``_validate``,
``_util``).
Beyond the standard library: trio, attrs.
"""
