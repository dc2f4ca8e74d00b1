"""Layer 1, the wire: the Jupyter messaging protocol as data, with no I/O.

Messages and headers, the session codec and HMAC signing, connection information, the
websocket frame format of Jupyter Server, the notebook output model.

May import: the standard library, attrs, optional fast JSON (orjson), and
:mod:`trio_enchannel._errors`, :mod:`trio_enchannel._validate`, :mod:`trio_enchannel._util`.
Never trio or zmq: everything here is testable without a socket or an event loop.
"""
