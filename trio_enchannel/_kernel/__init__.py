"""The kernel side: channels for writing a kernel (ROUTER/PUB sockets, replies, publishing).

Sits on the I/O and wire layers beside the client; may import: I/O, wire, the base modules.
"""
