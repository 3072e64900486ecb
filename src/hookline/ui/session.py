"""The panel's signed cookies (session, sign-in, flash) and its CSRF tokens; stateless, HMAC-SHA256.

The session cookie carries the bearer token the panel acts with, a random nonce and the sign-in time, signed
with a key derived from `settings.session_secret` (or a random per-process secret). The CSRF token of a form
is an HMAC of that nonce: a page can only show it to someone who holds the cookie, and a forged cross-site
form cannot know it. Before sign-in, a short-lived sign-in cookie plays the nonce's part, so the sign-in form
is protected too (no signing a victim into an attacker's account).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Literal

SESSION_COOKIE = "hookline_session"
SIGN_IN_COOKIE = "hookline_sign_in"
FLASH_COOKIE = "hookline_flash"
COOKIE_PATH = "/webhooks"
SESSION_MAX_AGE_SECONDS = 8 * 3600
SIGN_IN_MAX_AGE_SECONDS = 3600
FLASH_MAX_AGE_SECONDS = 60
NONCE_BYTES = 16
SECRET_BYTES = 32
KEY_LABEL = b"hookline-panel-cookies-v1"

FlashKind = Literal["success", "error", "info"]
FLASH_KINDS: dict[object, FlashKind] = {"success": "success", "error": "error", "info": "info"}


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: the bearer token it acts with, its CSRF nonce, and when it signed in."""

    token: str
    nonce: str
    signed_in_at: float


@dataclass(frozen=True, slots=True)
class Flash:
    """A one-time message shown on the next page."""

    kind: FlashKind
    text: str


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_secret() -> bytes:
    """A random signing secret for a process that was given none."""
    return secrets.token_bytes(SECRET_BYTES)


class Signer:
    """Signs and checks the panel's cookies and CSRF tokens with one key."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, KEY_LABEL, hashlib.sha256).digest()

    def _mac(self, purpose: str, payload: str) -> str:
        digest = hmac.new(self._key, f"{purpose}|{payload}".encode(), hashlib.sha256).digest()
        return _b64encode(digest)

    def seal(self, purpose: str, document: dict[str, object]) -> str:
        """A cookie-safe, signed encoding of a small JSON document, valid for this purpose only."""
        payload = _b64encode(json.dumps(document, separators=(",", ":")).encode("utf-8"))
        return f"{payload}.{self._mac(purpose, payload)}"

    def unseal(self, purpose: str, sealed: str | None) -> dict[str, object] | None:
        """The document if the signature holds for this purpose, else None."""
        if not sealed or sealed.count(".") != 1:
            return None
        payload, mac = sealed.split(".")
        if not hmac.compare_digest(mac, self._mac(purpose, payload)):
            return None
        try:
            document = json.loads(_b64decode(payload))
        except (binascii.Error, ValueError):
            return None
        return document if isinstance(document, dict) else None

    def new_session(self, token: str, now: float) -> tuple[Session, str]:
        """A fresh session for this token and its cookie value."""
        session = Session(token, secrets.token_urlsafe(NONCE_BYTES), now)
        return session, self.seal("session", {"t": token, "n": session.nonce, "i": now})

    def open_session(self, cookie: str | None, now: float) -> Session | None:
        """The session in a cookie, if it is genuine and younger than SESSION_MAX_AGE_SECONDS."""
        document = self.unseal("session", cookie)
        if document is None:
            return None
        token, nonce, signed_in_at = document.get("t"), document.get("n"), document.get("i")
        if not isinstance(token, str) or not isinstance(nonce, str) or not isinstance(signed_in_at, int | float):
            return None
        if not 0 <= now - signed_in_at < SESSION_MAX_AGE_SECONDS:
            return None
        return Session(token, nonce, float(signed_in_at))

    def new_sign_in_nonce(self, now: float) -> tuple[str, str]:
        """A nonce for the sign-in form and the cookie that carries it."""
        nonce = secrets.token_urlsafe(NONCE_BYTES)
        return nonce, self.seal("sign-in", {"n": nonce, "i": now})

    def open_sign_in_nonce(self, cookie: str | None, now: float) -> str | None:
        """The sign-in nonce in a cookie, if genuine and younger than SIGN_IN_MAX_AGE_SECONDS."""
        document = self.unseal("sign-in", cookie)
        if document is None:
            return None
        nonce, issued_at = document.get("n"), document.get("i")
        if not isinstance(nonce, str) or not isinstance(issued_at, int | float):
            return None
        return nonce if 0 <= now - issued_at < SIGN_IN_MAX_AGE_SECONDS else None

    def csrf_token(self, nonce: str) -> str:
        """The CSRF token every state-changing form of this session (or sign-in) carries."""
        return self._mac("csrf", nonce)

    def csrf_matches(self, nonce: str, submitted: str | None) -> bool:
        """Whether a submitted CSRF token belongs to this nonce (constant-time)."""
        return bool(submitted) and hmac.compare_digest(str(submitted), self.csrf_token(nonce))

    def seal_flash(self, flash: Flash) -> str:
        """The cookie value of a one-time message."""
        return self.seal("flash", {"k": flash.kind, "m": flash.text})

    def open_flash(self, cookie: str | None) -> Flash | None:
        """The one-time message in a cookie, if genuine."""
        document = self.unseal("flash", cookie)
        if document is None:
            return None
        kind, text = FLASH_KINDS.get(document.get("k")), document.get("m")
        if kind is None or not isinstance(text, str):
            return None
        return Flash(kind, text)
