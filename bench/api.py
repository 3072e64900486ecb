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
UNSUBSCRIBED_EVENT_ID = "create_quote"
OPERATION_NOTES = {
    "list": f"list answers {LISTED_SUBSCRIPTIONS} subscriptions; ",
    "create": "JSON body; ",
    "report": f"one {UNSUBSCRIBED_EVENT_ID} event (no subscriber: stored, fans out to nothing); no target in issue 5; ",
}
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
    operations = ("list subscriptions", "create subscription", "report one event")
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
    # An event type nobody subscribes to: the request is parsed, authorised and stored, and fans out to nothing.
    report_body = json.dumps({"event_id": UNSUBSCRIBED_EVENT_ID, "object_id": "1"})
    scripts = {
        "list": context.work_dir / "api-list.lua",
        "create": context.work_dir / "api-create.lua",
        "report": context.work_dir / "api-report.lua",
    }
    scripts["list"].write_text(wrk.lua_script("GET", None, hookline.auth_headers), encoding="utf-8")
    scripts["create"].write_text(wrk.lua_script("POST", create_body, headers), encoding="utf-8")
    scripts["report"].write_text(wrk.lua_script("POST", report_body, headers), encoding="utf-8")
    bare_base = f"http://127.0.0.1:{bare_port}/bare"
    subscriptions_url = f"{hookline.base_url}/api/v0/webhooks/subscriptions.json"
    targets = {
        "list": (subscriptions_url, f"{bare_base}/subscriptions"),
        "create": (subscriptions_url, f"{bare_base}/subscriptions"),
        "report": (f"{hookline.base_url}/api/v0/webhooks/events.json", f"{bare_base}/events"),
    }
    figures: list[Figure] = []
    try:
        # List before create: otherwise the list would grow with every created subscription.
        for operation, label in zip(("list", "create", "report"), operations, strict=True):
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
                + OPERATION_NOTES[operation]
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
                    target=f">= {API_TARGET} x bare" if operation != "report" else "(context)",
                    passed=(at_least(ratio, API_TARGET) if errors == 0 else False) if operation != "report" else None,
                    note=note,
                )
            )
    finally:
        hookline.stop()
    return figures
