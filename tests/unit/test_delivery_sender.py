"""The HTTP client against a real aiohttp server on 127.0.0.1: deadlines, limits, redirects, refusals."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from hookline import config
from hookline.delivery import ssrf
from hookline.delivery.sender import Sender

DEADLINE_SECONDS = 0.4
LOOPBACK_ALLOWED = ["127.0.0.0/8"]


@dataclass
class Receiver:
    """A real HTTP server that records what reached it."""

    base_url: str
    requests: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)


async def _ok(request: web.Request) -> web.Response:
    return web.Response(status=200, text="thanks \u2713 " + "x" * 2000)


async def _bad_utf8(request: web.Request) -> web.Response:
    return web.Response(status=200, body=b"\xff\xfeok")


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(DEADLINE_SECONDS * 5)
    return web.Response(status=200)


async def _trickle(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=200)
    response.content_length = 1000
    await response.prepare(request)
    for _ in range(50):
        await response.write(b"x")
        await asyncio.sleep(0.05)
    return response


async def _huge(request: web.Request) -> web.Response:
    return web.Response(status=200, body=b"y" * 300_000)


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ok")


async def _busy(request: web.Request) -> web.Response:
    return web.Response(status=429, headers={"Retry-After": "7"})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recorded: list[tuple[str, bytes, dict[str, str]]] = []

    @web.middleware
    async def record(request: web.Request, handler: web.Handler) -> web.StreamResponse:
        recorded.append((request.path, await request.read(), dict(request.headers)))
        return await handler(request)

    app = web.Application(middlewares=[record])
    for path, handler in [
        ("/ok", _ok),
        ("/bad-utf8", _bad_utf8),
        ("/slow", _slow),
        ("/trickle", _trickle),
        ("/huge", _huge),
        ("/redirect", _redirect),
        ("/busy", _busy),
    ]:
        app.router.add_post(path, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield Receiver(f"http://127.0.0.1:{port}", recorded)
    await runner.cleanup()


def settings(**overrides: object) -> config.Settings:
    values: dict[str, object] = {
        "ssrf_allow_networks": LOOPBACK_ALLOWED,
        "delivery_timeout_seconds": DEADLINE_SECONDS,
        "response_excerpt_bytes": 16,
    }
    values.update(overrides)
    return config.Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def sender() -> AsyncIterator[Sender]:
    chosen = settings()
    async with Sender(chosen, ssrf.AddressPolicy(chosen.ssrf_allow_networks)) as opened:
        yield opened


async def test_posts_exact_body_and_headers_and_returns_status_and_excerpt(sender: Sender, receiver: Receiver) -> None:
    result = await sender.send(f"{receiver.base_url}/ok", b'{"id":1}', {"Content-Type": "application/json", "X-A": "b"})
    assert result.status_code == 200
    assert result.error is None
    assert result.response_excerpt == "thanks \u2713 xxxxx"  # 16 bytes: the check mark takes 3
    path, body, headers = receiver.requests[0]
    assert (path, body) == ("/ok", b'{"id":1}')
    assert headers["Content-Type"] == "application/json"
    assert headers["X-A"] == "b"
    assert "Accept-Encoding" not in headers


async def test_excerpt_replaces_invalid_utf8(sender: Sender, receiver: Receiver) -> None:
    result = await sender.send(f"{receiver.base_url}/bad-utf8", b"", {})
    assert result.response_excerpt == "\ufffd\ufffdok"


async def test_redirect_is_not_followed(sender: Sender, receiver: Receiver) -> None:
    result = await sender.send(f"{receiver.base_url}/redirect", b"x", {})
    assert result.status_code == 302
    assert [path for path, _, _ in receiver.requests] == ["/redirect"]


async def test_excerpt_leaves_out_a_character_cut_by_the_limit(receiver: Receiver) -> None:
    chosen = settings(response_excerpt_bytes=9)
    async with Sender(chosen, ssrf.AddressPolicy(chosen.ssrf_allow_networks)) as sender:
        result = await sender.send(f"{receiver.base_url}/ok", b"", {})
    assert result.response_excerpt == "thanks "


async def test_retry_after_is_reported(sender: Sender, receiver: Receiver) -> None:
    result = await sender.send(f"{receiver.base_url}/busy", b"x", {})
    assert (result.status_code, result.retry_after) == (429, "7")


async def test_hanging_receiver_is_cut_at_the_deadline(sender: Sender, receiver: Receiver) -> None:
    started = time.perf_counter()
    result = await sender.send(f"{receiver.base_url}/slow", b"x", {})
    elapsed = time.perf_counter() - started
    assert result.status_code is None
    assert result.error_class == "timeout"
    assert result.error == "no complete response within 0.4 s"
    assert DEADLINE_SECONDS * 0.9 <= elapsed < DEADLINE_SECONDS + 0.6


async def test_deadline_covers_a_body_trickled_after_the_status_line(sender: Sender, receiver: Receiver) -> None:
    started = time.perf_counter()
    result = await sender.send(f"{receiver.base_url}/trickle", b"x", {})
    elapsed = time.perf_counter() - started
    assert result.error_class == "timeout"
    assert elapsed < DEADLINE_SECONDS + 0.6


async def test_reads_at_most_max_response_bytes_and_keeps_working(receiver: Receiver) -> None:
    chosen = settings(max_response_bytes=1024)
    async with Sender(chosen, ssrf.AddressPolicy(chosen.ssrf_allow_networks)) as sender:
        result = await sender.send(f"{receiver.base_url}/huge", b"x", {})
        assert result.status_code == 200
        assert result.error_class == "too_large"
        assert result.response_excerpt == "y" * 16
        after = await sender.send(f"{receiver.base_url}/ok", b"x", {})
        assert after.status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]", "localhost"])
async def test_loopback_is_refused_without_the_allow_list(receiver: Receiver, host: str) -> None:
    port = receiver.base_url.rsplit(":", 1)[1]
    chosen = settings(ssrf_allow_networks=[])
    async with Sender(chosen, ssrf.AddressPolicy([])) as sender:
        result = await sender.send(f"http://{host}:{port}/ok", b"x", {})
    assert result.status_code is None
    assert result.error_class == "refused_destination"
    assert result.error is not None
    assert "loopback" in result.error
    assert "ssrf_allow_networks" in result.error
    assert receiver.requests == []


async def test_a_closed_port_is_a_connect_error(sender: Sender) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    result = await sender.send(f"http://127.0.0.1:{closed_port}/", b"x", {})
    assert result.error_class == "connect_error"
    assert result.status_code is None


@pytest.mark.parametrize("url", ["not a url", "ftp://127.0.0.1/x", "http://"])
async def test_invalid_urls_are_reported_not_raised(sender: Sender, url: str) -> None:
    result = await sender.send(url, b"x", {})
    assert result.error_class == "invalid_url"
    assert result.status_code is None
