"""Layer 4, the client: :class:`KernelClient`, the dispatcher that routes replies and IOPub
to the request waiting for them, executions, comms and result objects.

May import: channels (through the declared interfaces), I/O, wire and the base modules.
"""
