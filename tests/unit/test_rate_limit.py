"""The hourly per-deployment rate limit."""

from __future__ import annotations

import pytest

from hookline import errors
from hookline.api.rate_limit import RateLimiter


def test_quota_counts_down_then_refuses_with_headers_until_the_window_resets() -> None:
    now = [7200.0 + 10]
    limiter = RateLimiter(3, clock=lambda: now[0])
    assert [limiter.hit(1).remaining for _ in range(3)] == [2, 1, 0]
    with pytest.raises(errors.TooManyRequests) as refused:
        limiter.hit(1)
    assert refused.value.http_status == 429
    assert refused.value.headers["X-RateLimit-Remaining"] == "0"
    assert refused.value.headers["X-RateLimit-Reset"] == str(7200 + 3600)
    assert limiter.hit(2).remaining == 2, "each deployment has its own quota"
    now[0] = 7200.0 + 3600
    assert limiter.hit(1).remaining == 2, "a new hour, a new quota"
