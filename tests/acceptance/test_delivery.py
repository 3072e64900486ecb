"""Events in, signed deliveries out: bodies, headers and signatures checked with third-party verifiers."""

from __future__ import annotations

import base64
import itertools
import json
import time
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs

import pytest
import yaml
from gidgethub.sansio import validate_event
from standardwebhooks.webhooks import Webhook

from tests.acceptance.conftest import Api, make_user_token
from tests.support import Behaviour, Receiver, Server, cli

EVENTS = "/api/v0/webhooks/events"


def report(admin: Api, **event: object) -> dict[str, object]:
    """Report one event as the platform; answers the stored event."""
    answer = admin.post(EVENTS, json=event)
    assert answer.status_code == 202, answer.text
    stored: dict[str, object] = answer.json()["response"]["event"]
    return stored


def test_json_and_form_bodies_and_every_header(admin: Api, server: Server, receiver: Receiver) -> None:
    admin.subscribe(receiver.url("/json"), "create_quote", content_type="application/json", secret="top secret")
    admin.subscribe(receiver.url("/form"), "create_quote", secret="form secret")
    stored = report(admin, event_id="create_quote", object_id=42)
    assert stored["deliveries"] == 2

    [as_json] = receiver.wait_for(1, "/json")
    [as_form] = receiver.wait_for(1, "/form")
    resource_url = f"{server.base_url}/api/v0/quotes/42.json"
    assert as_json.body == json.dumps({"id": 42, "resource_url": resource_url}, separators=(",", ":")).encode()
    assert as_form.body == b"id=42&resource_url=" + resource_url.replace(":", "%3A").replace("/", "%2F").encode()
    assert parse_qs(as_form.body.decode()) == {"id": ["42"], "resource_url": [resource_url]}

    for got, secret, content_type in (
        (as_json, "top secret", "application/json"),
        (as_form, "form secret", "application/x-www-form-urlencoded"),
    ):
        assert got.headers["Content-Type"] == content_type
        assert got.headers["X-Accelo-Event"] == "create_quote"
        assert got.headers["User-Agent"].startswith("Hookline/")
        assert got.headers["X-Hookline-Delivery"].isdigit()
        assert got.headers["X-Hub-Signature"].startswith("sha1=")
        validate_event(got.body, signature=got.headers["X-Hub-Signature"], secret=secret)
        validate_event(got.body, signature=got.headers["X-Hub-Signature-256"], secret=secret)
        assert "webhook-id" not in {name.lower() for name in got.headers}


def test_no_secret_means_no_signature(admin: Api, receiver: Receiver) -> None:
    admin.subscribe(receiver.url("/unsigned"), "create_contact")
    report(admin, event_id="create_contact", object_id="c-7")
    [got] = receiver.wait_for(1, "/unsigned")
    assert "X-Hub-Signature" not in got.headers
    assert parse_qs(got.body.decode())["id"] == ["c-7"]


def test_delete_events_carry_no_resource_url(admin: Api, receiver: Receiver) -> None:
    admin.subscribe(receiver.url("/deleted"), "delete_invoice", content_type="application/json")
    report(admin, event_id="delete_invoice", object_id=9)
    [got] = receiver.wait_for(1, "/deleted")
    assert json.loads(got.body) == {"id": 9}


def test_standard_webhooks_headers_verify_with_the_reference_library(server: Server, receiver: Receiver) -> None:
    cli(server.env, "deployments", "create", "stdhooks", "--standard-webhooks")
    token = make_user_token(server, "std@example.com", "--admin", deployment="stdhooks")
    std_admin = Api(server.base_url, token)
    std_admin.subscribe(receiver.url("/std"), "update_company", content_type="application/json", secret="std-secret")
    report(std_admin, event_id="update_company", object_id=5)
    [got] = receiver.wait_for(1, "/std")
    headers = {name.lower(): value for name, value in got.headers.items()}
    assert headers["webhook-id"]
    verifier = Webhook(base64.b64encode(b"std-secret").decode())
    assert verifier.verify(got.body, headers) == {"id": 5, "resource_url": json.loads(got.body)["resource_url"]}
    validate_event(got.body, signature=headers["x-hub-signature"], secret="std-secret")


