"""The subscriptions API over real HTTP, in JSON, YAML and XML, against a real `hookline serve`."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import yaml

from tests.acceptance.conftest import Api
from tests.support import Receiver

SUBSCRIPTION_FIELDS = (
    "subscription_id",
    "event_id",
    "trigger_url",
    "content_type",
    "trigger_table",
    "trigger_type",
    "user_id",
    "user_deployment",
)
REFERENCE_EVENT_IDS = {
    "assign_task": ("task", "update"),
    "unassign_task": ("task", "update"),
    "create_task": ("task", "create"),
    "create_quote": ("quote", "create"),
    "create_request": ("request", "create"),
    "update_request_status": ("request", "update"),
    "create_invoice_pdf": ("invoice", "create"),
    "create_purchase_pdf": ("purchase", "create"),
    "create_issue": ("issue", "create"),
    "update_issue": ("issue", "update"),
    "create_contact": ("contact", "create"),
    "update_contact": ("contact", "update"),
    "create_company": ("company", "create"),
    "update_company": ("company", "update"),
    "create_invoice": ("invoice", "create"),
    "update_invoice": ("invoice", "update"),
    "delete_invoice": ("invoice", "delete"),
    "create_sale": ("sale", "create"),
    "update_sale": ("sale", "update"),
    "delete_activity": ("activity", "delete"),
}


def _xml_subscriptions(text: bytes) -> list[dict[str, str]]:
    root = ET.fromstring(text)
    assert root.tag == "data"
    container = root.find("response/subscriptions")
    assert container is not None
    return [dict(item.attrib) for item in container]


def _as_strings(items: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{key: str(item[key]) for key in SUBSCRIPTION_FIELDS} for item in items]


def test_create_list_get_delete_in_all_three_formats(admin: Api, receiver: Receiver) -> None:
    created_answer = admin.post(
        "/api/v0/webhooks/subscriptions",
        json={"trigger_url": receiver.url("/formats"), "event_id": "assign_task", "secret": "s3cret"},
    )
    assert created_answer.status_code == 201
    created = created_answer.json()
    assert created["meta"] == {
        "status": "ok_created",
        "message": "A resource was successfully created.",
        "more_info": "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes#ok_created",
    }
    subscription = created["response"]["subscription"]
    assert len(subscription["subscription_id"]) == 24
    assert all(ch in "0123456789abcdef" for ch in subscription["subscription_id"])
    assert subscription["content_type"] == "application/x-www-form-urlencoded"
    assert (subscription["trigger_table"], subscription["trigger_type"]) == ("task", "update")
    assert subscription["user_deployment"] == "default"
    assert subscription["user"]["email"] == "admin@localhost"
    assert "s3cret" not in created_answer.text
    sid = subscription["subscription_id"]

    as_json = admin.get("/api/v0/webhooks/subscriptions.json")
    as_yaml = admin.get("/api/v0/webhooks/subscriptions.yml")
    as_xml = admin.get("/api/v0/webhooks/subscriptions.xml")
    assert as_json.headers["content-type"].startswith("application/json")
    assert "yaml" in as_yaml.headers["content-type"]
    assert "xml" in as_xml.headers["content-type"]
    from_json = as_json.json()["response"]["subscriptions"]
    from_yaml = yaml.safe_load(as_yaml.content)["response"]["subscriptions"]
    from_xml = _xml_subscriptions(as_xml.content)
    assert sid in {s["subscription_id"] for s in from_json}
    assert _as_strings(from_json) == _as_strings(from_yaml) == from_xml_subset(from_xml)
    users = as_json.json()["response"]["subscriptions_users"]
    assert {"id", "name", "email"} <= set(users[0])
    assert yaml.safe_load(as_yaml.content)["meta"]["status"] == "ok"
    assert ET.fromstring(as_xml.content).find("meta").attrib["status"] == "ok"  # type: ignore[union-attr]

    one = admin.get(f"/api/v0/webhooks/subscriptions/{sid}")
    assert one.status_code == 200
    assert one.json()["response"]["subscription"]["trigger_url"] == receiver.url("/formats")
    one_xml = ET.fromstring(admin.get(f"/api/v0/webhooks/subscriptions/{sid}.xml").content)
    assert one_xml.find("response/subscription").attrib["subscription_id"] == sid  # type: ignore[union-attr]

    deleted = admin.delete(f"/api/v0/webhooks/subscriptions/{sid}.yml")
    assert deleted.status_code == 200
    assert yaml.safe_load(deleted.content)["meta"]["status"] == "ok"
    listed_after = admin.get("/api/v0/webhooks/subscriptions").json()["response"]["subscriptions"]
    assert sid not in {s["subscription_id"] for s in listed_after}
    gone = admin.get(f"/api/v0/webhooks/subscriptions/{sid}")
    assert gone.status_code == 400
    assert gone.json()["meta"]["status"] == "invalid_request"


def from_xml_subset(items: list[dict[str, str]]) -> list[dict[str, str]]:
    """XML attributes restricted to the fields compared across formats."""
    return [{key: item[key] for key in SUBSCRIPTION_FIELDS} for item in items]


def test_types_lists_the_catalogue_in_all_formats(admin: Api) -> None:
    as_json = admin.get("/api/v0/webhooks/subscriptions/types").json()["response"]["types"]
    as_yaml = yaml.safe_load(admin.get("/api/v0/webhooks/subscriptions/types.yml").content)["response"]["types"]
    xml_root = ET.fromstring(admin.get("/api/v0/webhooks/subscriptions/types.xml").content)
    as_xml = [dict(item.attrib) for item in xml_root.find("response/types")]  # type: ignore[union-attr]
    assert len(as_json) == 22
    assert as_json == as_yaml == as_xml
    by_id = {t["event_id"]: (t["trigger_table"], t["trigger_type"]) for t in as_json}
    for event_id, table_and_type in REFERENCE_EVENT_IDS.items():
        assert by_id[event_id] == table_and_type
    assert all(t["event_title"] for t in as_json)


def test_format_headers_select_the_format(admin: Api) -> None:
    by_accept_type = admin.get("/api/v0/webhooks/subscriptions/types", headers={"Accept-Type": "text/xml"})
    assert ET.fromstring(by_accept_type.content).tag == "data"
    by_accept = admin.get("/api/v0/webhooks/subscriptions/types", headers={"Accept": "text/x-yaml"})
    assert yaml.safe_load(by_accept.content)["meta"]["status"] == "ok"
    plain = admin.get("/api/v0/webhooks/subscriptions/types")
    assert plain.json()["meta"]["status"] == "ok"


def test_form_body_create_and_content_type_choice(admin: Api, receiver: Receiver) -> None:
    answer = admin.post(
        "/api/v0/webhooks/subscriptions.xml",
        data={"trigger_url": receiver.url("/form"), "event_id": "create_quote", "content_type": "application/json"},
    )
    assert answer.status_code == 201
    subscription = ET.fromstring(answer.content).find("response/subscription")
    assert subscription is not None
    assert subscription.attrib["content_type"] == "application/json"
    assert subscription.attrib["trigger_table"] == "quote"


def test_form_fields_declared_as_json_are_accepted(admin: Api, receiver: Receiver) -> None:
    answer = admin.post(
        "/api/v0/webhooks/subscriptions",
        data=f"trigger_url={receiver.url('/liberal')}&event_id=create_request",
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["response"]["subscription"]["event_id"] == "create_request"


def test_paging_with_limit_page_and_offset(admin: Api, receiver: Receiver) -> None:
    ids = [admin.subscribe(receiver.url(f"/page{i}"), "create_task")["subscription_id"] for i in range(5)]
    everything = [
        s["subscription_id"] for s in admin.get("/api/v0/webhooks/subscriptions").json()["response"]["subscriptions"]
    ]
    assert everything[-5:] == ids
    total = len(everything)
    first_two = admin.get("/api/v0/webhooks/subscriptions", params={"_limit": 2}).json()["response"]["subscriptions"]
    assert [s["subscription_id"] for s in first_two] == everything[:2]
    page_one = admin.get("/api/v0/webhooks/subscriptions", params={"_limit": 2, "_page": 1}).json()
    assert [s["subscription_id"] for s in page_one["response"]["subscriptions"]] == everything[2:4]
    by_offset = admin.get("/api/v0/webhooks/subscriptions", params={"_offset": total - 1}).json()
    assert [s["subscription_id"] for s in by_offset["response"]["subscriptions"]] == everything[-1:]


def test_suppress_flags_shape_the_envelope(admin: Api) -> None:
    quiet = admin.get("/api/v0/webhooks/subscriptions/types", params={"_suppress_message": 1}).json()
    assert quiet["meta"] == {"status": "ok"}
    no_meta = admin.get("/api/v0/webhooks/subscriptions/types", params={"_suppress_meta": 1}).json()
    assert "meta" not in no_meta
    assert no_meta["response"]["types"]
    missing = admin.get("/api/v0/webhooks/subscriptions/" + "0" * 24, params={"_suppress_http_status": 1})
    assert missing.status_code == 200
    assert missing.json()["meta"]["response_code"] == 400
    assert missing.json()["meta"]["status"] == "invalid_request"


def test_openapi_document_is_served(admin: Api) -> None:
    document = admin.get("/openapi.json").json()
    assert "/api/v0/webhooks/subscriptions" in document["paths"]
    assert "/oauth2/v0/token" in document["paths"]
