"""The control panel at /webhooks, used the way people use it: in a real Chromium against the real server."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import csrf_token_of, screenshot, sign_in_with_token, signed_in_session
from tests.support import Behaviour, Receiver, Server, cli

EVENTS = "/api/v0/webhooks/events"
SUBSCRIPTIONS = "/api/v0/webhooks/subscriptions"
LOG_WAIT_SECONDS = 15.0
NARROW_VIEWPORT = {"width": 390, "height": 844}


def api(server: Server, token: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    """Call the API with a bearer token."""
    return requests.request(
        method, f"{server.base_url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30, **kwargs
    )


def make_user(server: Server, email: str) -> str:
    """A new user of the default deployment and a token for it, made with the real CLI."""
    cli(server.env, "users", "create", "--name", email.split("@")[0].title(), "--email", email)
    return cli(server.env, "tokens", "create", "--user", email).stdout.strip()


def subscribe(server: Server, token: str, trigger_url: str, event_id: str, **fields: str) -> str:
    """Create a subscription through the API; its id."""
    answer = api(
        server, token, "POST", SUBSCRIPTIONS, json={"trigger_url": trigger_url, "event_id": event_id, **fields}
    )
    assert answer.status_code == 201, answer.text
    subscription_id: str = answer.json()["response"]["subscription"]["subscription_id"]
    return subscription_id


def reload_until(page: Any, locator: Any, timeout: float = LOG_WAIT_SECONDS) -> None:
    """Reload the page until the locator shows up (the log fills in as the dispatcher works)."""
    deadline = time.monotonic() + timeout
    while locator.count() == 0:
        assert time.monotonic() < deadline, f"{locator} did not appear within {timeout}s"
        time.sleep(0.1)
        page.reload()


@pytest.mark.browser
def test_admin_signs_in_creates_tests_sees_log_redelivers_and_deletes(
    new_page: Any, panel_server: Server, admin_token: str, receiver: Receiver
) -> None:
    base = panel_server.base_url
    page = new_page()

    page.goto(f"{base}/webhooks")
    expect(page).to_have_url(re.compile(r"/webhooks/sign-in$"))
    screenshot(page, "01-sign-in")
    page.get_by_label("API token", exact=True).fill("hlt_not-a-real-token")
    page.get_by_role("button", name="Sign in with token").click()
    expect(page.locator("#token-error")).to_contain_text("not valid")
    page.get_by_label("API token", exact=True).fill(admin_token)
    page.get_by_role("button", name="Sign in with token").click()
    expect(page.get_by_role("status")).to_contain_text("Signed in as Administrator")
    expect(page.get_by_text("No subscriptions yet")).to_be_visible()
    screenshot(page, "02-subscriptions-empty")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="New subscription").click()
    page.get_by_label("Event").select_option("assign_task")
    page.get_by_label("URL", exact=True).fill("example.com/no-scheme")
    page.get_by_role("button", name="Create subscription").click()
    expect(page.locator("#trigger_url-error")).to_contain_text("absolute http(s) URL")
    expect(page.get_by_label("URL", exact=True)).to_have_attribute("aria-invalid", "true")
    screenshot(page, "03-new-subscription-errors")
    page.get_by_label("URL", exact=True).fill(receiver.url("/panel"))
    page.get_by_label("JSON").check()
    page.get_by_label("Secret").fill("panel secret")
    page.get_by_role("button", name="Create subscription").click()
    expect(page.get_by_role("status")).to_contain_text("Subscription created")
    expect(page.get_by_text("No deliveries yet")).to_be_visible()
    subscription_url = page.url

    page.locator("#test-form").get_by_label("Object id").fill("7")
    page.get_by_role("button", name="Send test").click()
    expect(page.get_by_role("status")).to_contain_text("the receiver answered 200 OK")
    [tested] = receiver.received("/panel")
    assert json.loads(tested.body)["id"] == 7
    assert tested.headers["Content-Type"] == "application/json"
    assert tested.headers["X-Hub-Signature"].startswith("sha1=")

    reported = api(panel_server, admin_token, "POST", EVENTS, json={"event_id": "assign_task", "object_id": 99})
    assert reported.status_code == 202, reported.text
    receiver.wait_for(2, "/panel")
    delivered = page.locator("article.delivery", has_text="Object 99").filter(has_text="Succeeded")
    reload_until(page, delivered)
    expect(delivered.locator("table.attempts")).to_contain_text("200 OK")
    expect(delivered.locator("pre.excerpt")).to_have_text("ok")
    delivery_id = delivered.get_attribute("id").removeprefix("delivery-")

    delivered.get_by_role("button", name=f"Redeliver delivery #{delivery_id}").click()
    expect(page.get_by_role("status")).to_contain_text(f"a redelivery of #{delivery_id}")
    assert json.loads(receiver.wait_for(3, "/panel")[2].body)["id"] == 99
    redelivered = page.locator("article.delivery", has_text=f"redelivery of #{delivery_id}").filter(
        has_text="Succeeded"
    )
    reload_until(page, redelivered)
    first_time = page.locator("time[data-localized]").first
    expect(first_time).to_contain_text("GMT+9")  # shown in the browser's zone, not UTC
    screenshot(page, "04-subscription")

    page.locator("#trigger-form").get_by_label("Object id").fill("5")
    page.get_by_role("button", name="Trigger").click()
    expect(page.get_by_role("status")).to_contain_text("(assign_task, object 5): 1 delivery")
    assert json.loads(receiver.wait_for(4, "/panel")[3].body)["id"] == 5
    batch = [{"event_id": "assign_task", "object_id": 100 + n} for n in range(10)]
    assert api(panel_server, admin_token, "POST", EVENTS, json={"events": batch}).status_code == 202
    receiver.wait_for(14, "/panel")
    reload_until(page, page.locator("article.delivery", has_text="Object 109").filter(has_text="Succeeded"))
    expect(page.locator("article.delivery")).to_have_count(10)
    page.get_by_role("link", name="Older →").click()
    expect(page.get_by_text("Page 2")).to_be_visible()
    expect(page.locator("article.delivery")).to_have_count(4)
    expect(page.locator("article.delivery").last).to_contain_text("Object 7")  # the test, the oldest
    page.get_by_role("link", name="← Newer").click()
    expect(page.locator("article.delivery").first).to_contain_text("Object 109")

    page.get_by_role("link", name="Delete subscription…").click()
    expect(page.get_by_role("heading", name="Delete this subscription?")).to_be_visible()
    screenshot(page, "05-confirm-delete")
    page.get_by_role("button", name="Delete subscription").click()
    expect(page.get_by_role("status")).to_contain_text("Deleted the subscription")
    removed_row = page.locator("tr.is-removed", has_text=receiver.url("/panel"))
    expect(removed_row).to_contain_text("Removed")
    expect(removed_row).to_contain_text("deleted")
    expect(removed_row).to_contain_text("Administrator")
    screenshot(page, "06-subscriptions-with-removed")
    listed = api(panel_server, admin_token, "GET", SUBSCRIPTIONS).json()["response"]["subscriptions"]
    assert receiver.url("/panel") not in [s["trigger_url"] for s in listed]
    page.goto(subscription_url)
    expect(page.locator(".notice-removed")).to_contain_text("deleted by a user")
    expect(page.get_by_role("button", name="Send test")).to_have_count(0)

    page.get_by_role("link", name="Event types").click()
    expect(page.get_by_role("cell", name="Task assigned", exact=True)).to_be_visible()
    screenshot(page, "07-event-types")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("You have signed out")
    page.goto(f"{base}/webhooks")
    expect(page).to_have_url(re.compile(r"/webhooks/sign-in$"))


@pytest.mark.browser
def test_a_user_sees_only_their_own_subscriptions_and_an_admin_sees_everyones(
    new_page: Any, panel_server: Server, admin_token: str, receiver: Receiver
) -> None:
    receiver.behave("/failing", Behaviour(status=500, body=b"database unavailable"))
    admins_id = subscribe(panel_server, admin_token, receiver.url("/admins"), "create_quote")
    subscribe(panel_server, admin_token, receiver.url("/failing"), "create_quote", content_type="application/json")
    bob_token = make_user(panel_server, "bob@example.com")
    subscribe(panel_server, bob_token, receiver.url("/bobs"), "create_issue")

    bob = new_page()
    sign_in_with_token(bob, panel_server.base_url, bob_token)
    expect(bob.get_by_role("table")).to_contain_text(receiver.url("/bobs"))
    expect(bob.get_by_role("table")).not_to_contain_text(receiver.url("/admins"))
    expect(bob.get_by_role("columnheader", name="Owner")).to_have_count(0)
    bob.goto(f"{panel_server.base_url}/webhooks/subscriptions/{admins_id}")
    expect(bob.get_by_role("heading", name="Another user's subscription")).to_be_visible()
    screenshot(bob, "13-another-users-subscription")
    assert receiver.url("/admins") not in bob.content()

    report = {"event_id": "create_quote", "object_id": 512}
    assert api(panel_server, admin_token, "POST", EVENTS, json=report).status_code == 202
    receiver.wait_for(1, "/admins")
    receiver.wait_for(3, "/failing")  # the first attempt and both retries of the schedule
    admin = new_page()
    sign_in_with_token(admin, panel_server.base_url, admin_token)
    bobs_row = admin.locator("tbody tr", has_text=receiver.url("/bobs"))
    expect(bobs_row).to_contain_text("Bob")
    expect(bobs_row).to_contain_text("bob@example.com")
    failing_row = admin.locator("tbody tr", has_text=receiver.url("/failing"))
    reload_until(admin, failing_row.filter(has_text="3 failures in a row"))
    expect(failing_row).to_contain_text("500 Internal Server Error")
    expect(admin.locator("tbody tr", has_text=receiver.url("/admins"))).to_contain_text("200 OK")
    admin.reload()  # without the one-time "Signed in" message
    expect(admin.locator("footer")).to_contain_text("your time zone, Asia/Tokyo")
    screenshot(admin, "11-subscriptions-admin")

    failing_row.get_by_role("link").click()
    attempts = admin.locator("article.delivery", has_text="Object 512").locator("table.attempts tbody tr")
    expect(attempts).to_have_count(3)
    expect(attempts.last).to_contain_text("500 Internal Server Error")
    expect(attempts.last).to_contain_text("database unavailable")
    screenshot(admin, "12-subscription-failing")


@pytest.mark.browser
def test_sign_in_with_oauth_client_credentials_and_by_keyboard_on_a_narrow_screen(
    new_page: Any, panel_server: Server, admin_token: str
) -> None:
    make_user(panel_server, "carol@example.com")
    created = cli(panel_server.env, "apps", "create", "--name", "Carol's app", "--user", "carol@example.com").stdout
    client = dict(line.split("=", 1) for line in created.split())
    page = new_page(viewport=NARROW_VIEWPORT)
    page.goto(f"{panel_server.base_url}/webhooks/sign-in")
    page.get_by_label("Client id").fill(client["client_id"])
    page.get_by_label("Client secret").fill("hls_wrong")
    page.get_by_role("button", name="Sign in with client credentials").click()
    expect(page.locator("#client_secret-error")).to_contain_text("Unknown client")
    expect(page.get_by_label("Client id")).to_have_value(client["client_id"])

    page.get_by_label("Client secret").focus()
    page.keyboard.type(client["client_secret"])
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Signed in as Carol")
    expect(page.get_by_text("No subscriptions yet")).to_be_visible()

    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Subscriptions", exact=True)).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="New subscription")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "08-new-subscription-narrow")

    page.get_by_label("Event").select_option("update_contact")
    page.get_by_label("URL", exact=True).fill("https://example.com/carol")
    page.get_by_role("button", name="Create subscription").click()
    expect(page.get_by_role("status")).to_contain_text("Subscription created")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "09-subscription-narrow")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Subscriptions").click()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "10-subscriptions-narrow")


def test_forms_without_the_csrf_token_are_refused(panel_server: Server, admin_token: str, receiver: Receiver) -> None:
    base = panel_server.base_url
    session = signed_in_session(base, admin_token)
    cookie = next(c for c in session.cookies if c.name == "hookline_session")
    assert cookie.path == "/webhooks"
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert cookie.get_nonstandard_attr("SameSite", "").lower() == "strict"

    form = {"event_id": "create_sale", "trigger_url": receiver.url("/csrf"), "content_type": "application/json"}
    refused = session.post(f"{base}/webhooks/new", data=form, timeout=10)
    assert refused.status_code == 403
    assert "CSRF token" in refused.text
    wrong = session.post(f"{base}/webhooks/new", data={**form, "csrf_token": "forged"}, timeout=10)
    assert wrong.status_code == 403
    listed = api(panel_server, admin_token, "GET", SUBSCRIPTIONS).json()["response"]["subscriptions"]
    assert receiver.url("/csrf") not in [s["trigger_url"] for s in listed]

    another_session = signed_in_session(base, admin_token)
    foreign = csrf_token_of(another_session, f"{base}/webhooks/new")
    assert session.post(f"{base}/webhooks/new", data={**form, "csrf_token": foreign}, timeout=10).status_code == 403
    assert session.post(f"{base}/webhooks/sign-out", timeout=10, data={}).status_code == 403
    assert session.get(f"{base}/webhooks", timeout=10).url.endswith("/webhooks")  # still signed in

    accepted = session.post(
        f"{base}/webhooks/new", data={**form, "csrf_token": csrf_token_of(session, f"{base}/webhooks/new")}, timeout=10
    )
    assert accepted.status_code == 200
    assert "/webhooks/subscriptions/" in accepted.url


def test_sign_in_needs_the_sign_in_page_and_a_genuine_session_cookie(panel_server: Server, admin_token: str) -> None:
    base = panel_server.base_url
    forged_sign_in = requests.post(
        f"{base}/webhooks/sign-in", data={"method": "token", "token": admin_token}, timeout=10, allow_redirects=False
    )
    assert forged_sign_in.status_code == 403
    assert "hookline_session" not in forged_sign_in.cookies

    session = signed_in_session(base, admin_token)
    genuine = session.cookies["hookline_session"]
    payload, _, signature = genuine.partition(".")
    tampered = requests.get(
        f"{base}/webhooks",
        cookies={"hookline_session": f"{payload}.{signature[::-1]}"},
        timeout=10,
        allow_redirects=False,
    )
    assert tampered.status_code == 303
    assert tampered.headers["location"].startswith("/webhooks/sign-in")
    answer = session.get(f"{base}/webhooks", timeout=10)
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["cache-control"] == "no-store"


def test_a_read_only_token_may_look_but_not_change(panel_server: Server) -> None:
    base = panel_server.base_url
    reader = cli(panel_server.env, "tokens", "create", "--user", "admin@localhost", "--scope", "read(webhooks)")
    session = signed_in_session(base, reader.stdout.strip())
    listing = session.get(f"{base}/webhooks", timeout=10)
    assert "read-only" in listing.text
    assert 'href="/webhooks/new"' not in listing.text
    refused = session.get(f"{base}/webhooks/new", timeout=10)
    assert refused.status_code == 403
    assert "may only read" in refused.text
    csrf = csrf_token_of(session, f"{base}/webhooks")  # from the sign-out form: the session's token
    form = {"event_id": "create_sale", "trigger_url": "https://example.com/read-only", "csrf_token": csrf}
    assert session.post(f"{base}/webhooks/new", data=form, timeout=10).status_code == 403
