"""Browser fixtures: one real `hookline serve` and one headless Chromium per module, a fresh page per test."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support import Receiver, Server, hookline_env, start_server

CHROMIUM_PATH = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS_DIR = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
DESKTOP_VIEWPORT = {"width": 1280, "height": 860}
BROWSER_TIME_ZONE = "Asia/Tokyo"  # UTC+9 all year, far from UTC: localized times are easy to recognise
CSRF_PATTERN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def panel_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`hookline serve` on a fresh SQLite store, with fast retries; stopped with SIGTERM."""
    store = tmp_path_factory.mktemp("panel") / "x.db"
    running = start_server(hookline_env(f"sqlite:///{store}", retry_schedule_seconds="[0.2, 0.2]"))
    yield running
    code = running.stop(signal.SIGTERM)
    assert code == 0, running.output


@pytest.fixture(scope="module")
def admin_token(panel_server: Server) -> str:
    """The admin token printed at first start."""
    token = panel_server.admin_token()
    assert token, f"serve printed no admin token:\n{panel_server.output}"
    return token


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """A recording HTTP receiver on 127.0.0.1."""
    running = Receiver()
    yield running
    running.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright; skipped (failed under CI=true) when it is missing."""
    if not CHROMIUM_PATH.exists():
        reason = f"{CHROMIUM_PATH} is missing (apt-get install chromium); the browser tests need it"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM_PATH), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(chromium: Any) -> Iterator[Any]:
    """A factory of pages, each in its own browser context (its own cookies), closed after the test."""
    contexts: list[Any] = []

    def make(viewport: dict[str, int] | None = None) -> Any:
        context = chromium.new_context(
            viewport=viewport or DESKTOP_VIEWPORT, locale="en-US", timezone_id=BROWSER_TIME_ZONE
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a screenshot of the whole page, down to its footer, under test-artifacts/screenshots/."""
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS_DIR / f"{name}.png"
    width, height = page.evaluate(
        "[document.documentElement.clientWidth,"
        " Math.ceil(document.querySelector('footer').getBoundingClientRect().bottom + window.scrollY + 8)]"
    )
    page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height})
    return path


def sign_in_with_token(page: Any, base_url: str, token: str) -> None:
    """Sign in through the sign-in form with an API token."""
    page.goto(f"{base_url}/webhooks/sign-in")
    page.get_by_label("API token", exact=True).fill(token)
    page.get_by_role("button", name="Sign in with token").click()
    page.wait_for_url(re.compile(r"/webhooks$"))


def signed_in_session(base_url: str, token: str) -> requests.Session:
    """A requests session signed in to the panel the way a browser is (sign-in cookie and CSRF token first)."""
    session = requests.Session()
    form = session.get(f"{base_url}/webhooks/sign-in", timeout=10)
    csrf = CSRF_PATTERN.search(form.text)
    assert csrf, form.text
    answer = session.post(
        f"{base_url}/webhooks/sign-in",
        data={"csrf_token": csrf.group(1), "method": "token", "token": token, "next": "/webhooks"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.url.endswith("/webhooks"), answer.url
    return session


def csrf_token_of(session: requests.Session, url: str) -> str:
    """The CSRF token on a panel page."""
    page = session.get(url, timeout=10)
    found = CSRF_PATTERN.search(page.text)
    assert found, page.text
    return found.group(1)
