"""The one typed configuration of boltlink, and the only reader of the environment.

Layers, later wins: defaults <- boltlink.toml <- BOLTLINK_* environment <- flags.
The TOML file is checked strictly (an unknown key or a wrong type names the
key); environment values are strings and are parsed. A Config is frozen and
picklable, so the cluster can hand it to worker processes as it is.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ByteSize, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from boltlink.errors import ConfigError

ENV_PREFIX = "BOLTLINK_"
CONFIG_FILE_NAME = "boltlink.toml"
SECRET_KEYS = frozenset({"database_url", "redis_url"})

Source = Literal["default", "file", "env", "flag"]


class Config(BaseModel):
    """Every setting boltlink reads. Field descriptions feed `config show` and the README."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: str = Field(
        "boltlink-data", description="Directory for local files: the SQLite database, spool/, logs/ and run/."
    )
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(5000, ge=0, le=65535, description="Port the API listens on (0 picks a free one).")
    database_url: str | None = Field(
        None, description="postgresql://… to use PostgreSQL; unset for the embedded SQLite store."
    )
    base_url: str | None = Field(
        None, description="Public base of short links, e.g. https://s.example.com; unset: the request's host."
    )
    max_url_length: int = Field(4096, ge=16, description="Longest target URL accepted, in characters.")
    max_body_size: int = Field(1_048_576, ge=1024, description="Largest request body in bytes; larger gets 413.")
    body_timeout: float = Field(
        30.0, gt=0, description="Seconds a request body may take to arrive; a slower one (slowloris) gets 408.",
    )
    blocked_domains: list[str] = Field(
        default_factory=list, description="Target domains refused, with all their subdomains."
    )
    slug_length: int = Field(7, ge=4, le=64, description="Length of generated slugs.")
    backlog: int = Field(2048, ge=1, description="Listen backlog of the API socket.")
    kill_timeout: float = Field(
        10.0, gt=0, description="Seconds in-flight requests get to finish at shutdown before a kill."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Lowest level logged.")
    log_format: Literal["text", "json"] = Field(
        "text", description="text: one readable line per record; json: one JSON object per line (log shippers)."
    )
    access_log: bool = Field(False, description="Log one line per HTTP request (off by default: it costs throughput).")

    # Metrics: see boltlink/metrics.py.
    metrics_token: str | None = Field(
        None, description="Bearer token /metrics asks for; unset: /metrics is open to whoever reaches the port."
    )
    metrics_port: int | None = Field(
        None, ge=0, le=65535,
        description="Serve /metrics on this port instead of the API port (from the cluster master, or `serve`).",
    )

    # Clicks: see boltlink/events/ and boltlink/workers/aggregator.py.
    redis_url: str | None = Field(
        None, description="redis://… to queue click events in a Redis Stream (distributed mode); unset: local spool."
    )
    do_not_track: bool = Field(False, description="Record no click events at all (links may also opt out one by one).")
    ip_anonymization: Literal["anonymize", "full", "drop"] = Field(
        "anonymize", description="Visitor IPs: anonymize (IPv4 /24, IPv6 /48), full, or drop."
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Proxy addresses or networks (CIDR) whose X-Forwarded-For names the client.",
    )
    trusted_country_header: str | None = Field(
        None, description="Header a trusted proxy sets to the visitor's country, e.g. CF-IPCountry."
    )
    visit_retention_days: int = Field(90, ge=1, description="Days raw visits are kept; counters are kept for good.")
    hourly_retention_days: int = Field(
        35, ge=2, description="Days hourly counters are kept (daily ones are kept for good)."
    )
    # 20,000: catching up on a backlog, a batch's fixed cost (a dozen statements, a commit) spread over
    # 4x the events gave SQLite +20-30% and PostgreSQL +60-75% events/s against 5,000
    # (scripts/bench_aggregator.py). Under a steady stream batches are smaller anyway (LINGER_SECONDS).
    aggregator_batch_size: int = Field(20_000, ge=1, le=50_000, description="Most click events per aggregator commit.")
    spool_file_size: ByteSize = Field(
        ByteSize(16_000_000), description="Size at which an API worker starts a new spool file."
    )

    # Abuse and access: see boltlink/web/throttle.py and SECURITY.md.
    rate_limit_writes: int = Field(
        120, ge=0, description="Write requests (POST, PATCH, DELETE under /api/v1) per minute for each API key "
        "and for each client address; 0: no limit.",
    )
    rate_limit_redirects: int = Field(
        0, ge=0, description="Redirects (GET and HEAD /<slug>) per minute for each client address; 0: no limit."
    )
    rate_limit_burst: int = Field(
        0, ge=0, description="Requests a client may send at once before its per-minute rate applies; "
        "0: as many as the per-minute rate.",
    )
    delete_protection_clicks: int = Field(
        100, ge=0, description="Deleting a link with more clicks than this through the API needs ?force=true "
        "(the CLI may always delete); 0: no protection.",
    )
    api_key_default_ttl_days: int = Field(
        0, ge=0, description="Days a new API key is valid when apikey create is given no expiry; 0: no expiry."
    )

    instances: int | Literal["max"] = Field(
        "max", description="API worker processes: a number, or max = the CPUs this process may use."
    )
    roles: list[str] = Field(
        default_factory=lambda: ["api", "aggregator", "analytics"],
        description="What start-cluster runs: api, aggregator, analytics. On Kubernetes the API pods run "
        "only api, and the other two run as their own Deployments (`worker ROLE`).",
    )
    listen_timeout: float = Field(15.0, gt=0, description="Seconds a new worker has to report ready.")
    drain_delay: float = Field(
        0.5, ge=0, description="Seconds a stopping API worker, which accepts nothing new, keeps answering its "
        "open connections (with Connection: close) before it closes the idle ones.",
    )
    min_uptime: float = Field(1.0, ge=0, description="A worker that dies sooner than this has crashed at start.")
    max_restarts: int = Field(
        16, ge=1, description="Crashes within min_uptime in a row before a worker is marked errored."
    )
    worker_timeout: float = Field(30.0, gt=0, description="Seconds without a heartbeat before a worker is replaced.")
    max_memory_restart: ByteSize = Field(
        ByteSize(500_000_000), description="RSS above which a worker is replaced gracefully (e.g. 500MB, 1GiB)."
    )
    max_requests: int = Field(0, ge=0, description="Recycle an API worker after this many requests (0: never).")
    max_requests_jitter: int = Field(
        0, ge=0, description="Random extra requests (0..N) so workers don't recycle together."
    )
    reload_parallelism: int = Field(1, ge=1, description="API workers replaced at once by reload.")
    log_max_size: ByteSize = Field(ByteSize(10_000_000), description="Size at which a process log file is rotated.")
    log_max_files: int = Field(5, ge=1, description="Rotated files kept per process.")
    test_hooks: bool = Field(
        False, description="Test-only endpoints (/__test__/...) to hang, leak or slow a worker. Never in production."
    )

    _sources: dict[str, Source] = PrivateAttr(default_factory=dict)

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        known = ("api", "aggregator", "analytics")
        unknown = [role for role in value if role not in known]
        if unknown:
            raise ValueError(f"unknown role '{unknown[0]}' (known: {', '.join(known)})")
        if "api" not in value:
            raise ValueError("a cluster serves the API: roles must include api")
        return list(dict.fromkeys(value))

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"'{entry}' is not an IP address or network") from None
        return value

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def run_path(self) -> Path:
        """Pidfile and control socket of the cluster master."""
        return self.data_path / "run"

    @property
    def spool_path(self) -> Path:
        """Click events waiting for the aggregator (embedded mode), or for Redis to come back."""
        return self.data_path / "spool"

    @property
    def log_path(self) -> Path:
        return self.data_path / "logs"

    @property
    def sqlite_path(self) -> Path:
        return self.data_path / "boltlink.sqlite3"

    def source_of(self, key: str) -> Source:
        return self._sources.get(key, "default")

    def masked(self) -> dict[str, Any]:
        """The settings as a dict, with passwords in URLs, and the metrics token, replaced by ***."""
        values = self.model_dump()
        for key in SECRET_KEYS:
            if values.get(key):
                values[key] = mask_url_password(values[key])
        if values.get("metrics_token"):
            values["metrics_token"] = "***"  # `config show` output ends up in tickets and chat
        return values


