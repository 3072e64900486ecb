"""The retry schedule: jitter bounds, exhaustion, Retry-After; no sleeping."""

from __future__ import annotations

import email.utils

import pytest

from hookline.delivery.retry import RetryPolicy

SCHEDULE_SECONDS = [5.0, 300.0, 1800.0]
NOW_EPOCH_SECONDS = 1_800_000_000.0


def policy(fraction: float, jitter: float = 0.2, retry_after_max_seconds: float = 3600.0) -> RetryPolicy:
    return RetryPolicy(
        SCHEDULE_SECONDS,
        jitter,
        retry_after_max_seconds,
        random_fraction=lambda: fraction,
        wall_clock=lambda: NOW_EPOCH_SECONDS,
    )


@pytest.mark.parametrize(("fraction", "factor"), [(0.0, 0.8), (0.5, 1.0), (0.999999, 1.2)])
def test_delay_follows_the_schedule_within_the_jitter(fraction: float, factor: float) -> None:
    for attempt_number, step in enumerate(SCHEDULE_SECONDS, start=1):
        delay = policy(fraction).delay_after(attempt_number, 500, None)
        assert delay == pytest.approx(step * factor, rel=1e-5)


def test_no_retry_after_the_schedule_is_used_up() -> None:
    assert policy(0.5).delay_after(len(SCHEDULE_SECONDS) + 1, 500, None) is None
    assert policy(0.5).max_attempts == 4


def test_empty_schedule_means_no_retries() -> None:
    assert RetryPolicy([], 0.2, 60.0).delay_after(1, None, None) is None


def test_no_jitter_gives_the_exact_schedule() -> None:
    assert RetryPolicy([0.05, 0.05], 0.0, 60.0).delay_after(2, None, None) == 0.05


@pytest.mark.parametrize("status_code", [429, 503])
def test_retry_after_seconds_is_honoured_on_429_and_503(status_code: int) -> None:
    assert policy(0.0).delay_after(1, status_code, "120") == 120.0


def test_retry_after_is_ignored_on_other_statuses() -> None:
    assert policy(0.5).delay_after(1, 500, "120") == 5.0


def test_retry_after_is_clamped_to_the_maximum() -> None:
    assert policy(0.5, retry_after_max_seconds=600.0).delay_after(1, 429, "99999") == 600.0


def test_retry_after_http_date_counts_from_now() -> None:
    in_ninety_seconds = email.utils.formatdate(NOW_EPOCH_SECONDS + 90, usegmt=True)
    assert policy(0.5).delay_after(1, 503, in_ninety_seconds) == pytest.approx(90.0)


def test_retry_after_date_in_the_past_means_now() -> None:
    long_ago = email.utils.formatdate(NOW_EPOCH_SECONDS - 3600, usegmt=True)
    assert policy(0.5).delay_after(1, 503, long_ago) == 0.0


def test_unreadable_retry_after_falls_back_to_the_schedule() -> None:
    assert policy(0.5).delay_after(1, 429, "soon, please") == 5.0


def test_retry_after_does_not_extend_the_schedule() -> None:
    assert policy(0.5).delay_after(len(SCHEDULE_SECONDS) + 1, 429, "1") is None
