"""How the API shows times."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from hookline.api.views import timestamp


def test_timestamps_are_iso_utc_with_milliseconds_as_datetime_writes_them() -> None:
    rng = random.Random(7)
    samples = [0.0, 1.0, 1764780000.9995, 1764780000.9999996, 1434280428.7279994]
    samples += [rng.uniform(0, 2e9) for _ in range(20000)]
    for seconds in samples:
        expected = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        assert timestamp(seconds) == expected
    assert timestamp(None) is None
