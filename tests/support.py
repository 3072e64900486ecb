"""Test helpers that drive real processes: the `hookline` CLI and server, and a recording HTTP receiver."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

HOOKLINE = str(Path(sys.executable).with_name("hookline"))
STARTUP_TIMEOUT_SECONDS = 30.0
TOKEN_PATTERN = re.compile(r"^hlt_[A-Za-z0-9_\-]+$", re.MULTILINE)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def hookline_env(database_url: str, **settings: str) -> dict[str, str]:
    """The environment for a hookline process: this store, loopback delivery allowed, plus any HOOKLINE_* settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HOOKLINE_")}
    env["HOOKLINE_DATABASE_URL"] = database_url
    env["HOOKLINE_SSRF_ALLOW_NETWORKS"] = '["127.0.0.0/8", "::1/128"]'
    env["HOOKLINE_LOG_LEVEL"] = "warning"
    env.update({f"HOOKLINE_{key.upper()}": value for key, value in settings.items()})
    return env


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real `hookline` command line."""
    done = subprocess.run([HOOKLINE, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"hookline {' '.join(args)} failed ({done.returncode}): {done.stderr}{done.stdout}")
    return done


@dataclass
class Server:
    """A running `hookline serve` (or `hookline worker`) subprocess."""

    process: subprocess.Popen[str]
    base_url: str
    env: dict[str, str]
    output_lines: list[str] = field(default_factory=list)
    pump: threading.Thread | None = None

    @property
    def output(self) -> str:
        """Everything the process printed so far."""
        return "".join(self.output_lines)

    def admin_token(self) -> str | None:
        """The one-time admin token printed at first start, if any."""
        match = TOKEN_PATTERN.search(self.output)
        return match.group(0) if match else None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the process and wait for it to exit; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise AssertionError(f"hookline did not exit within {timeout}s of signal {sig}") from None
        finally:
            self._close_output()

    def _close_output(self) -> None:
        if self.process.poll() is not None and self.pump is not None:
            self.pump.join(timeout=5)
            if self.process.stdout is not None:
                self.process.stdout.close()

    def kill(self) -> None:
        """SIGKILL: a crash, no chance to clean up."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self._close_output()


def _pump(stream: Any, sink: list[str]) -> None:
    for line in iter(stream.readline, ""):
        sink.append(line)


def start_process(args: list[str], env: dict[str, str], base_url: str) -> Server:
    """Start a hookline process and collect its output in the background."""
    process = subprocess.Popen(
        [HOOKLINE, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    server = Server(process, base_url, env)
    server.pump = threading.Thread(target=_pump, args=(process.stdout, server.output_lines), daemon=True)
    server.pump.start()
    return server


def start_server(env: dict[str, str], *extra_args: str) -> Server:
    """Start `hookline serve` on a free port and wait until it answers."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = start_process(["serve", "--host", "127.0.0.1", "--port", str(port), *extra_args], env, base_url)
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            server.stop()
            raise AssertionError(f"hookline serve exited with {server.process.returncode}:\n{server.output}")
        try:
            if requests.get(f"{base_url}/openapi.json", timeout=1).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    server.kill()
    raise AssertionError(f"hookline serve did not answer within {STARTUP_TIMEOUT_SECONDS}s:\n{server.output}")


@dataclass
class ReceivedRequest:
    """One request a Receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Behaviour:
    """How a Receiver answers a path: a status, a delay, a body, extra headers."""

    status: int = 200
    delay_seconds: float = 0.0
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every request and answers as told per path."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self.behaviours: dict[str, Behaviour] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                with receiver._lock:
                    receiver.requests.append(ReceivedRequest(path, dict(self.headers.items()), body, time.time()))
                    behaviour = receiver.behaviours.get(path, Behaviour())
                if behaviour.delay_seconds:
                    time.sleep(behaviour.delay_seconds)
                try:
                    self.send_response(behaviour.status)
                    for name, value in behaviour.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(behaviour.body)))
                    self.end_headers()
                    self.wfile.write(behaviour.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                return

        class QuietServer(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # a sender killed mid-request resets its connections: expected in crash tests

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        """The URL of a path on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    def behave(self, path: str, behaviour: Behaviour) -> None:
        """Answer requests to this path this way from now on."""
        with self._lock:
            self.behaviours[path] = behaviour

    def received(self, path: str | None = None) -> list[ReceivedRequest]:
        """What arrived (at one path, or anywhere)."""
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def wait_for(self, count: int, path: str | None = None, timeout: float = 20.0) -> list[ReceivedRequest]:
        """Wait until at least `count` requests arrived (at a path); fails the test on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received(path)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"expected {count} requests at {path or 'any path'}, got {len(self.received(path))}")

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
