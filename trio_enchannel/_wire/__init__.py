"""Layer 1, the wire: the Jupyter messaging protocol as data, with no event loop and no ZeroMQ.

Messages and headers, the session codec and HMAC signing, connection information, the
websocket frame format of Jupyter Server, the notebook output model. Everything here is
testable without an event loop or a ZeroMQ socket; the only I/O is synchronous and small
(:meth:`ConnectionInfo.from_file` reads a file, :meth:`ConnectionInfo.allocate` probes free
TCP ports).

May import: the base modules (``_errors``, ``_validate``, ``_util``).
Beyond the standard library: attrs, and orjson when installed. Never trio or pyzmq.
"""
