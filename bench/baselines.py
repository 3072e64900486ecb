"""The baselines every Hookline figure is divided by: the floor, and a check that the sink is not the bottleneck."""

from __future__ import annotations

import asyncio
import json
import statistics

from bench import procs, wrk
from bench.context import RunContext
from bench.results import Figure, at_least, ratio_of

FLOOR_TARGET_NOTE = "baseline for every delivery figure"
SINK_MINIMUM_REQUESTS_PER_SECOND = 20_000.0
FLOOR_PROCESS_EXTRA_SECONDS = 30.0
SINK_CHECK_CONNECTIONS = 64


async def run_floor_once(sink_url: str, requests: int, time_limit_seconds: float) -> dict[str, float]:
    """Run bench/floor.py once in its own process against `sink_url`; its JSON measurement."""
    process = await asyncio.create_subprocess_exec(
        procs.python_executable(),
        "-m",
        "bench.floor",
        "--url",
        sink_url,
        "--requests",
        str(requests),
        "--time-limit",
        str(time_limit_seconds),
        cwd=procs.REPO_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(
            process.communicate(), timeout=time_limit_seconds + FLOOR_PROCESS_EXTRA_SECONDS
        )
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"bench.floor failed (exit {process.returncode}): {stderr.decode()[-1000:]}")
    measurement: dict[str, float] = json.loads(stdout.decode().strip().splitlines()[-1])
    return measurement


async def measure_floor(context: RunContext) -> list[Figure]:
    """The floor: median deliveries/s of a few bare aiohttp runs; stored in the context for the ratios."""
    sizes = context.sizes
    runs = []
    for _ in range(sizes.floor_repeats):
        runs.append(await run_floor_once(f"{context.sink.base_url}/floor", sizes.floor_requests, 120.0))
    rates = [run["deliveries_per_second"] for run in runs]
    failed = sum(int(run["failed"]) for run in runs)
    floor = statistics.median(rates)
    context.floor_deliveries_per_second = floor
    context.details["floor_runs"] = runs
    cpu_per_delivery = statistics.median(run["cpu_microseconds_per_delivery"] for run in runs)
    note = (
        f"median of {len(runs)} runs of {sizes.floor_requests:,} signed POSTs, concurrency 64 "
        f"(range {min(rates):,.0f}–{max(rates):,.0f}); {cpu_per_delivery:.0f} µs CPU per delivery"
    )
    if failed:
        note += f"; {failed} failed"
    return [Figure("floor", "deliveries/s", floor, "1/s", target=FLOOR_TARGET_NOTE, note=note)]


async def check_sink_capacity(context: RunContext) -> list[Figure]:
    """How many keep-alive POSTs/s the sink answers under wrk: it must be far above anything measured."""
    target = f">= {SINK_MINIMUM_REQUESTS_PER_SECOND:,.0f}/s (not the bottleneck)"
    if wrk.wrk_path() is None:
        return [Figure.skipped("sink capacity", "requests/s", "1/s", target, "wrk is not installed")]
    body, headers = _sample_delivery()
    script_path = context.work_dir / "sink_post.lua"
    script_path.write_text(wrk.lua_script("POST", body, headers), encoding="utf-8")
    result = await wrk.run_wrk(
        f"{context.sink.base_url}/capacity", context.sizes.sink_check_seconds, SINK_CHECK_CONNECTIONS, script_path
    )
    floor = context.floor_deliveries_per_second
    return [
        Figure(
            "sink capacity",
            "requests/s",
            result.requests_per_second,
            "1/s",
            baseline=floor,
            baseline_name="floor",
            ratio=ratio_of(result.requests_per_second, floor),
            target=target,
            passed=at_least(result.requests_per_second, SINK_MINIMUM_REQUESTS_PER_SECOND),
            note=f"wrk, 1 thread, {SINK_CHECK_CONNECTIONS} keep-alive connections, signed JSON POSTs",
        )
    ]


def _sample_delivery() -> tuple[str, dict[str, str]]:
    from bench.floor import DEFAULT_SECRET, signed_request

    body, headers = signed_request(1, DEFAULT_SECRET)
    return body.decode(), headers
