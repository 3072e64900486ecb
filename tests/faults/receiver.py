"""A fast recording webhook receiver for the fault tests: aiohttp.web on its own event loop thread.

tests/support.Receiver (one thread per connection, stdlib parsing) is fine for a handful of requests; the
fault tests send thousands, and need each request's delivery id with the moment it arrived and the moment
its answer was sent, to show what repeated and that nothing ran twice at once.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import uvloop
from aiohttp import web

DELIVERY_ID_HEADER = "X-Hookline-Delivery"
START_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.05
LISTEN_BACKLOG = 1024


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request: its delivery id, when it arrived and when its answer went out (time.monotonic())."""

    delivery_id: int
    arrived_at: float
    answered_at: float


def answer_at_once() -> float:
    """No delay."""
    return 0.0


def answer_slowly(low_seconds: float, high_seconds: float) -> Callable[[], float]:
    """A delay drawn uniformly between the bounds, for each request."""
    return lambda: random.uniform(low_seconds, high_seconds)


class FastReceiver:
    """Answers every POST with 200 (after a delay, when told) and records its delivery id and timing."""

    def __init__(self, delay: Callable[[], float] = answer_at_once) -> None:
        self._delay = delay
        self._arrivals: list[Arrival] = []
        self._lock = threading.Lock()
        self._loop = uvloop.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._stopped = asyncio.Event()
        self.port = 0
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), name="fast-receiver", daemon=True)
        self._thread.start()
        if not started.wait(START_TIMEOUT_SECONDS) or not self.port:
            raise AssertionError("the fast receiver did not start")

    def url(self, path: str = "/hook") -> str:
        """The URL of a path on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    def arrivals(self) -> list[Arrival]:
        """Every request answered so far, in the order they were answered."""
        with self._lock:
            return list(self._arrivals)

    def counts(self) -> Counter[int]:
        """How many times each delivery id arrived."""
        return Counter(arrival.delivery_id for arrival in self.arrivals())

    def wait_for_ids(self, expected: set[int], timeout_seconds: float) -> Counter[int]:
        """Wait until every expected delivery id arrived at least once; the counts then (or at the timeout)."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            counts = self.counts()
            if expected <= counts.keys() or time.monotonic() > deadline:
                return counts
            time.sleep(POLL_SECONDS)

    def wait_for_count(self, count: int, timeout_seconds: float) -> int:
        """Wait until at least `count` requests were answered; how many were."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            with self._lock:
                answered = len(self._arrivals)
            if answered >= count or time.monotonic() > deadline:
                return answered
            time.sleep(POLL_SECONDS)

    def close(self) -> None:
        """Stop serving and join the thread."""
        self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout=START_TIMEOUT_SECONDS)

    async def _receive(self, request: web.Request) -> web.Response:
        arrived_at = time.monotonic()
        await request.read()
        delay_seconds = self._delay()
        if delay_seconds:
            await asyncio.sleep(delay_seconds)
        arrival = Arrival(int(request.headers[DELIVERY_ID_HEADER]), arrived_at, time.monotonic())
        with self._lock:
            self._arrivals.append(arrival)
        return web.Response(text="ok")

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._run(started))
        finally:
            self._loop.close()

    async def _run(self, started: threading.Event) -> None:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._receive)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        listening = socket.create_server(("127.0.0.1", 0), backlog=LISTEN_BACKLOG)
        await web.SockSite(runner, listening).start()
        self.port = listening.getsockname()[1]
        started.set()
        try:
            await self._stopped.wait()
        finally:
            await runner.cleanup()
