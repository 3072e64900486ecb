"""A minimal keep-alive HTTP/1.1 receiver for benchmarks: counts requests, optionally timestamps them, can hang.

Run it in its own process: `python bench/sink.py --port 0` prints the port it listens on (one line) and serves
until SIGTERM/SIGINT. It is a raw asyncio Protocol with the httptools parser (uvloop when installed), so that it is
not the bottleneck: it answers well over 20,000 requests/s on one core.

Paths:
- any path: answered `200` with a 2-byte body and counted (`ok`);
- a path starting with `/hang` (or every path with `--mode hang`): never answered; the connection is held until
  the client gives up (its deadline), and counted as `hung`;
- `GET /_sink/stats`: JSON `{"ok", "hung", "first_at", "last_at", "recording", "arrivals", "ok_by_path"}` (times from
  `time.monotonic()`, which on Linux is one clock shared by every process on the machine);
- `POST /_sink/reset`: zero the counters and drop recorded arrivals;
- `POST /_sink/record/on` and `/_sink/record/off`: start/stop timestamping each answered request with its body;
- `GET /_sink/arrivals`: JSON list of `[arrival_time, id]`, the `id` read from the body (JSON or form), or null.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import parse_qs

import httptools

OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
OK_RESPONSE_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
BAD_REQUEST_RESPONSE = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
CONTROL_PREFIX = b"/_sink/"
HANG_PREFIX = b"/hang"
MAX_RECORDED_ARRIVALS = 5_000_000


@dataclass
class SinkState:
    """Counters shared by every connection of one sink process."""

    hang_everything: bool = False
    ok_count: int = 0
    hung_count: int = 0
    first_at: float | None = None
    last_at: float | None = None
    recording: bool = False
    arrivals: list[tuple[float, bytes]] = field(default_factory=list)
    ok_by_path: dict[bytes, int] = field(default_factory=dict)

    def reset(self) -> None:
        """Forget every count and recorded arrival."""
        self.ok_count = 0
        self.hung_count = 0
        self.first_at = None
        self.last_at = None
        self.arrivals = []
        self.ok_by_path = {}

    def stats(self) -> dict[str, object]:
        """The counters as a JSON-ready mapping."""
        return {
            "ok": self.ok_count,
            "hung": self.hung_count,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "recording": self.recording,
            "arrivals": len(self.arrivals),
            "ok_by_path": {path.decode(errors="replace"): count for path, count in self.ok_by_path.items()},
        }


def payload_id(body: bytes) -> object:
    """The `id` of a Hookline payload body (JSON or form-encoded), or None."""
    if not body:
        return None
    try:
        if body[:1] == b"{":
            return json.loads(body).get("id")
        values = parse_qs(body.decode("utf-8", "replace")).get("id")
        if not values:
            return None
        return int(values[0]) if values[0].isdigit() else values[0]
    except ValueError:
        return None


def _json_response(document: object) -> bytes:
    body = json.dumps(document).encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


class SinkProtocol(asyncio.Protocol):
    """One client connection: parse requests with httptools, answer, count."""

    __slots__ = ("_body_parts", "_hanging", "_parser", "_state", "_transport", "_url")

    def __init__(self, state: SinkState) -> None:
        self._state = state
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body_parts: list[bytes] = []
        self._hanging = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport to answer on."""
        # uvloop's transports implement asyncio.Transport without subclassing it, so no isinstance check here.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        """Nothing to clean up: a hanging request simply ends with its connection."""
        self._transport = None

    def data_received(self, data: bytes) -> None:
        """Feed bytes to the parser; a malformed request closes the connection."""
        if self._hanging:
            return  # a held connection answers nothing more
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.write(BAD_REQUEST_RESPONSE)
                self._transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        """A new request starts."""
        self._url = b""
        self._body_parts = []

    def on_url(self, url: bytes) -> None:
        """Accumulate the request target."""
        self._url += url

    def on_body(self, body: bytes) -> None:
        """Keep the body only while recording arrivals."""
        if self._state.recording:
            self._body_parts.append(body)

    def on_message_complete(self) -> None:
        """Answer (or hold) the request that just ended."""
        transport = self._transport
        if transport is None:
            return
        state = self._state
        url = self._url
        if url.startswith(CONTROL_PREFIX):
            transport.write(self._control(url))
            return
        if state.hang_everything or url.startswith(HANG_PREFIX):
            state.hung_count += 1
            self._hanging = True
            return
        now = time.monotonic()
        state.ok_count += 1
        by_path = state.ok_by_path
        by_path[url] = by_path.get(url, 0) + 1
        if state.first_at is None:
            state.first_at = now
        state.last_at = now
        if state.recording and len(state.arrivals) < MAX_RECORDED_ARRIVALS:
            state.arrivals.append((now, b"".join(self._body_parts)))
        if self._parser.should_keep_alive():
            transport.write(OK_RESPONSE)
        else:
            transport.write(OK_RESPONSE_CLOSE)
            transport.close()

    def _control(self, url: bytes) -> bytes:
        state = self._state
        path = url.split(b"?", 1)[0]
        if path == b"/_sink/stats":
            return _json_response(state.stats())
        if path == b"/_sink/reset":
            state.reset()
            return _json_response(state.stats())
        if path == b"/_sink/record/on":
            state.recording = True
            return _json_response(state.stats())
        if path == b"/_sink/record/off":
            state.recording = False
            return _json_response(state.stats())
        if path == b"/_sink/arrivals":
            return _json_response([[arrived_at, payload_id(body)] for arrived_at, body in state.arrivals])
        return _json_response({"error": "unknown control path"})


def install_uvloop() -> bool:
    """Use uvloop's event loop policy when uvloop is installed; whether it is."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


async def serve(host: str, port: int, hang_everything: bool, backlog: int) -> None:
    """Serve until SIGTERM or SIGINT; print the bound port on stdout first."""
    state = SinkState(hang_everything=hang_everything)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SinkProtocol(state), host, port, backlog=backlog, reuse_address=True)
    bound_port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"{bound_port}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Command line: `python bench/sink.py --port 0 [--mode ok|hang]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    parser.add_argument("--mode", choices=("ok", "hang"), default="ok", help="hang: never answer any request")
    parser.add_argument("--backlog", type=int, default=2048)
    args = parser.parse_args(argv)
    install_uvloop()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.mode == "hang", args.backlog))


if __name__ == "__main__":
    main()
