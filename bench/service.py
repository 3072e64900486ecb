"""Hookline as the benchmarks run it: a real `hookline serve` process on a fresh store, driven over HTTP.

Stores are prepared once per kind with the command line (`hookline migrate`, `deployments create`, `users create`,
`tokens create --admin`) and copied for each benchmark (SQLite: the backup API; PostgreSQL: CREATE DATABASE ...
TEMPLATE), so every benchmark starts from the same empty, migrated store with a known admin token.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench import procs

DEPLOYMENT_SLUG = "bench"
USER_EMAIL = "bench@localhost"
EVENT_ID = "assign_task"
WARMUP_EVENT_ID = "unassign_task"  # warm-up traffic goes to other subscriptions, so it never counts as measured
SUBSCRIPTION_SECRET = "bench-secret"  # same secret as the floor: both sign with sha1 and sha256
CLI_TIMEOUT_SECONDS = 120.0
SERVICE_STARTUP_TIMEOUT_SECONDS = 60.0
SERVICE_STOP_TIMEOUT_SECONDS = 5.0
API_TIMEOUT_SECONDS = 30.0
SERVICE_ENV = {
    "HOOKLINE_SSRF_ALLOW_NETWORKS": '["127.0.0.0/8"]',  # the sink is on loopback, refused by default
    "HOOKLINE_LOG_LEVEL": "warning",
}


def hookline_executable() -> str:
    """The `hookline` console script of the interpreter running the benchmark (else the one on PATH)."""
    beside = Path(sys.executable).parent / "hookline"
    if beside.exists():
        return str(beside)
    found = shutil.which("hookline")
    if found is None:
        raise FileNotFoundError("no `hookline` command: install the project (pip install -e .)")
    return found


def service_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of Hookline processes: this one's, the bench settings, then `extra`."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("HOOKLINE_")}
    environment.update(SERVICE_ENV)
    environment.update(extra or {})
    return environment


def run_cli(database_url: str, *arguments: str) -> str:
    """Run one `hookline` command against `database_url`; its stdout (raises with the output on failure)."""
    completed = subprocess.run(
        [hookline_executable(), *arguments, "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        env=service_env(),
        cwd=procs.REPO_DIR,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"hookline {' '.join(arguments)} failed ({completed.returncode}): {completed.stderr[-1500:]}"
        )
    return completed.stdout


def prepare_store(database_url: str) -> str:
    """Create the bench deployment, its user and an admin token (each command migrates first); the token."""
    run_cli(database_url, "deployments", "create", DEPLOYMENT_SLUG)
    run_cli(database_url, "users", "create", "--deployment", DEPLOYMENT_SLUG, "--name", "Bench", "--email", USER_EMAIL)
    output = run_cli(database_url, "tokens", "create", "--admin", "--deployment", DEPLOYMENT_SLUG, "--user", USER_EMAIL)
    return output.strip().splitlines()[-1].strip()


@dataclass(frozen=True)
class Store:
    """A fresh, prepared store for one benchmark."""

    kind: str  # "sqlite" or "postgresql"
    url: str
    token: str

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file (only for kind "sqlite")."""
        assert self.url.startswith("sqlite:///")
        return Path(self.url[len("sqlite:///") :])


def _database_url_with_name(url: str, name: str) -> str:
    base, _, _ = url.split("?", 1)[0].rpartition("/")
    return f"{base}/{name}"


