"""Settings: one object, read from a YAML/JSON config file and HOOKLINE_* environment variables."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hookline import catalogue

DEFAULT_DATABASE_URL = "sqlite:///hookline.db"
DEFAULT_RETRY_SCHEDULE_SECONDS = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
CONFIG_FILE_ENV = "HOOKLINE_CONFIG"


class EventTypeSetting(BaseModel):
    """An extra event type declared in configuration."""

    event_id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    event_title: str
    trigger_table: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    trigger_type: Literal["create", "update", "delete"]


class Settings(BaseSettings):
    """Every setting of a Hookline process; see README.md "Configuration" for each one."""

    model_config = SettingsConfigDict(env_prefix="HOOKLINE_", extra="forbid", validate_default=True)

    # Where it listens and what it stores in.
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_base_url: str | None = None
    log_level: str = "info"

    # The event catalogue and payloads.
    extra_event_types: list[EventTypeSetting] = []
    resource_url_template: str = "{base_url}/api/v0/{resource}/{id}.json"

    # Outbound request headers and signatures.
    event_header: str = "X-Accelo-Event"
    delivery_id_header: str = "X-Hookline-Delivery"
    signature_header: str = "X-Hub-Signature"
    signature_algorithm: Literal["sha1", "sha256", "sha384", "sha512"] = "sha1"
    signature_256_header: str = "X-Hub-Signature-256"
    signature_prefix: bool = True
    standard_webhooks_default: bool = False

    # Delivery behaviour.
    delivery_timeout_seconds: float = Field(default=10.0, gt=0)
    max_response_bytes: int = Field(default=65536, ge=0)
    response_excerpt_bytes: int = Field(default=1024, ge=0)
    retry_schedule_seconds: list[float] = list(DEFAULT_RETRY_SCHEDULE_SECONDS)
    retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    retry_after_max_seconds: float = Field(default=36000.0, ge=0)
    failure_threshold: int = Field(default=20, ge=1)
    failure_window_seconds: float = Field(default=86400.0, ge=0)
    max_in_flight: int = Field(default=64, ge=1)
    per_subscription_max_in_flight: int = Field(default=8, ge=1)
    claim_batch_size: int = Field(default=256, ge=1, le=5000)
    lease_seconds: float = Field(default=60.0, gt=0)
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    ssrf_allow_networks: list[str] = []
    idempotency_window_seconds: float = Field(default=86400.0, ge=0)

    # Retention of the delivery log.
    retention_days: float = Field(default=30.0, gt=0)
    prune_interval_seconds: float = Field(default=3600.0, gt=0)
    prune_batch_size: int = Field(default=5000, ge=1)

    # Tokens and the control panel.
    token_default_expires_seconds: int = Field(default=30 * 86400, gt=0)
    token_cache_seconds: float = Field(default=5.0, ge=0)
    session_secret: str | None = None
    rate_limit_per_hour: int = Field(default=0, ge=0)

    @field_validator("retry_schedule_seconds")
    @classmethod
    def _non_negative_schedule(cls, value: list[float]) -> list[float]:
        if any(step < 0 for step in value):
            raise ValueError("retry_schedule_seconds: every step must be >= 0")
        return value

    @field_validator("ssrf_allow_networks")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for network in value:
            ipaddress.ip_network(network, strict=False)
        return value

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> Settings:
        if self.lease_seconds <= self.delivery_timeout_seconds:
            raise ValueError(
                f"lease_seconds ({self.lease_seconds:g}) must be longer than delivery_timeout_seconds "
                f"({self.delivery_timeout_seconds:g}), or a delivery could be claimed again while still in flight"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit arguments win over the environment, which wins over the config file."""
        return (init_settings, env_settings, _ConfigFileSource(settings_cls))

    @property
    def base_url(self) -> str:
        """The public base URL of the service, without a trailing slash."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        wildcard = self.host in ("0.0.0.0", "::", "")  # noqa: S104 (a wildcard bind is reachable on loopback)
        host = "127.0.0.1" if wildcard else self.host
        return f"http://{host}:{self.port}"

    @property
    def is_sqlite(self) -> bool:
        """Whether the store is the embedded SQLite file."""
        return self.database_url.startswith("sqlite")

    def build_catalogue(self) -> catalogue.Catalogue:
        """The event catalogue: the defaults plus the configured extras."""
        return catalogue.Catalogue(
            tuple(
                catalogue.EventType(e.event_id, e.event_title, e.trigger_table, e.trigger_type)
                for e in self.extra_event_types
            )
        )


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Reads settings from the YAML or JSON file named by HOOKLINE_CONFIG."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get(CONFIG_FILE_ENV)
        if not path:
            return {}
        return load_config_file(Path(path))


def load_config_file(path: Path) -> dict[str, Any]:
    """The settings in a YAML or JSON config file, keys as in Settings."""
    text = path.read_text(encoding="utf-8")
    loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: the config file must hold a mapping of setting names to values")
    return {str(key).replace("-", "_"): value for key, value in loaded.items()}
