"""Configuration: one pydantic-settings object, read once at start-up and passed down.

Environment variables follow SPEC §9; a ``.env`` file in the working directory is read too.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_API_KEY = "dev-key"
DEFAULT_PROJECT = "default"


class Settings(BaseSettings):
    """Server-side settings. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy-style URL; unset = SQLite file in AEGIS_DATA_DIR.",
    )
    database_read_replica_url: str | None = None
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=20, ge=0)

    aegis_data_dir: Path = Field(default=Path("~/.aegis/data"))
    aegis_sqlite_synchronous: Literal["normal", "full"] | None = Field(
        default=None,
        description="SQLite only. 'full' syncs every commit to disk before answering: an "
                    "acknowledged write survives a power cut, at the cost of one fsync per "
                    "write. 'normal' survives a crash of the server process, but a power cut "
                    "or OS crash may lose the last commits. Default: full with "
                    "AEGIS_ENV=production, else normal.",
    )
    aegis_api_key: str = DEFAULT_API_KEY
    aegis_admin_key: str | None = None
    aegis_env: Literal["development", "production", "test"] = "development"

    aegis_embedding_provider: Literal["local", "openai"] = "local"
    aegis_embedding_model: str | None = None
    aegis_embedding_cache_size: int = Field(default=10_000, ge=0)
    openai_api_key: str | None = None
    openai_base_url: str | None = None

    rate_limit_per_minute: int = Field(default=0, ge=0, description="0 disables the limit")
    rate_limit_per_hour: int = Field(default=0, ge=0, description="0 disables the limit")
    rate_limit_burst: int = Field(
        default=0, ge=0, description="Requests a key may send at once; 0 = the minute limit")
    auth_failures_per_minute: int = Field(
        default=30, ge=0, description="Failed sign-ins per client address; 0 disables")
    redis_url: str | None = None
    cors_origins: str = ""
    aegis_shutdown_timeout: float = Field(
        default=25.0, gt=0,
        description="Seconds in-flight requests get to finish after SIGTERM.",
    )
    forwarded_allow_ips: str | None = Field(
        default=None,
        description="Addresses of the TLS-terminating proxy whose X-Forwarded-* headers are "
                    "trusted (uvicorn's setting; '*' trusts any). Required in production.",
    )
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "console"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    max_import_bytes: int = Field(default=64_000_000, ge=1024)

    @field_validator("aegis_data_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("aegis_sqlite_synchronous", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def sqlite_synchronous(self) -> str:
        """SQLite's ``PRAGMA synchronous`` for this server (see the setting above)."""
        chosen = self.aegis_sqlite_synchronous or (
            "full" if self.aegis_env == "production" else "normal")
        return chosen.upper()

    @cached_property
    def resolved_database_url(self) -> str:
        """The database URL actually used: the SQLite file under the data dir by default."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.aegis_data_dir / 'aegis.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def index_dir(self) -> Path:
        """Where the vector index files live: beside the SQLite database."""
        return self.aegis_data_dir / "index"
