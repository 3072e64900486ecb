"""Client credentials end to end, the CLI's promises, and first start."""

from __future__ import annotations

import re
import signal

import requests

from tests.acceptance.conftest import Api
from tests.support import Receiver, Server, cli, hookline_env, start_server


def test_client_credentials_flow_end_to_end(server: Server, receiver: Receiver) -> None:
    cli(server.env, "users", "create", "--name", "Service Owner", "--email", "svc@example.com", check=False)
    printed = cli(server.env, "apps", "create", "--name", "crm-sync", "--user", "svc@example.com").stdout
    client_id = re.search(r"client_id=(\S+)", printed).group(1)  # type: ignore[union-attr]
    client_secret = re.search(r"client_secret=(\S+)", printed).group(1)  # type: ignore[union-attr]

    answer = requests.post(
        f"{server.base_url}/oauth2/v0/token",
        auth=(client_id, client_secret),
        data={"grant_type": "client_credentials", "scope": "read(all) write(webhooks)", "expires_in": "3600"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    granted = answer.json()
    assert granted["token_type"] == "bearer"
    assert granted["expires_in"] == 3600
    assert granted["deployment"] == "default"
    assert {"access_token", "deployment_name", "deployment_uri", "account_id"} <= set(granted)

    service = Api(server.base_url, granted["access_token"])
    created = service.subscribe(receiver.url("/oauth"), "create_company")
    assert created["user"]["email"] == "svc@example.com"
    info = service.get("/api/v0/tokeninfo").json()["response"]
    assert info["deployment"] == "default"
    assert "write(webhooks)" in info["scope"]


def test_token_endpoint_errors_follow_oauth(server: Server) -> None:
    wrong = requests.post(
        f"{server.base_url}/oauth2/v0/token",
        auth=("hlc_nope", "nope"),
        data={"grant_type": "client_credentials"},
        timeout=10,
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    missing_grant = requests.post(f"{server.base_url}/oauth2/v0/token", auth=("a", "b"), data={}, timeout=10)
    assert missing_grant.status_code == 400
    assert missing_grant.json()["error"] == "invalid_request"


def test_unsupported_grant_and_scope_beyond_the_app(server: Server) -> None:
    cli(server.env, "users", "create", "--name", "Reader", "--email", "reader@example.com", check=False)
    printed = cli(
        server.env, "apps", "create", "--name", "reader", "--user", "reader@example.com", "--scope", "read(webhooks)"
    ).stdout
    client_id = re.search(r"client_id=(\S+)", printed).group(1)  # type: ignore[union-attr]
    client_secret = re.search(r"client_secret=(\S+)", printed).group(1)  # type: ignore[union-attr]
    password = requests.post(
        f"{server.base_url}/oauth2/v0/token",
        auth=(client_id, client_secret),
        data={"grant_type": "password"},
        timeout=10,
    )
    assert password.status_code == 400
    assert password.json()["error"] == "unsupported_grant_type"
    greedy = requests.post(
        f"{server.base_url}/oauth2/v0/token",
        auth=(client_id, client_secret),
        data={"grant_type": "client_credentials", "scope": "write(all)"},
        timeout=10,
    )
    assert greedy.status_code == 400
    assert greedy.json()["error"] == "invalid_scope"


def test_tokens_create_prints_only_the_token(server: Server) -> None:
    done = cli(server.env, "tokens", "create", "--user", "admin@localhost", "--admin")
    token = done.stdout.strip()
    assert re.fullmatch(r"hlt_[A-Za-z0-9_\-]+", token)
    assert Api(server.base_url, token).get("/api/v0/webhooks/subscriptions/types").status_code == 200


def test_subscriptions_list_shows_a_table(admin: Api, server: Server, receiver: Receiver) -> None:
    sid = admin.subscribe(receiver.url("/table"), "update_sale")["subscription_id"]
    shown = cli(server.env, "subscriptions", "list").stdout
    assert sid in shown
    assert "update_sale" in shown


def test_cli_errors_are_clear(server: Server) -> None:
    done = cli(server.env, "tokens", "create", "--user", "nobody@example.com", check=False)
    assert done.returncode != 0
    assert "no user" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_first_start_creates_admin_and_prints_token_and_urls(tmp_path: object) -> None:
    from pathlib import Path

    store = Path(str(tmp_path)) / "fresh.db"
    started = start_server(hookline_env(f"sqlite:///{store}"))
    try:
        token = started.admin_token()
        assert token
        assert "/api/v0/webhooks/subscriptions" in started.output
        assert "/webhooks" in started.output
        assert Api(started.base_url, token).get("/api/v0/webhooks/subscriptions").status_code == 200
    finally:
        assert started.stop(signal.SIGTERM) == 0
    again = start_server(hookline_env(f"sqlite:///{store}"))
    try:
        assert again.admin_token() is None, "a second start must not mint another admin token"
    finally:
        assert again.stop(signal.SIGINT) == 0


def test_rate_limit_headers_and_429(tmp_path: object) -> None:
    from pathlib import Path

    started = start_server(hookline_env(f"sqlite:///{Path(str(tmp_path)) / 'limited.db'}", rate_limit_per_hour="3"))
    try:
        api = Api(started.base_url, started.admin_token())
        answers = [api.get("/api/v0/webhooks/subscriptions/types") for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[0].headers["X-RateLimit-Limit"] == "3"
        assert answers[2].headers["X-RateLimit-Remaining"] == "0"
        assert answers[3].json()["meta"]["status"] == "too_many_requests"
        assert int(answers[3].headers["Retry-After"]) > 0
    finally:
        assert started.stop(signal.SIGTERM) == 0


def test_a_client_can_revoke_its_token(server: Server) -> None:
    cli(server.env, "users", "create", "--name", "Revoker", "--email", "revoker@example.com", check=False)
    printed = cli(server.env, "apps", "create", "--name", "revoker", "--user", "revoker@example.com").stdout
    client = (re.search(r"client_id=(\S+)", printed).group(1), re.search(r"client_secret=(\S+)", printed).group(1))  # type: ignore[union-attr]
    token = requests.post(
        f"{server.base_url}/oauth2/v0/token", auth=client, data={"grant_type": "client_credentials"}, timeout=10
    ).json()["access_token"]
    assert Api(server.base_url, token).get("/api/v0/tokeninfo").status_code == 200
    revoked = requests.post(f"{server.base_url}/oauth2/v0/revoke", auth=client, data={"token": token}, timeout=10)
    assert revoked.status_code == 200
    assert Api(server.base_url, token).get("/api/v0/tokeninfo").status_code == 401
