"""The HTTP client: one pooled aiohttp session POSTing deliveries under a hard deadline."""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from yarl import URL

from hookline import config
from hookline.delivery import ssrf

CONNECTION_POOL_HEADROOM = 8  # connections beyond max_in_flight, for dispatch_now and sockets still closing
KEEPALIVE_SECONDS = 30.0
DNS_CACHE_SECONDS = 10
ERROR_TEXT_MAX_CHARS = 300  # the attempt log's error column holds this much
URL_CACHE_MAX_ENTRIES = 10_000


@dataclass(slots=True)
class SendResult:
    """What came back from one POST: a status and excerpt, or an error and its class."""

    status_code: int | None
    response_excerpt: str | None
    error: str | None
    error_class: str | None
    duration_ms: float
    retry_after: str | None = None


class Sender:
    """POSTs delivery bodies through one pooled aiohttp session, refusing destinations the policy forbids."""

    def __init__(
        self,
        settings: config.Settings,
        policy: ssrf.AddressPolicy,
        perf_clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self._perf_clock = perf_clock
        self._session: aiohttp.ClientSession | None = None
        self._timeout_text = f"no complete response within {settings.delivery_timeout_seconds:g} s"
        self._urls: dict[str, URL] = {}

    async def open(self) -> None:
        """Create the session and its connection pool (needs a running event loop)."""
        if self._session is not None:
            return
        connector = aiohttp.TCPConnector(
            limit=self.settings.max_in_flight + CONNECTION_POOL_HEADROOM,
            limit_per_host=0,  # the dispatcher's per-subscription cap bounds each receiver
            resolver=ssrf.GuardedResolver(self.policy),
            keepalive_timeout=KEEPALIVE_SECONDS,
            ttl_dns_cache=DNS_CACHE_SECONDS,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.settings.delivery_timeout_seconds),
            cookie_jar=aiohttp.DummyCookieJar(),  # receivers' cookies must not travel between subscriptions
            skip_auto_headers=("Accept-Encoding",),  # the excerpt is the raw body: no decompression bombs
            auto_decompress=False,
            raise_for_status=False,
        )

    async def close(self) -> None:
        """Close the session and every pooled connection."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> Sender:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
        """POST once, without following redirects; never raises for network or HTTP trouble."""
        session = self._session
        if session is None:
            raise RuntimeError("Sender.send() before Sender.open()")
        started = self._perf_clock()
        refusal = self.policy.check_literal_url(url)
        if refusal is not None:
            return SendResult(None, None, _clip(refusal), "refused_destination", 0.0)
        try:
            target = self._url(url)
            async with session.post(target, data=body, headers=headers, allow_redirects=False) as response:
                content, truncated = await self._read_limited(response)
                if truncated:
                    response.close()  # more than we read is on the way: drop the connection instead of draining it
                status_code = response.status
                retry_after = response.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ServerTimeoutError):
            return self._failure(self._timeout_text, "timeout", started)
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.os_error, ssrf.DestinationRefused):
                return self._failure(str(exc.os_error), "refused_destination", started)
            return self._failure(f"could not resolve {exc.host}: {exc.os_error}", "dns_error", started)
        except aiohttp.ClientSSLError as exc:
            return self._failure(f"TLS failed: {exc}", "tls_error", started)
        except aiohttp.ClientConnectorError as exc:
            text = f"could not connect to {exc.host}:{exc.port}: {exc.os_error}"
            return self._failure(text, "connect_error", started)
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError, ValueError) as exc:
            return self._failure(f"invalid URL {url!r}: {exc}", "invalid_url", started)
        except aiohttp.ServerDisconnectedError:
            return self._failure("the server closed the connection without a response", "disconnected", started)
        except aiohttp.ClientPayloadError as exc:
            return self._failure(f"the response body was cut short: {exc}", "disconnected", started)
        except aiohttp.ClientResponseError as exc:
            return self._failure(f"malformed HTTP response: {exc.message}", "protocol_error", started)
        except (aiohttp.ClientError, OSError) as exc:
            return self._failure(f"{type(exc).__name__}: {exc}", "connection_error", started)
        duration_ms = (self._perf_clock() - started) * 1000.0
        excerpt = self._excerpt(content)
        if truncated:
            limit = self.settings.max_response_bytes
            text = f"response body longer than {limit} bytes; only the first {limit} were read"
            return SendResult(status_code, excerpt, text, "too_large", duration_ms, retry_after)
        return SendResult(status_code, excerpt, None, None, duration_ms, retry_after)

    def _url(self, url: str) -> URL:
        """The parsed URL, cached: most deliveries go to a few URLs and parsing costs microseconds."""
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= URL_CACHE_MAX_ENTRIES:
                self._urls.clear()
            parsed = self._urls[url] = URL(url)
        return parsed

    async def _read_limited(self, response: aiohttp.ClientResponse) -> tuple[bytes, bool]:
        """At most max_response_bytes of the body, and whether the server sent more than that."""
        limit = self.settings.max_response_bytes
        stream = response.content
        chunks: list[bytes] = []
        received = 0
        while received < limit:
            chunk = await stream.read(limit - received)
            if not chunk:
                return b"".join(chunks), False
            chunks.append(chunk)
            received += len(chunk)
            if stream.at_eof():  # the usual tiny answer: one read, no second call to learn it has ended
                return b"".join(chunks), False
        return b"".join(chunks), not stream.at_eof()

    def _excerpt(self, content: bytes) -> str | None:
        if not content:
            return None
        # A character cut in two by the byte limit is left out rather than shown as a replacement character.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return decoder.decode(content[: self.settings.response_excerpt_bytes], final=False)

    def _failure(self, error: str, error_class: str, started: float) -> SendResult:
        return SendResult(None, None, _clip(error), error_class, (self._perf_clock() - started) * 1000.0)


def _clip(text: str) -> str:
    return text if len(text) <= ERROR_TEXT_MAX_CHARS else text[: ERROR_TEXT_MAX_CHARS - 1] + "…"