def mask_url_password(url: str) -> str:
    """The URL with any password (in the user info or a ?password= parameter) replaced by ***."""
    parts = urlsplit(url)
    # Split the netloc by hand: parts.hostname drops an IPv6 host's brackets and
    # parts.port raises on a multi-host DSN, and neither must break `config show`.
    netloc = parts.netloc
    userinfo, at, hostinfo = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hostinfo}"
    query = _PASSWORD_PARAM.sub(r"\1password=***", parts.query)  # asyncpg also reads ?password=
    return urlunsplit(parts._replace(netloc=netloc, query=query))


_PASSWORD_PARAM = re.compile(r"(^|&)password=[^&]*", re.IGNORECASE)


def load_config(
    config_file: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the effective Config from every layer; raise ConfigError naming the bad key."""
    environ = os.environ if environ is None else environ
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    path, explicit = _config_path(config_file, environ)
    file_values = _read_toml(path, explicit) if path else {}
    env_values = _read_env(environ)

    if file_values:
        _validate_layer(file_values, strict=True, where=str(path))
    if env_values:
        _validate_layer({**file_values, **env_values}, strict=False, where="environment", only=env_values)
    merged = {**file_values, **env_values, **flags}
    try:
        config = Config.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, "command line")) from None
    sources: dict[str, Source] = {}
    for key in file_values:
        sources[key] = "file"
    for key in env_values:
        sources[key] = "env"
    for key in flags:
        sources[key] = "flag"
    config._sources.update(sources)
    return config


def _config_path(config_file: str | Path | None, environ: Mapping[str, str]) -> tuple[Path | None, bool]:
    if config_file:
        return Path(config_file), True
    if environ.get(ENV_PREFIX + "CONFIG"):
        return Path(environ[ENV_PREFIX + "CONFIG"]), True
    default = Path(CONFIG_FILE_NAME)
    return (default, False) if default.is_file() else (None, False)


def _read_toml(path: Path, explicit: bool) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"config file {path} does not exist") from None
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(Config.model_fields))
    if unknown:
        raise ConfigError(f"{path}: unknown key '{unknown[0]}'")
    return data


def _read_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, field in Config.model_fields.items():
        raw = environ.get(ENV_PREFIX + key.upper())
        if raw is None:
            continue
        if field.annotation == list[str]:
            values[key] = [item.strip() for item in raw.split(",") if item.strip()]
        elif raw == "" and key in ("database_url", "redis_url", "base_url", "trusted_country_header"):
            values[key] = None  # an empty variable means "unset", as in most twelve-factor apps
        else:
            values[key] = raw
    return values


def _validate_layer(values: dict[str, Any], *, strict: bool, where: str, only: Mapping[str, Any] | None = None) -> None:
    try:
        Config.model_validate(values, strict=strict)
    except ValidationError as exc:
        if only is not None:
            relevant = [e for e in exc.errors() if e["loc"] and e["loc"][0] in only]
            if not relevant:
                return
        raise ConfigError(_describe(exc, where, env=only is not None)) from None


def _describe(exc: ValidationError, where: str, env: bool = False) -> str:
    error = exc.errors()[0]
    key = str(error["loc"][0]) if error["loc"] else "?"
    name = ENV_PREFIX + key.upper() if env else key
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key '{key}'"
    return f"{where}: key '{name}': {message}"
