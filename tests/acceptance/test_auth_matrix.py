"""Every endpoint x every kind of caller gives the documented answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.acceptance.conftest import Api, make_user_token
from tests.support import Receiver, Server, cli

CALLERS = ("none", "bad", "expired", "read_only", "other_user", "other_deployment", "admin")


@dataclass
class World:
    """The callers and the owner's subscription and delivery they are tried against."""

    apis: dict[str, Api]
    owner: Api
    subscription_id: str
    delivery_id: int
    receiver_url: str


@pytest.fixture(scope="module")
def world(server: Server, admin: Api, receiver: Receiver) -> World:
    owner_token = make_user_token(server, "alice@example.com")
    cli(server.env, "deployments", "create", "acme")
    apis = {
        "none": Api(server.base_url, None),
        "bad": Api(server.base_url, "hlt_not-a-real-token"),
        "expired": Api(server.base_url, make_user_token(server, "alice@example.com", "--expires-in", "0")),
        "read_only": Api(server.base_url, make_user_token(server, "alice@example.com", "--scope", "read(webhooks)")),
        "other_user": Api(server.base_url, make_user_token(server, "bob@example.com")),
        "other_deployment": Api(server.base_url, make_user_token(server, "carol@example.com", deployment="acme")),
        "admin": admin,
    }
    owner = Api(server.base_url, owner_token)
    subscription_id = owner.subscribe(receiver.url("/matrix"))["subscription_id"]
    dispatched = owner.post(f"/api/v0/webhooks/subscriptions/{subscription_id}/dispatch", data={"object_id": "1"})
    assert dispatched.status_code == 200, dispatched.text
    return World(apis, owner, subscription_id, dispatched.json()["response"]["delivery_id"], receiver.url("/matrix"))


# endpoint -> expected HTTP status per caller; 401 for none/bad/expired everywhere
EXPECTED: dict[str, dict[str, int]] = {
    "list": {"read_only": 200, "other_user": 200, "other_deployment": 200, "admin": 200},
    "types": {"read_only": 200, "other_user": 200, "other_deployment": 200, "admin": 200},
    "create": {"read_only": 403, "other_user": 201, "other_deployment": 201, "admin": 201},
    "get": {"read_only": 200, "other_user": 403, "other_deployment": 400, "admin": 200},
    "delete": {"read_only": 403, "other_user": 403, "other_deployment": 400, "admin": 200},
    "trigger": {"read_only": 403, "other_user": 403, "other_deployment": 400, "admin": 200},
    "dispatch": {"read_only": 403, "other_user": 403, "other_deployment": 400, "admin": 200},
    "deliveries": {"read_only": 200, "other_user": 403, "other_deployment": 400, "admin": 200},
    "delivery": {"read_only": 200, "other_user": 403, "other_deployment": 400, "admin": 200},
    "redeliver": {"read_only": 403, "other_user": 403, "other_deployment": 400, "admin": 201},
    "events": {"read_only": 403, "other_user": 403, "other_deployment": 403, "admin": 202},
    "tokeninfo": {"read_only": 200, "other_user": 200, "other_deployment": 200, "admin": 200},
}
META_STATUS = {
    200: "ok",
    201: "ok_created",
    202: "ok",
    400: "invalid_request",
    401: "invalid_client",
    403: "invalid_permission",
}


def _request(endpoint: str, api: Api, world: World) -> Any:
    sid, did = world.subscription_id, world.delivery_id
    base = "/api/v0/webhooks"
    if endpoint == "list":
        return api.get(f"{base}/subscriptions")
    if endpoint == "types":
        return api.get(f"{base}/subscriptions/types")
    if endpoint == "create":
        return api.post(f"{base}/subscriptions", json={"trigger_url": world.receiver_url, "event_id": "create_task"})
    if endpoint == "get":
        return api.get(f"{base}/subscriptions/{sid}")
    if endpoint == "delete":
        target = world.owner.subscribe(world.receiver_url)["subscription_id"]
        return api.delete(f"{base}/subscriptions/{target}")
    if endpoint == "trigger":
        return api.post(f"{base}/subscriptions/{sid}/trigger", json={"object_id": 7})
    if endpoint == "dispatch":
        return api.post(f"{base}/subscriptions/{sid}/dispatch", json={"object_id": 7})
    if endpoint == "deliveries":
        return api.get(f"{base}/subscriptions/{sid}/deliveries")
    if endpoint == "delivery":
        return api.get(f"{base}/deliveries/{did}")
    if endpoint == "redeliver":
        return api.post(f"{base}/deliveries/{did}/redeliver")
    if endpoint == "events":
        return api.post(f"{base}/events", json={"event_id": "create_quote", "object_id": 3})
    if endpoint == "tokeninfo":
        return api.get("/api/v0/tokeninfo")
    raise AssertionError(endpoint)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", sorted(EXPECTED))
def test_auth_matrix(endpoint: str, caller: str, world: World) -> None:
    answer = _request(endpoint, world.apis[caller], world)
    expected = EXPECTED[endpoint].get(caller, 401)
    assert answer.status_code == expected, answer.text
    body = answer.json()
    assert body["meta"]["status"] == META_STATUS[expected]
    if expected >= 400:
        assert body["response"] is None
        assert body["meta"]["message"]
    if endpoint == "list" and expected == 200:
        listed = {s["subscription_id"] for s in body["response"]["subscriptions"]}
        assert (world.subscription_id in listed) == (caller in ("admin", "read_only"))
        if caller == "other_deployment":
            assert all(s["user_deployment"] == "acme" for s in body["response"]["subscriptions"])
    if endpoint == "tokeninfo" and expected == 200:
        assert body["response"]["deployment"] == ("acme" if caller == "other_deployment" else "default")


def test_both_header_and_query_token_is_an_error(world: World) -> None:
    token = world.owner.token
    answer = world.owner.get("/api/v0/webhooks/subscriptions", params={"_bearer_token": token})
    assert answer.status_code == 400
    assert "authorization" in answer.json()["meta"]["message"]


def test_query_parameter_token_works(world: World) -> None:
    anonymous = Api(world.owner.base_url, None)
    answer = anonymous.get("/api/v0/webhooks/subscriptions", params={"_bearer_token": world.owner.token})
    assert answer.status_code == 200
    assert world.subscription_id in {s["subscription_id"] for s in answer.json()["response"]["subscriptions"]}
