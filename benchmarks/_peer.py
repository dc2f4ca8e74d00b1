"""A raw-pyzmq kernel stand-in for the channel benchmarks (runs as its own process).

    python -m benchmarks._peer      # reads one JSON line on stdin, writes one on stdout

The parent writes ``{"key": ..., "signature_scheme": "hmac-sha256"}`` on stdin; the peer binds
shell/control/stdin (ROUTER), iopub (PUB) and hb (REP) on loopback with system-chosen ports and
answers with the connection info as one JSON line. It serves until its stdin closes.

What it does, with plain pyzmq, ``hmac`` and ``json`` (nothing from trio-enchannel, so the
client under test and the reference client face exactly the same peer):

* every shell/control request is verified and echoed: ``X_request`` gets an ``X_reply`` whose
  parent is the request and whose content, metadata and buffers are the request's (buffers
  are echoed without copying);
* ``bench_sync_request`` (content ``{"token": ...}``) additionally publishes a
  ``bench_probe`` with the same content on iopub *before* replying: a client repeats it until
  a probe arrives, which proves its subscription is live (the slow-joiner problem);
* ``bench_flood_request`` (content ``{"n": N}``) queues N distinct, signed ~600-byte
  ``stream`` messages on iopub (the PUB socket has no high-water mark, so nothing is dropped)
  and replies once all of them are queued;
* hb echoes whatever it receives.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import re
import sys
import uuid
from typing import Any

import zmq

DELIMITER = b"<IDS|MSG>"
_SNDMORE = int(zmq.SNDMORE)
_RCVMORE = int(zmq.RCVMORE)

#: Total size in bytes of one flood message on the wire (topic and signature included).
FLOOD_MESSAGE_SIZE = 600

_SESSION = uuid.uuid4().hex
_HEADER = (
    b'{"msg_id":"%s","msg_type":"%s","username":"peer","session":"%s","date":"%s","version":"5.5"}'
)
# The peer answers any client, whatever its JSON spacing; a regex is enough to find the type.
_MSG_TYPE = re.compile(rb'"msg_type"\s*:\s*"([^"\\]+)"')
_TOPIC = f"kernel.{_SESSION}.stream".encode()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")[:-6] + "Z"


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class Peer:
    """The kernel stand-in's state: sockets, key, counters and the cached flood messages."""

    def __init__(self, key: bytes, scheme: str) -> None:
        self.key = key
        self.digest = scheme.removeprefix("hmac-")
        hashlib.new(self.digest)  # fail early on an unknown scheme
        self.counter = 0
        self.rejected = 0
        self.flood: list[list[bytes]] = []
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.shell = self._bind(ctx, zmq.ROUTER)
        self.control = self._bind(ctx, zmq.ROUTER)
        self.stdin = self._bind(ctx, zmq.ROUTER)
        self.iopub = self._bind(ctx, zmq.PUB, sndhwm=0)
        self.hb = self._bind(ctx, zmq.REP)

    @staticmethod
    def _bind(ctx: zmq.Context[zmq.Socket[bytes]], kind: int, **opts: int) -> zmq.Socket[bytes]:
        sock = ctx.socket(kind)
        sock.linger = 0
        for name, value in opts.items():
            sock.setsockopt(getattr(zmq, name.upper()), value)
        sock.bind("tcp://127.0.0.1:0")
        return sock

    @staticmethod
    def _port(sock: zmq.Socket[bytes]) -> int:
        endpoint = sock.getsockopt(zmq.LAST_ENDPOINT)
        assert isinstance(endpoint, bytes)
        return int(endpoint.rsplit(b":", 1)[1])

    def connection_info(self, key: str, scheme: str) -> dict[str, Any]:
        return {
            "ip": "127.0.0.1",
            "transport": "tcp",
            "shell_port": self._port(self.shell),
            "control_port": self._port(self.control),
            "stdin_port": self._port(self.stdin),
            "iopub_port": self._port(self.iopub),
            "hb_port": self._port(self.hb),
            "key": key,
            "signature_scheme": scheme,
            "kernel_name": "bench-peer",
        }

    def sign(self, header: bytes, parent: bytes, metadata: bytes, content: bytes) -> bytes:
        # One-shot C HMAC over the joined parts: a fraction of hmac.new + update.
        joined = b"".join((header, parent, metadata, content))
        return hmac.digest(self.key, joined, self.digest).hex().encode()

    def header(self, msg_type: str) -> bytes:
        self.counter += 1
        return _HEADER % (
            f"{_SESSION}_{self.counter}".encode(),
            msg_type.encode(),
            _SESSION.encode(),
            _now().encode(),
        )

    def build_flood(self, n: int) -> None:
        """Pre-build n distinct signed ``stream`` messages of FLOOD_MESSAGE_SIZE bytes."""
        parent = self.header("execute_request")
        metadata = b"{}"
        base = len(_TOPIC) + len(DELIMITER) + 64 + len(parent) + len(metadata)
        for _ in range(len(self.flood), n):
            header = self.header("stream")
            room = FLOOD_MESSAGE_SIZE - base - len(header) - len(b'{"name":"stdout","text":""}')
            content = _dumps({"name": "stdout", "text": "x" * max(room, 1)})
            sig = self.sign(header, parent, metadata, content)
            self.flood.append([_TOPIC, DELIMITER, sig, header, parent, metadata, content])

    def handle(self, sock: zmq.Socket[bytes]) -> None:
        # Small frames are received as bytes; buffers (after content) as zero-copy frames, so
        # the 64 MiB echo costs the peer no copy. Plain-int flags: enum arithmetic is slow.
        recv = sock.recv
        frames: list[bytes] = []
        split = -1
        while True:
            frame = recv(0, copy=True)
            frames.append(frame)
            if not sock.getsockopt(_RCVMORE):
                break
            if split < 0 and frame == DELIMITER:
                split = len(frames) - 1
            if split >= 0 and len(frames) == split + 6:
                break
        buffers: list[zmq.Frame] = []
        while sock.getsockopt(_RCVMORE):
            buffers.append(recv(copy=False))
        if split < 0 or len(frames) < split + 6:
            self.rejected += 1
            return
        idents = frames[:split]
        sig, header, parent, metadata, content = frames[split + 1 : split + 6]
        if not hmac.compare_digest(sig, self.sign(header, parent, metadata, content)):
            self.rejected += 1
            return
        found = _MSG_TYPE.search(header)
        if found is None:
            self.rejected += 1
            return
        msg_type = found.group(1).decode()
        if msg_type == "bench_sync_request":
            probe = self.header("bench_probe")
            self.iopub.send_multipart(
                [
                    b"probe",
                    DELIMITER,
                    self.sign(probe, header, b"{}", content),
                    probe,
                    header,
                    b"{}",
                    content,
                ]
            )
        elif msg_type == "bench_flood_request":
            n = int(json.loads(content)["n"])
            self.build_flood(n)
            send = self.iopub.send
            for message in self.flood[:n]:
                for part in message[:-1]:
                    send(part, _SNDMORE)
                send(message[-1])
        reply = self.header(msg_type.removesuffix("_request") + "_reply")
        out: list[bytes | zmq.Frame] = [
            *idents,
            DELIMITER,
            self.sign(reply, header, metadata, content),
            reply,
            header,
            metadata,
            content,
            *buffers,
        ]
        for out_frame in out[:-1]:
            sock.send(out_frame, _SNDMORE)
        sock.send(out[-1])

    def serve(self) -> None:
        poller = zmq.Poller()
        for sock in (self.shell, self.control, self.hb):
            poller.register(sock, zmq.POLLIN)
        poller.register(sys.stdin.fileno(), zmq.POLLIN)
        while True:
            for sock, _ in poller.poll():
                if sock is self.hb:
                    self.hb.send_multipart(self.hb.recv_multipart())
                elif isinstance(sock, zmq.Socket):
                    self.handle(sock)
                elif not sys.stdin.readline():  # the parent closed our stdin: stop
                    return


def main() -> None:
    config = json.loads(sys.stdin.readline())
    key: str = config["key"]
    scheme: str = config.get("signature_scheme", "hmac-sha256")
    peer = Peer(key.encode(), scheme)
    print(json.dumps(peer.connection_info(key, scheme)), flush=True)
    try:
        peer.serve()
    finally:
        if peer.rejected:
            print(f"bench peer: rejected {peer.rejected} message(s)", file=sys.stderr)
        zmq.Context.instance().destroy(linger=0)


if __name__ == "__main__":
    main()
