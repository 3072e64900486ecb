"""Settings: sources in order of precedence, and the checks that keep a bad configuration from starting."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hookline.config import Settings


def test_environment_wins_over_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "hookline.yml"
    config.write_text("port: 9001\nretry_schedule_seconds: [1, 2]\nhost: 0.0.0.0\n", encoding="utf-8")
    monkeypatch.setenv("HOOKLINE_CONFIG", str(config))
    monkeypatch.setenv("HOOKLINE_PORT", "9002")
    settings = Settings()
    assert settings.port == 9002
    assert settings.retry_schedule_seconds == [1, 2]
    assert settings.base_url == "http://127.0.0.1:9002"
    assert Settings(port=9003).port == 9003


def test_extra_event_types_extend_the_catalogue() -> None:
    settings = Settings(
        extra_event_types=[
            {"event_id": "create_job", "event_title": "Job created", "trigger_table": "job", "trigger_type": "create"}
        ]
    )
    catalogue = settings.build_catalogue()
    assert len(catalogue.all()) == 23
    assert catalogue.get("create_job") is not None


@pytest.mark.parametrize(
    "bad",
    [
        {"lease_seconds": 5, "delivery_timeout_seconds": 10},
        {"retry_schedule_seconds": [5, -1]},
        {"ssrf_allow_networks": ["not a network"]},
        {"port": 70000},
        {"signature_algorithm": "md5"},
        {"no_such_setting": 1},
    ],
)
def test_bad_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)  # type: ignore[arg-type]
