"""Run wrk (Debian's `wrk` package) as the load generator in its own process, and read its figures."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

WRK_EXTRA_SECONDS = 15.0
REQUESTS_PER_SECOND_PATTERN = re.compile(r"Requests/sec:\s+([0-9.]+)")
STATUS_REPORT_PREFIX = "STATUS "


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    requests_per_second: float
    non_2xx_responses: int
    total_requests: int
    output: str


def wrk_path() -> str | None:
    """The wrk executable, or None when it is not installed (`apt-get install -y wrk`)."""
    return shutil.which("wrk")


def lua_script(method: str, body: str | None, headers: dict[str, str]) -> str:
    """A wrk Lua script sending `method` with `body` and `headers`, and reporting 2xx vs other answers at the end."""
    lines = [f"wrk.method = {json.dumps(method)}"]
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(body)}")
    for name, value in headers.items():
        lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}")
    # Each wrk thread has its own Lua state; `done` sees only the summary, so count non-2xx per thread and
    # gather them through the threads table (wrk's documented pattern).
    lines += [
        "local threads = {}",
        "function setup(thread) table.insert(threads, thread) end",
        "function init(args) bad = 0 end",
        "function response(status, headers, body) if status < 200 or status > 299 then bad = bad + 1 end end",
        "function done(summary, latency, requests)",
        "  local total_bad = 0",
        "  for _, thread in ipairs(threads) do total_bad = total_bad + thread:get('bad') end",
        f"  io.write('{STATUS_REPORT_PREFIX}' .. total_bad .. ' ' .. summary.requests .. '\\n')",
        "end",
    ]
    return "\n".join(lines) + "\n"


async def run_wrk(
    url: str, duration_seconds: float, connections: int, script_path: Path | None = None, threads: int = 1
) -> WrkResult:
    """Run wrk against `url` for `duration_seconds` (killed by PID if it overstays) and parse its figures."""
    executable = wrk_path()
    if executable is None:
        raise FileNotFoundError("wrk is not installed (apt-get install -y wrk)")
    duration = max(1, round(duration_seconds))
    command = [executable, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s"]
    if script_path is not None:
        command += ["-s", str(script_path)]
    command.append(url)
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        stdout, _ = await asyncio.wait_for(process.communicate(), timeout=duration + WRK_EXTRA_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    output = stdout.decode(errors="replace")
    match = REQUESTS_PER_SECOND_PATTERN.search(output)
    if process.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed (exit {process.returncode}): {output[-1000:]}")
    non_2xx = 0
    total = 0
    for line in output.splitlines():
        if line.startswith(STATUS_REPORT_PREFIX):
            _, bad, requests = line.split()
            non_2xx, total = int(bad), int(requests)
    return WrkResult(float(match.group(1)), non_2xx, total, output)
