"""Backlog: a million pending deliveries in SQLite; page listings with the rows present, and the drain's peak RSS.

The rows go in with plain SQL (INSERT ... SELECT over a recursive sequence), which takes seconds where the API
would take minutes; they are exactly the rows a fan-out writes: one event per object, one pending delivery per
(event, subscription), due now.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import time

import aiohttp

from bench import service
from bench.context import RunContext
from bench.results import Figure, at_most, ratio_of

PEAK_RSS_TARGET_MB = 300.0
PAGE_TARGET_MS = 20.0
PAGE_LIMIT = 100
PAGE_SAMPLES = 30
PAGE_WARMUP_SAMPLES = 3
RSS_SAMPLE_SECONDS = 1.0
SMALL_SHARE = 0.1
MIN_DRAIN_SECONDS = 10.0

_INSERT_SUBSCRIPTIONS = (
    "INSERT INTO subscriptions (id, deployment_id, user_id, event_id, trigger_url, content_type, secret,"
    " created_at, consecutive_failures)"
    " WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :count)"
    " SELECT printf('%024x', n), :deployment_id, :user_id, :event_id, :trigger_url, 'application/json', :secret,"
    " :now + n * 0.000001, 0 FROM seq"
)
_INSERT_EVENTS = (
    "INSERT INTO events (id, deployment_id, event_id, object_id, resource_url, created_at)"
    " WITH RECURSIVE seq(n) AS (SELECT :first UNION ALL SELECT n + 1 FROM seq WHERE n < :last)"
    " SELECT n, :deployment_id, :event_id, CAST(n AS TEXT), NULL, :now FROM seq"
)
_INSERT_DELIVERIES = (
    "INSERT INTO deliveries (event_row_id, subscription_id, deployment_id, state, attempts, retries_allowed,"
    " next_attempt_at, created_at)"
    " SELECT e.id, s.id, s.deployment_id, 'pending', 0, 1, :due_at, :now"
    " FROM events AS e CROSS JOIN subscriptions AS s"
    " WHERE e.id BETWEEN :first AND :last AND s.deployment_id = :deployment_id"
)


def _subscription_id(number: int) -> str:
    return f"{number:024x}"


def insert_backlog(
    store: service.Store, subscriptions: int, first_event: int, last_event: int, trigger_url: str
) -> int:
    """Insert events first..last, each fanned out to every subscription (made on the first call); rows added."""
    connection = sqlite3.connect(store.sqlite_path, timeout=30.0)
    try:
        connection.execute("PRAGMA synchronous = OFF")  # this connection only: a bulk load, not the service
        (deployment_id,) = connection.execute(
            "SELECT id FROM deployments WHERE slug = ?", (service.DEPLOYMENT_SLUG,)
        ).fetchone()
        (user_id,) = connection.execute(
            "SELECT id FROM users WHERE deployment_id = ? AND email = ?", (deployment_id, service.USER_EMAIL)
        ).fetchone()
        now = time.time()
        with connection:
            (existing,) = connection.execute("SELECT count(*) FROM subscriptions").fetchone()
            if existing == 0:
                connection.execute(
                    _INSERT_SUBSCRIPTIONS,
                    {
                        "count": subscriptions,
                        "deployment_id": deployment_id,
                        "user_id": user_id,
                        "event_id": service.EVENT_ID,
                        "trigger_url": trigger_url,
                        "secret": service.SUBSCRIPTION_SECRET,
                        "now": now,
                    },
                )
            connection.execute(
                _INSERT_EVENTS,
                {
                    "first": first_event,
                    "last": last_event,
                    "deployment_id": deployment_id,
                    "event_id": service.EVENT_ID,
                    "now": now,
                },
            )
            cursor = connection.execute(
                _INSERT_DELIVERIES,
                {
                    "first": first_event,
                    "last": last_event,
                    "deployment_id": deployment_id,
                    "due_at": now - 1,
                    "now": now,
                },
            )
            return cursor.rowcount
    finally:
        connection.close()


async def _page_latencies_ms(hookline: service.Hookline, session: aiohttp.ClientSession, path: str) -> list[float]:
    for _ in range(PAGE_WARMUP_SAMPLES):
        await hookline.timed_get(session, path)
    samples = [await hookline.timed_get(session, path) * 1000.0 for _ in range(PAGE_SAMPLES)]
    return sorted(samples)


async def _measure_pages(context: RunContext, store: service.Store, label: str) -> dict[str, list[float]]:
    """Median-ready samples of the two page listings, through a `serve --no-dispatcher` (nothing drains)."""
    hookline = service.start_hookline(context.work_dir, store, f"hookline-{label}", dispatcher=False)
    context.adopt(hookline.child)
    middle = _subscription_id(max(1, context.sizes.backlog_subscriptions // 2))
    paths = {
        "subscriptions": f"/api/v0/webhooks/subscriptions.json?_limit={PAGE_LIMIT}&_page=1",
        "deliveries": f"/api/v0/webhooks/subscriptions/{middle}/deliveries.json?_limit={PAGE_LIMIT}",
    }
    try:
        async with aiohttp.ClientSession() as session:
            return {name: await _page_latencies_ms(hookline, session, path) for name, path in paths.items()}
    finally:
        hookline.stop()


async def _drain(context: RunContext, store: service.Store, total: int) -> tuple[int, float, int | None, list[int]]:
    """Start `hookline serve` on the backlog; (delivered, seconds, peak RSS bytes, RSS samples) once drained."""
    sink = context.sink
    async with aiohttp.ClientSession() as session:
        await sink.reset(session)
        hookline = service.start_hookline(context.work_dir, store, "hookline-backlog-drain")
        context.adopt(hookline.child)
        profiler = context.start_profiler(hookline.child.pid, "backlog-drain")
        started = time.monotonic()
        # Bounded twice: by the size's drain limit and by what is left of the run's time budget.
        budget = min(context.sizes.backlog_drain_seconds, context.deadline - started)
        deadline = started + max(MIN_DRAIN_SECONDS, budget)
        rss_samples: list[int] = []
        delivered = 0
        try:
            while time.monotonic() < deadline:
                delivered = sink.ok_count_of(await sink.stats(session), "/backlog")
                rss = hookline.child.rss_bytes()
                if rss is not None:
                    rss_samples.append(rss)
                if delivered >= total:
                    break
                await asyncio.sleep(min(RSS_SAMPLE_SECONDS, max(0.0, deadline - time.monotonic())))
            last_at = (await sink.stats(session))["last_at"]
            seconds = (float(last_at) if isinstance(last_at, float) else time.monotonic()) - started
            peak = hookline.child.peak_rss_bytes()
        finally:
            if profiler is not None:
                context.keep_profile("backlog-drain", profiler.stop())
            hookline.stop()
    return delivered, seconds, peak, rss_samples


async def backlog(context: RunContext) -> list[Figure]:
    """A million pending deliveries: page listing latency with them present, and peak RSS while draining them."""
    sizes = context.sizes
    subscriptions = sizes.backlog_subscriptions
    events = max(1, sizes.backlog_rows // subscriptions)
    small_events = max(1, round(events * SMALL_SHARE))
    store = context.stores.sqlite()
    trigger_url = f"{context.sink.base_url}/backlog"

    insert_started = time.monotonic()
    small_rows = await asyncio.to_thread(insert_backlog, store, subscriptions, 1, small_events, trigger_url)
    small_pages: dict[str, list[float]] = {}
    if sizes.backlog_small_comparison:
        small_pages = await _measure_pages(context, store, "backlog-pages-small")
    more_rows = await asyncio.to_thread(insert_backlog, store, subscriptions, small_events + 1, events, trigger_url)
    insert_seconds = time.monotonic() - insert_started
    total = small_rows + more_rows
    pages = await _measure_pages(context, store, "backlog-pages")

    delivered, seconds, peak, rss_samples = await _drain(context, store, total)
    context.details["backlog"] = {
        "rows": total,
        "subscriptions": subscriptions,
        "insert_and_page_seconds": round(insert_seconds, 1),
        "page_ms": {name: samples for name, samples in pages.items()},
        "page_ms_small": {name: samples for name, samples in small_pages.items()},
        "drain_rss_mb_samples": [round(sample / 1e6, 1) for sample in rss_samples],
    }
    figures: list[Figure] = []
    for name, label in (("subscriptions", "page of subscriptions"), ("deliveries", "page of one's deliveries")):
        median = statistics.median(pages[name])
        small_median = statistics.median(small_pages[name]) if name in small_pages else None
        figures.append(
            Figure(
                "backlog (SQLite)",
                f"{label} (median)",
                median,
                "ms",
                baseline=small_median,
                baseline_name=f"{small_rows:,} rows",
                ratio=ratio_of(median, small_median),
                target=f"< {PAGE_TARGET_MS:g} ms",
                passed=at_most(median, PAGE_TARGET_MS),
                note=(
                    f"_limit={PAGE_LIMIT}, {PAGE_SAMPLES} sequential GETs with {total:,} pending deliveries present; "
                    f"max {pages[name][-1]:.1f} ms"
                ),
            )
        )
    peak_mb = None if peak is None else peak / 1e6
    drained = delivered >= total
    rate = delivered / seconds if seconds > 0 else 0.0
    figures.append(
        Figure(
            "backlog (SQLite)",
            "drain peak RSS",
            peak_mb,
            "MB",
            target=f"<= {PEAK_RSS_TARGET_MB:g} MB",
            passed=at_most(peak_mb, PEAK_RSS_TARGET_MB),
            note=(
                f"VmHWM of the `hookline serve` process draining {total:,} pending deliveries to the sink; "
                f"{delivered:,} delivered in {seconds:.0f} s ({rate:,.0f}/s)"
                + ("" if drained else f"; NOT drained: stopped after {seconds:.0f} s (the run's time bound)")
            ),
        )
    )
    return figures