def test_user_ids_limit_the_fan_out(admin: Api, server: Server, receiver: Receiver) -> None:
    dora = Api(server.base_url, make_user_token(server, "dora@example.com"))
    eve = Api(server.base_url, make_user_token(server, "eve@example.com"))
    dora.subscribe(receiver.url("/dora"), "create_sale")
    eve.subscribe(receiver.url("/eve"), "create_sale")
    dora_id = dora.get("/api/v0/tokeninfo").json()["response"]["user"]["id"]
    stored = report(admin, event_id="create_sale", object_id=11, user_ids=[dora_id])
    assert stored["deliveries"] == 1
    receiver.wait_for(1, "/dora")
    report(admin, event_id="create_sale", object_id=12)
    receiver.wait_for(2, "/dora")
    assert len(receiver.wait_for(1, "/eve")) == 1


def test_idempotency_key_delivers_once(admin: Api, receiver: Receiver) -> None:
    admin.subscribe(receiver.url("/once"), "create_issue")
    first = report(admin, event_id="create_issue", object_id=1, idempotency_key="issue-1-created")
    again = report(admin, event_id="create_issue", object_id=1, idempotency_key="issue-1-created")
    assert again["id"] == first["id"]
    assert again["duplicate"] is True
    report(admin, event_id="create_issue", object_id=2)
    receiver.wait_for(2, "/once")
    assert sorted(parse_qs(r.body.decode())["id"][0] for r in receiver.received("/once")) == ["1", "2"]


def test_batch_of_events_is_accepted_and_delivered(admin: Api, receiver: Receiver) -> None:
    admin.subscribe(receiver.url("/batch"), "update_invoice", content_type="application/json")
    answer = admin.post(EVENTS, json={"events": [{"event_id": "update_invoice", "object_id": i} for i in range(50)]})
    assert answer.status_code == 202
    assert len(answer.json()["response"]["events"]) == 50
    got = receiver.wait_for(50, "/batch")
    assert sorted(json.loads(r.body)["id"] for r in got) == list(range(50))


def test_gone_removes_the_subscription_and_nothing_more_is_sent(admin: Api, receiver: Receiver) -> None:
    receiver.behave("/gone", Behaviour(status=410))
    sid = admin.subscribe(receiver.url("/gone"), "create_request")["subscription_id"]
    report(admin, event_id="create_request", object_id=1)
    receiver.wait_for(1, "/gone")
    deadline = time.monotonic() + 10
    while admin.get(f"/api/v0/webhooks/subscriptions/{sid}").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert admin.get(f"/api/v0/webhooks/subscriptions/{sid}").status_code == 400
    listed = admin.get(f"/api/v0/webhooks/subscriptions/{sid}/deliveries").json()["response"]["deliveries"]
    assert listed[0]["attempts"][0]["status_code"] == 410
    assert listed[0]["attempts"][0]["outcome"] == "gone"
    report(admin, event_id="create_request", object_id=2)
    marker = admin.subscribe(receiver.url("/after-gone"), "create_request")
    del marker
    report(admin, event_id="create_request", object_id=3)
    receiver.wait_for(1, "/after-gone")
    assert len(receiver.received("/gone")) == 1


def test_retries_follow_the_schedule_then_fail(admin: Api, receiver: Receiver) -> None:
    receiver.behave("/flaky", Behaviour(status=500, body=b"boom"))
    sid = admin.subscribe(receiver.url("/flaky"), "update_contact")["subscription_id"]
    report(admin, event_id="update_contact", object_id=1)
    got = receiver.wait_for(3, "/flaky")  # the first attempt and two retries: schedule [0.2, 0.2]
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(got)]
    assert all(gap >= 0.2 * 0.8 - 0.01 for gap in gaps), gaps
    assert len({r.headers["X-Hookline-Delivery"] for r in got}) == 1, "retries keep the delivery id"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        delivery = admin.get(f"/api/v0/webhooks/subscriptions/{sid}/deliveries").json()["response"]["deliveries"][0]
        if delivery["state"] == "failed":
            break
        time.sleep(0.05)
    assert delivery["state"] == "failed"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 500]
    assert delivery["attempts"][0]["response_excerpt"] == "boom"
    time.sleep(0.5)
    assert len(receiver.received("/flaky")) == 3


