"""Child processes of a benchmark run: start them, read the port they print, measure them, stop them by PID."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
CONTROL_TIMEOUT_SECONDS = 10.0


@dataclass
class ChildProcess:
    """A process this run started; stopped by its PID only, SIGTERM then SIGKILL."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path | None = None
    stopped: bool = field(default=False, init=False)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    def is_running(self) -> bool:
        """Whether the child has not exited yet."""
        return self.process.poll() is None

    def peak_rss_bytes(self) -> int | None:
        """Peak resident set size so far (VmHWM from /proc), or None when the process is gone."""
        return _proc_status_bytes(self.pid, "VmHWM")

    def rss_bytes(self) -> int | None:
        """Current resident set size (VmRSS from /proc), or None when the process is gone."""
        return _proc_status_bytes(self.pid, "VmRSS")

    def stop(self, timeout_seconds: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM, wait up to `timeout_seconds`, then SIGKILL; the exit code."""
        if self.stopped:
            return self.process.returncode
        self.stopped = True
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_seconds)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.process.send_signal(signal.SIGKILL)
                self.process.wait(timeout=timeout_seconds)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return self.process.returncode

    def log_tail(self, max_chars: int = 2000) -> str:
        """The end of the child's log file, for error messages."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-max_chars:]


def _proc_status_bytes(pid: int, key: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024  # the kernel reports kB
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds the process has used so far (from /proc/PID/stat), or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # after the command name, which may contain spaces
    user_ticks, system_ticks = int(fields[11]), int(fields[12])
    return (user_ticks + system_ticks) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy since boot (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds used by this process and by its children that have been waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class ForeignLoad:
    """Measures how many cores processes outside this run kept busy (other people's work skews every figure)."""

    live_children: list[int]
    started_wall: float = 0.0
    started_busy: float = 0.0
    started_own: float = 0.0

    def _own(self) -> float:
        return own_cpu_seconds() + sum(cpu_seconds(pid) or 0.0 for pid in self.live_children)

    def start(self) -> None:
        """Take the first reading."""
        self.started_wall = time.monotonic()
        self.started_busy = machine_busy_seconds()
        self.started_own = self._own()

    def cores(self) -> float:
        """Average cores busy with other processes since start() (call after this run's children were reaped)."""
        wall = time.monotonic() - self.started_wall
        if wall <= 0:
            return 0.0
        foreign = (machine_busy_seconds() - self.started_busy) - (self._own() - self.started_own)
        return max(0.0, foreign / wall)


def python_executable() -> str:
    """The interpreter running the benchmark (the project's venv when run as documented)."""
    return sys.executable


def read_first_line(process: subprocess.Popen[bytes], timeout_seconds: float) -> str:
    """The first line the child prints on stdout, waiting at most `timeout_seconds`."""
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_seconds
    collected = b""
    try:
        while b"\n" not in collected:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no line on stdout within {timeout_seconds} s")
            if not selector.select(timeout=remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"the child exited (code {process.poll()}) before printing a line")
            collected += chunk
    finally:
        selector.close()
    return collected.split(b"\n", 1)[0].decode().strip()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, timeout_seconds: float, child: ChildProcess | None = None) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if child is not None and not child.is_running():
            raise RuntimeError(f"{child.name} exited (code {child.process.returncode}): {child.log_tail()}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout_seconds} s")


@dataclass
class Sink:
    """A running bench/sink.py process and its control endpoint."""

    child: ChildProcess
    port: int

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    async def _control(self, session: aiohttp.ClientSession, method: str, path: str) -> object:
        timeout = aiohttp.ClientTimeout(total=CONTROL_TIMEOUT_SECONDS)
        async with session.request(method, f"{self.base_url}/_sink/{path}", timeout=timeout) as response:
            response.raise_for_status()
            return await response.json()

    async def stats(self, session: aiohttp.ClientSession) -> dict[str, object]:
        """The sink's counters: ok, hung, first_at, last_at (time.monotonic), recording, arrivals."""
        document = await self._control(session, "GET", "stats")
        assert isinstance(document, dict)
        return document

    async def ok_count(self, session: aiohttp.ClientSession) -> int:
        """How many requests the sink has answered 200."""
        count = (await self.stats(session))["ok"]
        assert isinstance(count, int)
        return count

    async def reset(self, session: aiohttp.ClientSession) -> None:
        """Zero the counters and forget recorded arrivals."""
        await self._control(session, "POST", "reset")

    async def record(self, session: aiohttp.ClientSession, on: bool) -> None:
        """Start or stop timestamping arrivals."""
        await self._control(session, "POST", "record/on" if on else "record/off")

    async def arrivals(self, session: aiohttp.ClientSession) -> list[tuple[float, object]]:
        """Every recorded arrival as (time.monotonic() at arrival, payload id)."""
        document = await self._control(session, "GET", "arrivals")
        assert isinstance(document, list)
        return [(float(arrived_at), object_id) for arrived_at, object_id in document]

    async def wait_for_ok_count(
        self,
        session: aiohttp.ClientSession,
        expected: int,
        timeout_seconds: float,
        path: str | None = None,
        poll_seconds: float = 0.02,
    ) -> int:
        """Poll until the sink answered `expected` requests (to `path` only, when given) or the timeout; how many."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            stats = await self.stats(session)
            ok = self.ok_count_of(stats, path)
            if ok >= expected or time.monotonic() >= deadline:
                return ok

            await asyncio.sleep(poll_seconds)

    @staticmethod
    def ok_count_of(stats: dict[str, object], path: str | None) -> int:
        """The answered count in `stats`: all of them, or those to one path."""
        if path is None:
            ok = stats["ok"]
        else:
            by_path = stats["ok_by_path"]
            assert isinstance(by_path, dict)
            ok = by_path.get(path, 0)
        assert isinstance(ok, int)
        return ok


def start_sink(log_dir: Path, mode: str = "ok", name: str = "sink") -> Sink:
    """Start bench/sink.py in its own process and wait for the port it prints."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [python_executable(), str(BENCH_DIR / "sink.py"), "--port", "0", "--mode", mode],
            stdout=subprocess.PIPE,
            stderr=log_file,
            cwd=REPO_DIR,
        )
    child = ChildProcess(name, process, log_path)
    try:
        port = int(read_first_line(process, STARTUP_TIMEOUT_SECONDS))
    except BaseException:
        child.stop()
        raise
    return Sink(child, port)