@dataclass
class StoreFactory:
    """Makes fresh prepared stores by copying one template per kind; drops every PostgreSQL database it made."""

    work_dir: Path
    postgres_admin_url: str
    _sqlite_template: Store | None = None
    _postgres_template: Store | None = None
    _postgres_databases: list[str] = field(default_factory=list)
    _copies: int = 0
    _preparing: dict[str, concurrent.futures.Future[Store]] = field(default_factory=dict)
    _executor: concurrent.futures.ThreadPoolExecutor = field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="prepare")
    )

    def prepare_in_background(self, kinds: set[str]) -> None:
        """Start preparing the templates of these kinds now (the CLI takes seconds), while other work runs."""
        if "sqlite" in kinds and "sqlite" not in self._preparing:
            self._preparing["sqlite"] = self._executor.submit(self._prepare_sqlite_template)
        if "postgresql" in kinds and "postgresql" not in self._preparing and self.postgres_available() is None:
            self._preparing["postgresql"] = self._executor.submit(self._prepare_postgres_template)

    def wait_prepared(self) -> None:
        """Block until the templates being prepared are ready (or failed: the benchmark needing one will say)."""
        concurrent.futures.wait(list(self._preparing.values()), timeout=4 * CLI_TIMEOUT_SECONDS)

    def _prepare_sqlite_template(self) -> Store:
        url = f"sqlite:///{self.work_dir / 'template.db'}"
        return Store("sqlite", url, prepare_store(url))

    def _prepare_postgres_template(self) -> Store:
        name = self._create_database(None)
        url = _database_url_with_name(self.postgres_admin_url, name)
        return Store("postgresql", url, prepare_store(url))

    def _template(self, kind: str) -> Store:
        self.prepare_in_background({kind})
        if kind not in self._preparing:  # postgres_available() said no
            raise RuntimeError(self.postgres_available() or "PostgreSQL is unavailable")
        return self._preparing[kind].result(timeout=4 * CLI_TIMEOUT_SECONDS)

    def sqlite(self) -> Store:
        """A fresh SQLite store (a copy of the prepared template)."""
        if self._sqlite_template is None:
            self._sqlite_template = self._template("sqlite")
        self._copies += 1
        target = self.work_dir / f"store-{self._copies}.db"
        source = sqlite3.connect(self._sqlite_template.sqlite_path)
        destination = sqlite3.connect(target)
        try:
            source.backup(destination)
        finally:
            source.close()
            destination.close()
        return Store("sqlite", f"sqlite:///{target}", self._sqlite_template.token)

    def postgres_available(self) -> str | None:
        """None when the PostgreSQL server answers, else why not."""
        try:
            import psycopg

            with psycopg.connect(self.postgres_admin_url, connect_timeout=3):
                return None
        except Exception as exc:  # any failure to connect means "no server here"
            return f"no PostgreSQL at {self.postgres_admin_url} ({type(exc).__name__})"

    def postgres(self) -> Store:
        """A fresh PostgreSQL database (CREATE DATABASE ... TEMPLATE the prepared one)."""
        if self._postgres_template is None:
            self._postgres_template = self._template("postgresql")
        template_name = self._postgres_template.url.rpartition("/")[2]
        name = self._create_database(template_name)
        return Store(
            "postgresql", _database_url_with_name(self.postgres_admin_url, name), self._postgres_template.token
        )

    def _create_database(self, template: str | None) -> str:
        import psycopg

        name = f"hookline_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.postgres_admin_url, autocommit=True) as admin:
            if template is None:
                admin.execute(f'CREATE DATABASE "{name}"')
            else:
                admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self._postgres_databases.append(name)
        return name

    def drop(self, store: Store) -> None:
        """Drop a PostgreSQL copy now (SQLite copies go with the work folder)."""
        if store.kind != "postgresql":
            return
        name = store.url.rpartition("/")[2]
        self._drop_database(name)

    def _drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.postgres_admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self._postgres_databases:
            self._postgres_databases.remove(name)

    def close(self) -> None:
        """Drop every PostgreSQL database this factory made, the template last."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        for name in list(reversed(self._postgres_databases)):
            self._drop_database(name)


@dataclass
class Hookline:
    """A running `hookline serve` (or `worker`) process and how to call its API."""

    child: procs.ChildProcess
    port: int
    token: str
    healthy_subscriptions: int = 0  # how many subscriptions a benchmark pointed at the sink

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_headers(self) -> dict[str, str]:
        """The admin bearer token header."""
        return {"Authorization": f"Bearer {self.token}"}

    async def create_subscription(
        self, session: aiohttp.ClientSession, trigger_url: str, event_id: str = EVENT_ID
    ) -> str:
        """Create a JSON subscription with the bench secret; its subscription_id."""
        body = {
            "trigger_url": trigger_url,
            "event_id": event_id,
            "content_type": "application/json",
            "secret": SUBSCRIPTION_SECRET,
        }
        async with session.post(
            f"{self.base_url}/api/v0/webhooks/subscriptions.json",
            json=body,
            headers=self.auth_headers,
            timeout=aiohttp.ClientTimeout(total=API_TIMEOUT_SECONDS),
        ) as response:
            document = await response.json(content_type=None)
            if response.status != 201:
                raise RuntimeError(f"creating a subscription answered {response.status}: {document}")
        subscription_id: str = document["response"]["subscription"]["subscription_id"]
        return subscription_id

    async def report_events(
        self, session: aiohttp.ClientSession, object_ids: list[str], event_id: str = EVENT_ID
    ) -> float:
        """Report one event per object id (one request, a batch when more than one); time.monotonic() at the 202."""
        events = [{"event_id": event_id, "object_id": object_id} for object_id in object_ids]
        body = events[0] if len(events) == 1 else {"events": events}
        async with session.post(
            f"{self.base_url}/api/v0/webhooks/events.json",
            json=body,
            headers=self.auth_headers,
            timeout=aiohttp.ClientTimeout(total=API_TIMEOUT_SECONDS),
        ) as response:
            await response.read()
            answered_at = time.monotonic()
            if response.status != 202:
                raise RuntimeError(f"reporting events answered {response.status}: {(await response.text())[:500]}")
        return answered_at

    async def timed_get(self, session: aiohttp.ClientSession, path: str) -> float:
        """GET `path` with the admin token; seconds until the whole body was read (raises on non-200)."""
        started = time.perf_counter()
        async with session.get(
            f"{self.base_url}{path}",
            headers=self.auth_headers,
            timeout=aiohttp.ClientTimeout(total=API_TIMEOUT_SECONDS),
        ) as response:
            body = await response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                raise RuntimeError(f"GET {path} answered {response.status}: {body[:300]!r}")
        return elapsed

    def stop(self) -> int | None:
        """Stop the process (SIGTERM, then SIGKILL after a few seconds); the exit code."""
        return self.child.stop(SERVICE_STOP_TIMEOUT_SECONDS)


def start_hookline(
    log_dir: Path,
    store: Store,
    name: str,
    dispatcher: bool = True,
    extra_env: dict[str, str] | None = None,
) -> Hookline:
    """Start `hookline serve` on a free port of 127.0.0.1 and wait until its API answers."""
    port = procs.free_port()
    command = [
        hookline_executable(),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--database-url",
        store.url,
    ]
    if not dispatcher:
        command.append("--no-dispatcher")
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=service_env(extra_env),
            cwd=log_dir,
        )
    child = procs.ChildProcess(name, process, log_path)
    try:
        procs.wait_for_port(port, SERVICE_STARTUP_TIMEOUT_SECONDS, child)
    except BaseException:
        child.stop(SERVICE_STOP_TIMEOUT_SECONDS)
        raise
    return Hookline(child, port, store.token)
