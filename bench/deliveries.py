"""Delivery benchmarks against a real `hookline serve`: throughput, latency at a fixed rate, isolation.

Events are reported through the API, fanned out to subscriptions on the sink, and counted there.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from bench import baselines, procs, service
from bench.context import RunContext
from bench.results import Figure, at_least, at_most, percentile, ratio_of

THROUGHPUT_TARGETS = {"sqlite": 0.7, "postgresql": 0.6}
LATENCY_TARGETS_MS = {"sqlite": (3.0, 20.0), "postgresql": (6.0, 30.0)}
ISOLATION_TARGET = 0.9
HANGING_SHARE = 0.1
DRAIN_TIMEOUT_MIN_SECONDS = 30.0
DRAIN_TIMEOUT_MAX_SECONDS = 240.0
LATENCY_MAX_IN_FLIGHT = 256
LATENCY_SETTLE_TIMEOUT_SECONDS = 30.0
FLOOR_TIME_LIMIT_SECONDS = 60.0
STORE_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


@dataclass(frozen=True)
class DeliveryRun:
    """One load of events through the service until the sink counted every healthy delivery."""

    expected: int
    delivered: int
    seconds: float
    service_cpu_seconds: float | None
    reporting_seconds: float | None = None  # from the first report to the last 202

    @property
    def per_second(self) -> float:
        """Healthy deliveries per second, from the first report to the last arrival."""
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        """Whether every expected delivery arrived before the timeout."""
        return self.delivered >= self.expected

    def cpu_note(self) -> str:
        """Service CPU per delivery and how long reporting took, when known."""
        note = ""
        if self.service_cpu_seconds is not None and self.delivered:
            note += f"; service {self.service_cpu_seconds * 1e6 / self.delivered:.0f} µs CPU per delivery"
        if self.reporting_seconds is not None:
            note += f"; the last report's 202 came {self.reporting_seconds:.1f} s after the first was sent"
        return note


def _new_store(context: RunContext, kind: str) -> service.Store:
    if kind == "postgresql":
        return context.stores.postgres()
    return context.stores.sqlite()


def _drain_timeout(context: RunContext, deliveries: int) -> float:
    floor = context.floor_deliveries_per_second or 1000.0
    return min(DRAIN_TIMEOUT_MAX_SECONDS, DRAIN_TIMEOUT_MIN_SECONDS + deliveries / (0.05 * floor))


async def _with_service(
    context: RunContext,
    kind: str,
    label: str,
    work: Callable[[service.Hookline, aiohttp.ClientSession], Awaitable[list[Figure]]],
    extra_env: dict[str, str] | None = None,
) -> list[Figure]:
    """Start Hookline on a fresh store of `kind`, run `work`, stop it and drop the store."""
    store = _new_store(context, kind)
    hookline = service.start_hookline(context.work_dir, store, f"hookline-{label}", extra_env=extra_env)
    context.adopt(hookline.child)
    connector = aiohttp.TCPConnector(limit=LATENCY_MAX_IN_FLIGHT)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            return await work(hookline, session)
    finally:
        hookline.stop()
        context.stores.drop(store)


async def _report_all(hookline: service.Hookline, session: aiohttp.ClientSession, events: int, batch: int) -> float:
    """Report the events in batches, one request after another; time.monotonic() at the last 202."""
    answered_at = time.monotonic()
    for start in range(0, events, batch):
        object_ids = [str(object_id) for object_id in range(start, min(events, start + batch))]
        answered_at = await hookline.report_events(session, object_ids)
    return answered_at


async def subscribe(
    context: RunContext,
    hookline: service.Hookline,
    session: aiohttp.ClientSession,
    label: str,
    healthy_subscriptions: int,
    hanging_trigger_urls: list[str],
) -> None:
    """Create the healthy subscriptions (to the sink's /`label`) and the hanging ones."""
    for _ in range(healthy_subscriptions):
        await hookline.create_subscription(session, f"{context.sink.base_url}/{label}")
    for trigger_url in hanging_trigger_urls:
        await hookline.create_subscription(session, trigger_url)
    hookline.healthy_subscriptions = healthy_subscriptions


async def deliver_events(
    context: RunContext,
    hookline: service.Hookline,
    session: aiohttp.ClientSession,
    label: str,
    events: int,
) -> DeliveryRun:
    """Report `events` in batches and wait until the sink counted every healthy delivery (after `subscribe`)."""
    await context.sink.reset(session)
    expected = events * hookline.healthy_subscriptions
    profiler = context.start_profiler(hookline.child.pid, label)
    cpu_before = procs.cpu_seconds(hookline.child.pid)
    started_at = time.monotonic()
    reporter = asyncio.create_task(_report_all(hookline, session, events, context.sizes.report_batch_size))
    try:
        delivered = await context.sink.wait_for_ok_count(
            session, expected, _drain_timeout(context, expected), path=f"/{label}"
        )
        last_report_at = await reporter
    finally:
        reporter.cancel()
    cpu_after = procs.cpu_seconds(hookline.child.pid)
    if profiler is not None:
        context.keep_profile(label, profiler.stop())
    last_at = (await context.sink.stats(session))["last_at"]
    seconds = (float(last_at) if isinstance(last_at, float) else time.monotonic()) - started_at
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return DeliveryRun(expected, delivered, seconds, cpu, last_report_at - started_at)


def throughput(kind: str) -> Callable[[RunContext], Awaitable[list[Figure]]]:
    """The throughput benchmark for one store kind."""

    async def measure(context: RunContext) -> list[Figure]:
        sizes = context.sizes
        name = f"throughput ({STORE_NAMES[kind]})"
        target = f">= {THROUGHPUT_TARGETS[kind]} x floor"
        if kind == "postgresql" and (reason := context.stores.postgres_available()) is not None:
            return [Figure.skipped(name, "deliveries/s", "1/s", target, reason)]

        # The floor drifts with whatever else the machine does, so it is measured again between the repeats:
        # floor, load, floor, load, ... floor; each load is divided by the mean of the floors either side of it.
        floors: list[float] = []

        async def floor_now() -> None:
            measured = await baselines.run_floor_once(
                f"{context.sink.base_url}/floor-{kind}", sizes.floor_requests, FLOOR_TIME_LIMIT_SECONDS
            )
            floors.append(float(measured["deliveries_per_second"]))

        async def work(hookline: service.Hookline, session: aiohttp.ClientSession) -> list[Figure]:
            label = f"throughput-{kind}"
            await subscribe(context, hookline, session, label, sizes.throughput_subscriptions, [])
            runs: list[DeliveryRun] = []
            ratios: list[float] = []
            await floor_now()
            for _ in range(sizes.throughput_repeats):
                run = await deliver_events(context, hookline, session, label, sizes.throughput_events)
                runs.append(run)
                await floor_now()
                if run.complete:
                    ratios.append(run.per_second / statistics.fmean(floors[-2:]))
            complete = all(run.complete for run in runs)
            typical = sorted(runs, key=lambda run: run.per_second)[len(runs) // 2]
            ratio = statistics.median(ratios) if complete else None
            note = (
                f"{sizes.throughput_events:,} events x {sizes.throughput_subscriptions} subscriptions, reported in "
                f"batches of {sizes.report_batch_size}, {len(runs)} time(s) between floor runs; median run: "
                f"{typical.delivered:,}/{typical.expected:,} arrived in {typical.seconds:.1f} s{typical.cpu_note()}; "
                f"ratios {', '.join(f'{value:.2f}' for value in ratios)}; "
                f"floors {', '.join(f'{value:,.0f}' for value in floors)}"
            )
            context.details[f"throughput_{kind}"] = {
                "deliveries_per_second": [run.per_second for run in runs],
                "floors": floors,
                "ratios": ratios,
            }
            return [
                Figure(
                    name,
                    "deliveries/s",
                    statistics.median(run.per_second for run in runs) if complete else None,
                    "1/s",
                    baseline=statistics.median(floors),
                    baseline_name="floor",
                    ratio=ratio,
                    target=target,
                    passed=at_least(ratio, THROUGHPUT_TARGETS[kind]) if complete else False,
                    note=note if complete else "INCOMPLETE: " + note,
                )
            ]

        return await _with_service(context, kind, f"throughput-{kind}", work)

    return measure


async def _offered_load(
    hookline: service.Hookline,
    session: aiohttp.ClientSession,
    first_object_id: int,
    events: int,
    events_per_second: float,
    batch_size: int,
    answered_at: dict[str, float],
    event_id: str = service.EVENT_ID,
) -> int:
    """Report `events` open-loop at a fixed rate, `batch_size` per request; how many requests left > 5 ms late.

    Open loop: each request goes out at its scheduled time whether or not earlier ones were answered (bounded
    in flight), so a slow service shows up as latency instead of silently lowering the offered rate.
    """
    in_flight = asyncio.Semaphore(LATENCY_MAX_IN_FLIGHT)
    tasks: list[asyncio.Task[None]] = []
    late = 0

    async def send(object_ids: list[str]) -> None:
        try:
            answered = await hookline.report_events(session, object_ids, event_id)
            for object_id in object_ids:
                answered_at[object_id] = answered
        finally:
            in_flight.release()

    started = time.monotonic()
    for first in range(0, events, batch_size):
        due = started + first / events_per_second
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.005:
            late += 1
        await in_flight.acquire()
        object_ids = [str(first_object_id + index) for index in range(first, min(events, first + batch_size))]
        tasks.append(asyncio.create_task(send(object_ids)))
    await asyncio.gather(*tasks)
    return late


def _offered_against_floor(offered_per_second: float, floor_per_second: float | None) -> str:
    """The offered delivery rate as a share of this run's floor, and a warning when no process could keep up."""
    if not floor_per_second:
        return ""
    share = offered_per_second / floor_per_second
    if share <= 1.0:
        return f"; offered = {share:.2f} x this run's floor"
    return (
        f"; offered = {share:.2f} x this run's floor ({floor_per_second:,.0f}/s): more than a bare aiohttp loop "
        "delivers on this machine, so deliveries queue all run and the figures measure that queue"
    )


def latency(kind: str, batch_size: int) -> Callable[[RunContext], Awaitable[list[Figure]]]:
    """The latency benchmark for one store kind: 202 to arrival at a fixed offered rate, `batch_size` a request."""

    async def measure(context: RunContext) -> list[Figure]:
        sizes = context.sizes
        name = f"latency ({STORE_NAMES[kind]})"
        if batch_size > 1:
            name = f"latency ({STORE_NAMES[kind]}, {batch_size} events a request)"
        p50_target, p99_target = LATENCY_TARGETS_MS[kind]
        if kind == "postgresql" and (reason := context.stores.postgres_available()) is not None:
            return [
                Figure.skipped(name, metric, "ms", f"<= {bound:g} ms", reason)
                for metric, bound in (("p50", p50_target), ("p99", p99_target))
            ]
        rate = sizes.latency_events_per_second
        subscriptions = sizes.latency_subscriptions

        async def work(hookline: service.Hookline, session: aiohttp.ClientSession) -> list[Figure]:
            path = f"/latency-{kind}"
            warmup_path = f"/latency-{kind}-warmup"
            for _ in range(subscriptions):
                await hookline.create_subscription(session, f"{context.sink.base_url}{path}")
                await hookline.create_subscription(
                    session, f"{context.sink.base_url}{warmup_path}", event_id=service.WARMUP_EVENT_ID
                )
            sink = context.sink
            # Warm up (connections, caches) with another event type going to other subscriptions, then measure.
            warmup_events = max(1, round(rate * sizes.latency_warmup_seconds))
            await _offered_load(
                hookline, session, 10_000_000, warmup_events, rate, batch_size, {}, service.WARMUP_EVENT_ID
            )
            await sink.wait_for_ok_count(
                session, warmup_events * subscriptions, LATENCY_SETTLE_TIMEOUT_SECONDS, path=warmup_path
            )
            await sink.reset(session)
            await sink.record(session, True)
            events = max(1, round(rate * sizes.latency_seconds))
            answered_at: dict[str, float] = {}
            profiler = context.start_profiler(hookline.child.pid, f"latency-{kind}")
            late = await _offered_load(hookline, session, 0, events, rate, batch_size, answered_at)
            expected = events * subscriptions
            delivered = await sink.wait_for_ok_count(session, expected, LATENCY_SETTLE_TIMEOUT_SECONDS, path=path)
            gave_up_at = time.monotonic()
            if profiler is not None:
                context.keep_profile(f"latency-{kind}", profiler.stop())
            await sink.record(session, False)
            arrivals = await sink.arrivals(session)
            await sink.reset(session)
            latencies_ms = [
                (arrived_at - answered_at[str(object_id)]) * 1000.0
                for arrived_at, object_id in arrivals
                if str(object_id) in answered_at
            ]
            if not latencies_ms:
                raise RuntimeError(f"no arrival matched a reported event ({delivered} arrivals)")
            # Deliveries that never arrived count with a lower bound (until we stopped waiting), not as absent.
            missing = max(0, expected - len(latencies_ms))
            if missing:
                lower_bound_ms = (gave_up_at - max(answered_at.values())) * 1000.0
                latencies_ms.extend([lower_bound_ms] * missing)
            latencies_ms.sort()
            before_202 = sum(1 for value in latencies_ms if value < 0)
            p50 = percentile(latencies_ms, 0.50)
            p99 = percentile(latencies_ms, 0.99)
            worst = latencies_ms[-1]
            note = (
                f"{rate:g} events/s x {subscriptions} subscriptions for {sizes.latency_seconds:g} s "
                f"({rate * subscriptions:,.0f} deliveries/s offered), {batch_size} event(s) a request, one every "
                f"{1000 * batch_size / rate:g} ms; {delivered:,}/{expected:,} arrived; {before_202} arrived before "
                f"their 202 was read; {late} requests sent > 5 ms late"
                + (f"; {missing:,} never arrived (counted at {LATENCY_SETTLE_TIMEOUT_SECONDS:g} s+)" if missing else "")
                + _offered_against_floor(rate * subscriptions, context.floor_deliveries_per_second)
            )
            context.details[f"latency_{kind}_batch_{batch_size}_ms"] = {
                "p50": p50,
                "p90": percentile(latencies_ms, 0.90),
                "p99": p99,
                "p999": percentile(latencies_ms, 0.999),
                "max": worst,
                "mean": statistics.fmean(latencies_ms),
                "count": len(latencies_ms),
            }
            complete = delivered >= expected
            return [
                Figure(name, "p50", p50, "ms", target=f"<= {p50_target:g} ms", passed=at_most(p50, p50_target)),
                Figure(
                    name,
                    "p99",
                    p99,
                    "ms",
                    target=f"<= {p99_target:g} ms",
                    passed=at_most(p99, p99_target) if complete else False,
                ),
                Figure(name, "max", worst, "ms", note=note if complete else "INCOMPLETE: " + note),
            ]

        return await _with_service(context, kind, f"latency-{kind}", work)

    return measure


async def isolation(context: RunContext) -> list[Figure]:
    """Healthy deliveries/s with 10% of subscriptions on a receiver that never answers, as a ratio to without."""
    sizes = context.sizes
    name = "isolation (SQLite)"
    total = sizes.isolation_subscriptions
    hanging = max(1, round(total * HANGING_SHARE))
    healthy = total - hanging
    deadline_env = {"HOOKLINE_DELIVERY_TIMEOUT_SECONDS": str(sizes.isolation_timeout_seconds)}

    async def without_hanging(hookline: service.Hookline, session: aiohttp.ClientSession) -> DeliveryRun:
        await subscribe(context, hookline, session, "isolation-baseline", healthy, [])
        return await deliver_events(context, hookline, session, "isolation-baseline", sizes.isolation_events)

    hang_sink = procs.start_sink(context.work_dir, mode="hang", name="hang-sink")
    context.adopt(hang_sink.child)
    hanging_urls = [f"{hang_sink.base_url}/hang/{index}" for index in range(hanging)]

    async def with_hanging(hookline: service.Hookline, session: aiohttp.ClientSession) -> DeliveryRun:
        await subscribe(context, hookline, session, "isolation-hanging", healthy, hanging_urls)
        return await deliver_events(context, hookline, session, "isolation-hanging", sizes.isolation_events)

    runs: dict[str, DeliveryRun] = {}

    async def keep(label: str, run: Callable[..., Awaitable[DeliveryRun]]) -> list[Figure]:
        async def work(hookline: service.Hookline, session: aiohttp.ClientSession) -> list[Figure]:
            runs[label] = await run(hookline, session)
            return []

        return await _with_service(context, "sqlite", f"isolation-{label}", work, extra_env=deadline_env)

    # without, with, without: the baseline brackets the measured run, so drift of the machine cancels out.
    await keep("without-before", without_hanging)
    await keep("with", with_hanging)
    await keep("without-after", without_hanging)
    hang_sink.child.stop()
    loaded = runs["with"]
    baselines_seen = [runs["without-before"], runs["without-after"]]
    baseline = DeliveryRun(
        sum(run.expected for run in baselines_seen),
        sum(run.delivered for run in baselines_seen),
        sum(run.seconds for run in baselines_seen),
        None,
    )
    complete = loaded.complete and all(run.complete for run in baselines_seen)
    ratio = ratio_of(loaded.per_second, baseline.per_second) if complete else None
    note = (
        f"{sizes.isolation_events:,} events x {healthy} healthy subscriptions, plus {hanging} of {total} "
        f"on a receiver that never answers (deadline {sizes.isolation_timeout_seconds:g} s); "
        f"{loaded.delivered:,}/{loaded.expected:,} healthy arrived in {loaded.seconds:.1f} s "
        f"vs {baselines_seen[0].seconds:.1f} s and {baselines_seen[1].seconds:.1f} s without (runs before and after)"
    )
    return [
        Figure(
            name,
            "healthy deliveries/s",
            loaded.per_second if loaded.complete else None,
            "1/s",
            baseline=baseline.per_second,
            baseline_name="without hanging",
            ratio=ratio,
            target=f">= {ISOLATION_TARGET} x without",
            passed=at_least(ratio, ISOLATION_TARGET) if loaded.complete else False,
            note=note if loaded.complete else "INCOMPLETE: " + note,
        )
    ]
