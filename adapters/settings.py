"""All configuration, read from ``CIVICVAULT_*``; the embedded defaults are written down here."""

from __future__ import annotations

from pathlib import Path

from limits import parse
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path(".civicvault")


class Settings(BaseSettings):
    """Embedded defaults: an SQLite file and a blob folder under ``data_dir``,
    a master key file created on first run. Set ``database_url`` for PostgreSQL
    and ``s3_endpoint`` for an S3-compatible object store."""

    model_config = SettingsConfigDict(env_prefix="CIVICVAULT_", extra="ignore")

    data_dir: Path = DEFAULT_DATA_DIR
    demo: bool = Field(
        default=False, description="the demo's sign-in: pick a person at /signin (serve --demo)"
    )
    web_session_hours: float = Field(
        default=8.0, gt=0, le=24 * 7, description="how long a browser session lasts"
    )
    database_url: str | None = Field(
        default=None, description="postgresql://user:password@host:port/dbname[?schema=name]"
    )
    s3_endpoint: str | None = Field(default=None, description="host:port of the S3 server")
    s3_access_key: str = ""
    s3_secret_key: SecretStr = SecretStr("")
    s3_bucket: str = "civicvault"
    s3_secure: bool = True
    master_key: SecretStr | None = Field(default=None, description="32 bytes, base64")
    previous_master_key: SecretStr | None = Field(
        default=None, description="still accepted while a master-key rotation rolls out"
    )
    new_master_key: SecretStr | None = Field(
        default=None, description="target of `civicvault keys rotate-master` (base64)"
    )
    max_document_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    max_json_bytes: int = Field(
        default=64 * 1024, gt=0, description="the largest JSON body a route takes"
    )
    max_grade_push_bytes: int = Field(
        default=8 * 1024 * 1024, gt=0,
        description="the largest body of a credit-grade push (about 50,000 updates)",
    )
    max_form_field_bytes: int = Field(
        default=8 * 1024, ge=1024,
        description="the largest form field or part header of an upload; more is a 413",
    )
    max_header_bytes: int = Field(
        default=32 * 1024, ge=1024,
        description="the largest request line and header block; more is a 431",
    )
    rate_limit_fetches: str = Field(
        default="600/minute", description="document fetches per officer (sliding window)"
    )
    rate_limit_writes: str = Field(
        default="120/minute", description="writes (POST, PUT, DELETE) per principal"
    )
    rate_limit_failed_authentications: str = Field(
        default="30/minute", description="failed authentications per client address"
    )
    gc_grace_seconds: int = Field(default=24 * 3600, ge=300)
    key_cache_seconds: float = Field(default=2.0, ge=0)
    postgres_pool_size: int = Field(default=5, ge=1)
    token_issuer: str = "civicvault"  # noqa: S105 - a name, not a secret
    token_audience: str = "civicvault-api"  # noqa: S105 - a name, not a secret
    token_leeway_seconds: int = Field(default=30, ge=0, le=300)
    token_ttl_seconds: int = Field(
        default=3600, gt=0, description="how long a token `civicvault token` mints is valid"
    )
    token_max_lifetime_seconds: int = Field(
        default=24 * 3600, gt=0, le=30 * 24 * 3600,
        description="the longest validity (exp minus iat) of a token the vault accepts",
    )
    external_issuer: str | None = Field(
        default=None, description="an identity provider whose tokens are also accepted"
    )
    external_audience: str | None = None
    external_jwks_file: Path | None = Field(default=None, description="its JWKS, from a file")
    external_jwks_url: str | None = Field(default=None, description="or fetched at start-up")
    oidc_issuer: str | None = Field(
        default=None,
        description="the city's identity provider (统一身份认证) for the pages' sign-in: its "
        "issuer; the rest is read from {issuer}/.well-known/openid-configuration",
    )
    oidc_client_id: str | None = Field(default=None, description="our client id there")
    oidc_client_secret: SecretStr | None = Field(
        default=None, description="its secret (client_secret_basic); unset for a public client"
    )
    oidc_redirect_uri: str | None = Field(
        default=None,
        description="https://<this service>/signin/oidc/callback as registered there; "
        "unset: taken from the request",
    )
    oidc_post_logout_redirect_uri: str | None = Field(
        default=None,
        description="https://<this service>/signin, where the provider sends the browser "
        "after signing out there; unset: taken from the request",
    )
    oidc_scopes: str = Field(default="openid profile", description="the scopes asked for")
    oidc_subject_claim: str = Field(
        default="sub", description="the ID token claim that is the principal's subject"
    )
    oidc_role_claim: str = Field(
        default="role", description="the claim naming the role (absent: a resident)"
    )
    oidc_department_claim: str = Field(default="dept", description="an officer's department")
    oidc_unit_claim: str = Field(default="unit", description="a clerk's or supervisor's unit")
    oidc_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, description="for each call to the provider"
    )
    log_level: str = "INFO"
    projections_in_process: bool = Field(
        default=True,
        description="serve keeps the read models up to date itself; false when a separate "
        "`civicvault projections run` worker does",
    )
    read_wait_seconds: float = Field(
        default=2.0, ge=0, le=30,
        description="how long a read waits for the read models to reach the position asked for",
    )
    max_projection_lag_seconds: float = Field(
        default=30.0, gt=0, description="/readyz fails when the read models lag more than this"
    )
    checkpoint_events: int = Field(
        default=1000, ge=1, description="the ledger signs a checkpoint after this many events"
    )
    checkpoint_seconds: float = Field(
        default=60.0, gt=0,
        description="or after this many seconds, when events came in since the last one",
    )
    aggregate_cache_size: int = Field(
        default=10_000,
        ge=0,
        description="aggregates kept in memory per process and brought up to date on each read "
        "(0 turns the cache off)",
    )

    @field_validator(
        "rate_limit_fetches", "rate_limit_writes", "rate_limit_failed_authentications"
    )
    @classmethod
    def _rate(cls, value: str) -> str:
        try:
            amount = parse(value).amount
        except ValueError:
            amount = 0
        if amount < 1:
            raise ValueError("must read like 600/minute (or 10/second, 1000/hour)")
        return value

    @model_validator(mode="after")
    def _ttl_within_lifetime(self) -> Settings:
        if self.token_ttl_seconds > self.token_max_lifetime_seconds:
            raise ValueError(
                "token_ttl_seconds must not exceed token_max_lifetime_seconds "
                f"({self.token_max_lifetime_seconds})"
            )
        return self

    @model_validator(mode="after")
    def _oidc_client(self) -> Settings:
        if self.oidc_issuer and not self.oidc_client_id:
            raise ValueError("CIVICVAULT_OIDC_ISSUER needs CIVICVAULT_OIDC_CLIENT_ID")
        return self

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return value or None

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "vault.sqlite3"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def master_key_file(self) -> Path:
        return self.data_dir / "master.key"