def test_trigger_dispatch_log_and_redeliver_in_all_formats(admin: Api, server: Server, receiver: Receiver) -> None:
    sid = admin.subscribe(receiver.url("/manual"), "create_company", content_type="application/json")["subscription_id"]
    other = admin.subscribe(receiver.url("/manual-other"), "create_company")["subscription_id"]
    del other
    base = f"/api/v0/webhooks/subscriptions/{sid}"

    dispatched = admin.post(f"{base}/dispatch.json", json={"object_id": 100})
    assert dispatched.status_code == 200
    assert dispatched.json()["response"]["status"] == 200
    assert len(receiver.received("/manual")) == 1
    assert receiver.received("/manual-other") == [], "dispatch reaches only this subscription"
    receiver.behave("/manual", Behaviour(status=418))
    as_yaml = yaml.safe_load(admin.post(f"{base}/dispatch.yml", data={"object_id": "101"}).content)
    assert as_yaml["response"]["status"] == 418
    receiver.behave("/manual", Behaviour(status=200))
    as_xml = ET.fromstring(admin.post(f"{base}/dispatch.xml", data={"object_id": "102"}).content)
    assert as_xml.find("response").attrib["status"] == "200"  # type: ignore[union-attr]

    triggered = admin.post(f"{base}/trigger.xml", data={"object_id": "200"})
    assert triggered.status_code == 200
    receiver.wait_for(4, "/manual")
    receiver.wait_for(1, "/manual-other")

    log_json = admin.get(f"{base}/deliveries").json()["response"]["deliveries"]
    assert [json.loads(r.body)["id"] for r in receiver.received("/manual")] == [100, 101, 102, 200]
    assert log_json[0]["object_id"] == "200", "newest first"
    assert log_json[2]["attempts"][0]["status_code"] == 418
    log_yaml = yaml.safe_load(admin.get(f"{base}/deliveries.yml").content)["response"]["deliveries"]
    assert [d["delivery_id"] for d in log_yaml] == [d["delivery_id"] for d in log_json]
    log_xml = ET.fromstring(admin.get(f"{base}/deliveries.xml").content).find("response/deliveries")
    assert [int(d.attrib["delivery_id"]) for d in log_xml] == [d["delivery_id"] for d in log_json]  # type: ignore[union-attr]
    paged = admin.get(f"{base}/deliveries", params={"_limit": 1, "_page": 1}).json()["response"]["deliveries"]
    assert [d["delivery_id"] for d in paged] == [log_json[1]["delivery_id"]]

    original = log_json[2]
    one = admin.get(f"/api/v0/webhooks/deliveries/{original['delivery_id']}.yml")
    assert yaml.safe_load(one.content)["response"]["delivery"]["attempts"][0]["status_code"] == 418
    redelivered = admin.post(f"/api/v0/webhooks/deliveries/{original['delivery_id']}/redeliver.json")
    assert redelivered.status_code == 201
    new = redelivered.json()["response"]["delivery"]
    assert new["redelivery_of"] == original["delivery_id"]
    got = receiver.wait_for(5, "/manual")[-1]
    assert json.loads(got.body)["id"] == 101
    assert got.headers["X-Hookline-Delivery"] == str(new["delivery_id"])


@pytest.mark.parametrize("fmt", ["json", "yml", "xml"])
def test_dispatch_to_a_dead_port_answers_null_status_with_the_error(admin: Api, fmt: str) -> None:
    from tests.support import free_port

    sid = admin.subscribe(f"http://127.0.0.1:{free_port()}/nobody", "create_task")["subscription_id"]
    answer = admin.post(f"/api/v0/webhooks/subscriptions/{sid}/dispatch.{fmt}", json={"object_id": 1})
    assert answer.status_code == 200
    if fmt == "json":
        response = answer.json()["response"]
        assert response["status"] is None
        assert response["error"]
    elif fmt == "yml":
        assert yaml.safe_load(answer.content)["response"]["status"] is None
    else:
        assert "status" not in ET.fromstring(answer.content).find("response").attrib  # type: ignore[union-attr]
