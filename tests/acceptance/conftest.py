"""Acceptance fixtures: a real `hookline serve` per module and store kind, driven over HTTP."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import drop_postgres_database, fresh_postgres_url
from tests.support import Receiver, Server, cli, hookline_env, start_server


@dataclass
class Api:
    """A client for one token against a running server."""

    base_url: str
    token: str | None

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send a request with this token as a Bearer header."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return requests.request(method, f"{self.base_url}{path}", headers=headers, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        """GET."""
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        """POST."""
        return self.call("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        """DELETE."""
        return self.call("DELETE", path, **kwargs)

    def subscribe(self, trigger_url: str, event_id: str = "assign_task", **fields: Any) -> dict[str, Any]:
        """Create a subscription (JSON body) and answer it; fails the test unless 201."""
        answer = self.post(
            "/api/v0/webhooks/subscriptions", json={"trigger_url": trigger_url, "event_id": event_id, **fields}
        )
        assert answer.status_code == 201, answer.text
        subscription: dict[str, Any] = answer.json()["response"]["subscription"]
        return subscription


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh store for this module: an SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('store') / 'hookline.db'}"
        return
    template: str = request.getfixturevalue("postgres_template")
    url = fresh_postgres_url(template)
    yield url
    drop_postgres_database(url)


@pytest.fixture(scope="module")
def server(store_url: str) -> Iterator[Server]:
    """`hookline serve` on this module's store; stopped with SIGTERM (which must exit 0)."""
    running = start_server(hookline_env(store_url, retry_schedule_seconds="[0.2, 0.2]"))
    yield running
    code = running.stop(signal.SIGTERM)
    assert code == 0, running.output


@pytest.fixture(scope="module")
def admin(server: Server) -> Api:
    """The first-start admin token of the default deployment."""
    token = server.admin_token()
    assert token, f"serve printed no admin token:\n{server.output}"
    return Api(server.base_url, token)


@pytest.fixture(scope="module")
def receiver(store_url: str) -> Iterator[Receiver]:
    """A recording HTTP receiver on 127.0.0.1, fresh for each store kind."""
    del store_url
    running = Receiver()
    yield running
    running.close()


def make_user_token(server: Server, email: str, *extra: str, deployment: str = "default") -> str:
    """Create a user (if needed) and issue a token for it with the real CLI."""
    cli(
        server.env,
        "users",
        "create",
        "--deployment",
        deployment,
        "--name",
        email.split("@")[0],
        "--email",
        email,
        check=False,
    )
    return cli(server.env, "tokens", "create", "--deployment", deployment, "--user", email, *extra).stdout.strip()


def tmp_config(tmp: Path, text: str) -> Path:
    """Write a config file."""
    path = tmp / "hookline.yml"
    path.write_text(text, encoding="utf-8")
    return path
