"""When a failed delivery is tried again: a schedule with jitter, and Retry-After on 429/503."""

from __future__ import annotations

import datetime
import email.utils
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hookline.config import Settings

RETRY_AFTER_STATUS_CODES = frozenset({429, 503})


class RetryPolicy:
    """A retry schedule (seconds after each failed attempt) with ±jitter and bounded Retry-After."""

    def __init__(
        self,
        schedule_seconds: Sequence[float],
        jitter: float,
        retry_after_max_seconds: float,
        random_fraction: Callable[[], float] = random.random,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        if any(step < 0 for step in schedule_seconds):
            raise ValueError("every step of the retry schedule must be >= 0 seconds")
        self.schedule_seconds = tuple(float(step) for step in schedule_seconds)
        self.jitter = jitter
        self.retry_after_max_seconds = retry_after_max_seconds
        self._random_fraction = random_fraction
        self._wall_clock = wall_clock

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The retry policy the settings describe (schedule, jitter, Retry-After bound)."""
        return cls(settings.retry_schedule_seconds, settings.retry_jitter, settings.retry_after_max_seconds)

    @property
    def max_attempts(self) -> int:
        """How many attempts a delivery gets in all: the first plus one per schedule step."""
        return len(self.schedule_seconds) + 1

    def delay_after(self, attempt_number: int, status_code: int | None, retry_after: str | None) -> float | None:
        """Seconds to wait after attempt `attempt_number` (1-based) failed, or None when no retry is left."""
        if attempt_number < 1 or attempt_number > len(self.schedule_seconds):
            return None
        if retry_after is not None and status_code in RETRY_AFTER_STATUS_CODES:
            asked = self._retry_after_seconds(retry_after)
            if asked is not None:
                return min(max(asked, 0.0), self.retry_after_max_seconds)
        base = self.schedule_seconds[attempt_number - 1]
        factor = 1.0 - self.jitter + 2.0 * self.jitter * self._random_fraction()
        return base * factor

    def _retry_after_seconds(self, value: str) -> float | None:
        """A Retry-After header as seconds from now: delta-seconds or an HTTP-date; None when unreadable."""
        text = value.strip()
        if text.isascii() and text.isdigit():
            return float(text)
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # HTTP dates are GMT; parsedate gives "-0000" dates without a zone
            when = when.replace(tzinfo=datetime.UTC)
        return when.timestamp() - self._wall_clock()
