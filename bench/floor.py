"""The floor: a bare aiohttp (+uvloop) loop POSTing signed Hookline-shaped payloads to the sink.

This is what one Python process can push on this machine with the same HTTP client, the same payloads and the same
signatures Hookline uses, and nothing else: no store, no queue. Every Hookline delivery figure is divided by it.

Run alone: `python -m bench.floor --url http://127.0.0.1:PORT/floor --requests 20000` prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import resource
import sys
import time
from dataclasses import asdict, dataclass

import aiohttp

DEFAULT_CONCURRENCY = 64
DEFAULT_SECRET = b"bench-secret"
DELIVERY_TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 65536
RESOURCE_URL_TEMPLATE = "http://127.0.0.1:8080/api/v0/tasks/{id}.json"
EVENT_ID = "assign_task"
USER_AGENT = "Hookline/0.1.0 (+https://github.com/hookline/hookline)"  # same length as the service's


@dataclass(frozen=True)
class FloorMeasurement:
    """One floor run: how many signed POSTs got a 2xx, in how long, at what CPU cost."""

    requests: int
    succeeded: int
    failed: int
    concurrency: int
    elapsed_seconds: float
    deliveries_per_second: float
    cpu_microseconds_per_delivery: float


def signed_request(object_id: int, secret: bytes) -> tuple[bytes, dict[str, str]]:
    """The body and headers Hookline sends for one JSON delivery: payload, event, sha1 and sha256 HMAC hex."""
    payload = {"id": object_id, "resource_url": RESOURCE_URL_TEMPLATE.format(id=object_id)}
    body = json.dumps(payload, separators=(",", ":")).encode()  # the same bytes Hookline sends
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Accelo-Event": EVENT_ID,
        "X-Hookline-Delivery": str(object_id),
        "X-Hub-Signature": "sha1=" + hmac.new(secret, body, hashlib.sha1).hexdigest(),
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest(),
    }
    return body, headers


async def push_signed_posts(
    url: str,
    total_requests: int,
    concurrency: int = DEFAULT_CONCURRENCY,
    secret: bytes = DEFAULT_SECRET,
    time_limit_seconds: float = 120.0,
) -> FloorMeasurement:
    """POST `total_requests` signed payloads to `url` with `concurrency` workers; bounded by `time_limit_seconds`."""
    next_index = 0
    succeeded = 0
    failed = 0
    timeout = aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT_SECONDS)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    started_cpu = time.process_time()
    started_at = time.perf_counter()
    deadline = started_at + time_limit_seconds

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal next_index, succeeded, failed
            while next_index < total_requests and time.perf_counter() < deadline:
                object_id = next_index
                next_index += 1
                body, headers = signed_request(object_id, secret)
                try:
                    async with session.post(url, data=body, headers=headers, allow_redirects=False) as response:
                        await response.content.read(MAX_RESPONSE_BYTES)
                        if 200 <= response.status < 300:
                            succeeded += 1
                        else:
                            failed += 1
                except (aiohttp.ClientError, TimeoutError):
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    elapsed = time.perf_counter() - started_at
    cpu_seconds = time.process_time() - started_cpu
    return FloorMeasurement(
        requests=total_requests,
        succeeded=succeeded,
        failed=failed,
        concurrency=concurrency,
        elapsed_seconds=elapsed,
        deliveries_per_second=succeeded / elapsed if elapsed > 0 else 0.0,
        cpu_microseconds_per_delivery=cpu_seconds * 1e6 / max(succeeded, 1),
    )


def main(argv: list[str] | None = None) -> None:
    """Command line: run the floor once and print its measurement as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the sink, e.g. http://127.0.0.1:PORT/floor")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--time-limit", type=float, default=120.0, help="stop sending after this many seconds")
    args = parser.parse_args(argv)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    measurement = asyncio.run(
        push_signed_posts(args.url, args.requests, args.concurrency, DEFAULT_SECRET, args.time_limit)
    )
    peak_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sys.stdout.write(json.dumps({**asdict(measurement), "peak_rss_kib": peak_rss_kib}) + "\n")


if __name__ == "__main__":
    main()
