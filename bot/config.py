"""Settings read from the environment and `.env` (see `.env.example` for every one)."""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Locale = Literal["zh_CN", "en"]
LOCALES: tuple[Locale, ...] = ("zh_CN", "en")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    telegram_bot_token: SecretStr | None = None
    database_url: str = "sqlite+aiosqlite:///data/bot.db"
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_file_base_url: str = "https://api.telegram.org/file/bot"
    timezone: str = "Asia/Shanghai"
    default_locale: Locale = "zh_CN"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(default=8080, ge=1, le=65535)
    invite_ttl_days: int = Field(default=7, ge=1, le=90)
    flow_ttl_hours: int = Field(default=24, ge=1, le=24 * 14)
    # Seconds a user's row is remembered between updates (bot.storage.identity); changes made through the
    # bot apply at once, changes made elsewhere (the CLI, another process) within this time. 0: off.
    identity_cache_seconds: int = Field(default=30, ge=0, le=300)
    edit_window_days: int = Field(default=7, ge=0, le=90)
    reminder_time: time = time(9, 0)  # the daily list of pending problems and overdue escalations
    digest_time: time = time(9, 0)  # Mondays: the weekly digest to supervisors
    coverage_time: time = time(9, 30)  # Mondays: enterprises not visited for `coverage_gap_days`
    escalation_every_days: int = Field(default=3, ge=1, le=30)
    coverage_gap_days: int = Field(default=30, ge=7, le=365)
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _https_webhook(cls, value: str | None) -> str | None:
        if value and not value.startswith("https://"):
            raise ValueError("Telegram only calls https:// webhooks")
        return value or None

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        secret = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
        if self.webhook_url and not re.fullmatch(r"[A-Za-z0-9_\-]{16,256}", secret):
            raise ValueError(
                "WEBHOOK_SECRET is required with WEBHOOK_URL: 16-256 characters of A-Z, a-z, 0-9, _ and -"
            )
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def sqlite_path(self) -> Path | None:
        """The SQLite file, or None for other databases or in-memory SQLite."""
        prefix = "sqlite+aiosqlite:///"
        if not self.database_url.startswith(prefix):
            return None
        path = self.database_url[len(prefix) :].split("?", 1)[0]
        return None if path in ("", ":memory:") else Path(path)


class SettingsError(Exception):
    """Invalid configuration, explained one line per bad setting."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "WEBHOOK_SECRET"
            shown = "" if "TOKEN" in name or "SECRET" in name else f" (got {err.get('input')!r})"
            lines.append(f"Invalid setting {name}: {err['msg']}{shown}")
        raise SettingsError(lines) from None
