"""A short-lived, in-process cache of whom recently seen bearer tokens speak for."""

from __future__ import annotations

import time

from hookline.domain import Principal

PRINCIPAL_CACHE_MAX_ENTRIES = 10_000


class PrincipalCache:
    """Recently seen tokens and whom they speak for, for a few seconds, so most requests skip the token query.

    Expiry is still checked on every request; a revocation made elsewhere takes effect within `ttl_seconds`.
    """

    def __init__(self, ttl_seconds: float, max_entries: int = PRINCIPAL_CACHE_MAX_ENTRIES) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, token: str) -> Principal | None:
        """The cached principal for a token, if seen within the TTL."""
        entry = self._entries.get(token)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, token: str, principal: Principal) -> None:
        """Remember a token's principal."""
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[token] = (time.monotonic() + self.ttl_seconds, principal)

    def forget(self, token: str) -> None:
        """Drop a token (it was revoked in this process)."""
        self._entries.pop(token, None)
