"""API: create and list subscriptions under wrk, as a ratio to a bare FastAPI endpoint served the same way."""

from __future__ import annotations

import json
import subprocess

import aiohttp

from bench import procs, service, wrk
from bench.context import RunContext
from bench.results import Figure, at_least, ratio_of

API_TARGET = 0.3
LISTED_SUBSCRIPTIONS = 10
BARE_STARTUP_TIMEOUT_SECONDS = 30.0


def _start_bare_app(context: RunContext) -> tuple[procs.ChildProcess, int]:
    port = procs.free_port()
    log_path = context.work_dir / "bare-app.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [procs.python_executable(), "-m", "bench.bare_app", "--port", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=procs.REPO_DIR,
        )
    child = context.adopt(procs.ChildProcess("bare-app", process, log_path))
    procs.wait_for_port(port, BARE_STARTUP_TIMEOUT_SECONDS, child)
    return child, port


async def api(context: RunContext) -> list[Figure]:
    """wrk against Hookline's create and list subscriptions, and against the bare endpoints."""
    sizes = context.sizes
    operations = ("list subscriptions", "create subscription")
    if wrk.wrk_path() is None:
        return [
            Figure.skipped("API", operation, "req/s", f">= {API_TARGET} x bare", "wrk is not installed")
            for operation in operations
        ]
    store = context.stores.sqlite()
    hookline = service.start_hookline(context.work_dir, store, "hookline-api")
    context.adopt(hookline.child)
    _, bare_port = _start_bare_app(context)
    trigger_url = f"{context.sink.base_url}/api"
    async with aiohttp.ClientSession() as session:
        for _ in range(LISTED_SUBSCRIPTIONS):
            await hookline.create_subscription(session, trigger_url)

    create_body = json.dumps(
        {
            "trigger_url": trigger_url,
            "event_id": service.EVENT_ID,
            "content_type": "application/json",
            "secret": service.SUBSCRIPTION_SECRET,
        }
    )
    headers = {**hookline.auth_headers, "Content-Type": "application/json"}
    scripts = {
        "list": context.work_dir / "api-list.lua",
        "create": context.work_dir / "api-create.lua",
    }
    scripts["list"].write_text(wrk.lua_script("GET", None, hookline.auth_headers), encoding="utf-8")
    scripts["create"].write_text(wrk.lua_script("POST", create_body, headers), encoding="utf-8")
    targets = {
        "list": (
            f"{hookline.base_url}/api/v0/webhooks/subscriptions.json",
            f"http://127.0.0.1:{bare_port}/bare/subscriptions",
        ),
        "create": (
            f"{hookline.base_url}/api/v0/webhooks/subscriptions.json",
            f"http://127.0.0.1:{bare_port}/bare/subscriptions",
        ),
    }
    figures: list[Figure] = []
    try:
        # List before create: otherwise the list would grow with every created subscription.
        for operation, label in (("list", operations[0]), ("create", operations[1])):
            hookline_url, bare_url = targets[operation]
            bare = await wrk.run_wrk(bare_url, sizes.api_seconds, sizes.api_connections, scripts[operation])
            profiler = context.start_profiler(hookline.child.pid, f"api-{operation}")
            measured = await wrk.run_wrk(hookline_url, sizes.api_seconds, sizes.api_connections, scripts[operation])
            if profiler is not None:
                context.keep_profile(f"api-{operation}", profiler.stop())
            ratio = ratio_of(measured.requests_per_second, bare.requests_per_second)
            errors = measured.non_2xx_responses + bare.non_2xx_responses
            note = (
                f"wrk 1 thread, {sizes.api_connections} connections, {max(1, round(sizes.api_seconds))} s each; "
                + (f"list answers {LISTED_SUBSCRIPTIONS} subscriptions; " if operation == "list" else "JSON body; ")
                + f"{measured.total_requests:,} requests, {measured.non_2xx_responses} non-2xx "
                f"(bare: {bare.non_2xx_responses} non-2xx)"
            )
            figures.append(
                Figure(
                    "API",
                    label,
                    measured.requests_per_second,
                    "req/s",
                    baseline=bare.requests_per_second,
                    baseline_name="bare FastAPI",
                    ratio=ratio,
                    target=f">= {API_TARGET} x bare",
                    passed=at_least(ratio, API_TARGET) if errors == 0 else False,
                    note=note,
                )
            )
    finally:
        hookline.stop()
    return figures
