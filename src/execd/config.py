"""Settings, read from EXECD_* environment variables (and overridden by CLI flags)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from limits import parse as parse_limit
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from execd.domain.access import ANONYMOUS_ROLES
from execd.domain.retention import Policy
from execd.domain.sandbox import Limits
from execd.domain.states import Status
from execd.fetching import AllowList

# The final statuses a retention policy keeps for a time (EXECD_RETENTION_DAYS_<STATUS>).
RETENTION_STATUSES = (
    Status.COMPLETED,
    Status.FAILED,
    Status.TIMEOUT,
    Status.CANCELLED,
    Status.ABANDONED,
)


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXECD_", extra="ignore")

    # Where things live
    data_dir: Path = Path(".execd")
    database_url: str | None = None
    artifacts_dir: Path | None = None
    work_dir: Path | None = None

    # The HTTP API
    host: str = "127.0.0.1"
    port: int = 8080
    # Processes serving the API on that port (`execd serve` starts the others as its
    # children, each listening on the port): one Python process answers on one core.
    # Default: two with SQLite on Linux with two cores or more (serve_api_processes).
    api_processes: int | None = Field(default=None, ge=1, le=64)
    # Where clients reach the API (behind a proxy: the proxy's URL, with its path if
    # it serves execd below one): every absolute link execd makes begins with it, never
    # with a request's Host header. Unset: http://{host}:{port}.
    public_url: str | None = None
    admin_token: str | None = None
    # Requests that send no credentials act with this role in the default tenant's
    # default project ("viewer" or "operator"), or are refused ("off"): for a trusted
    # single-user install on a loopback bind only (docs/security.md, "Anonymous access").
    anonymous_role: str = "off"
    # Request limits (docs/security.md, "Request limits"): the most a request body may
    # hold, by route class (413 beyond, before more of it is read); how long headers
    # and a body may take to arrive (a slow client is dropped, or answered 408).
    max_body_bytes: int = Field(default=10 * 1024**2, ge=1024)
    max_webhook_bytes: int = Field(default=1024**2, ge=1024)
    max_form_bytes: int = Field(default=256 * 1024, ge=1024)
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=60.0, gt=0)
    # Rate limits, "<count>/<second|minute|hour|day>" or "off": requests per token, and
    # failed authentications per client address (then refused, even with a right
    # token, until the window has room). Counted in this process ("memory://") or in
    # a Redis that all nodes share ("redis://host:6379").
    rate_limit: str = "60000/minute"
    auth_failure_limit: str = "60/minute"
    rate_limit_storage: str = "memory://"
    # What a Redis's keys begin with: deployments that share one Redis need their own.
    rate_limit_prefix: str = Field(default="execd", min_length=1, max_length=100)
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or
    # CIDRs, comma-separated; "*" for any): the client's address is then the one the
    # proxy saw. None by default: anyone could claim any address.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Keys that seal secrets at rest, comma-separated: the first seals, all open (else
    # the key file `secret-key` in the data directory, made on first start).
    secret_key: SecretStr | None = None
    token_cache_seconds: float = 30.0
    # How long a dashboard sign-in lasts before the browser must sign in again.
    dashboard_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    auto_migrate: bool = True
    log_level: str = "info"
    # "auto": JSON lines unless stderr is a terminal; "json" or "console" always.
    log_format: Literal["auto", "json", "console"] = "auto"
    # One line per request (method, route, status, duration, token id and role).
    access_log: bool = True
    # GET /metrics (api/metrics.py): "admin" (a system admin's token), "open", "off";
    # and, with a port, also without a token on a bind address of its own.
    metrics: Literal["admin", "open", "off"] = "admin"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    # Workers
    # `execd serve`'s workers. Neither set: one `execd worker` process per core but the
    # API's, and no worker loop in the API's process (a single core: one loop there).
    # EXECD_EMBEDDED_WORKERS alone: that many loops in the API's process, no processes.
    embedded_workers: int | None = Field(default=None, ge=0)
    worker_processes: int | None = Field(default=None, ge=0)
    worker_concurrency: int = Field(default=16, ge=1)
    worker_name: str | None = None
    worker_labels: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Devices this worker serves (flows and executions bound to one run only here).
    worker_devices: Annotated[list[str], NoDecode] = Field(default_factory=list)
    lease_seconds: float = Field(default=30.0, gt=0)
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    reaper_seconds: float = Field(default=5.0, gt=0)
    # How long a worker that stopped or went silent stays listed (as offline) after its
    # last heartbeat; then the reaper deletes its row (docs/operations.md, "Workers").
    worker_retention_seconds: float = Field(default=3600.0, gt=0)
    poll_seconds: float = Field(default=1.0, gt=0)
    kill_grace_seconds: float = Field(default=5.0, ge=0)
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    output_limit_bytes: int = Field(default=1024 * 1024, ge=1024)
    result_limit_bytes: int = Field(default=1024 * 1024, ge=1024)
    keep_work_dirs: bool = False
    actions_path: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Names of environment variables passed on to actions besides the basic ones.
    action_env: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # The action sandbox (docs/security.md): "bubblewrap", or "none" to run actions
    # unsandboxed. The limits are each action's default and the most it may ask for.
    sandbox: str = "bubblewrap"
    sandbox_memory_bytes: int | None = Field(default=2 * 1024**3, ge=16 * 1024**2)
    sandbox_processes: int | None = Field(default=512, ge=1)
    sandbox_cpu_seconds: float | None = Field(default=None, gt=0)
    sandbox_output_bytes: int | None = Field(default=None, ge=1024)
    sandbox_uid_base: int = Field(default=3_000_000, ge=1000, le=2**31 - 2**16)
    sandbox_tmp_bytes: int = Field(default=512 * 1024**2, ge=1024**2)
    # More host paths actions may read (tools under /opt, say); /usr always is.
    sandbox_read_only: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # "host": an action has the machine's network unless it says network: false;
    # "none": no action has a network, whatever it says.
    sandbox_network: Literal["host", "none"] = "host"
    # Where runs' cgroups are made: found by itself when unset, "none" for none, or a
    # delegated cgroup v2 directory (see runners/cgroups.py).
    sandbox_cgroup: str | None = None

    # Job notifications (the tenant API's jobs): e-mail over SMTP, and webhooks.
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "execd@localhost"
    smtp_starttls: bool = False
    notify_seconds: float = Field(default=2.0, gt=0)
    notify_attempts: int = Field(default=5, ge=1, le=100)
    notify_backoff_seconds: float = Field(default=10.0, ge=0)

    # What the URLs tenants choose (http actions, webhooks) may reach besides public
    # addresses: comma-separated addresses, CIDR networks, host names, *.domains.
    fetch_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Retention: days to keep ended executions (none: forever), per status if given.
    retention_days: float | None = Field(default=None, gt=0)
    retention_days_completed: float | None = Field(default=None, gt=0)
    retention_days_failed: float | None = Field(default=None, gt=0)
    retention_days_timeout: float | None = Field(default=None, gt=0)
    retention_days_cancelled: float | None = Field(default=None, gt=0)
    retention_days_abandoned: float | None = Field(default=None, gt=0)
    retention_days_audit: float | None = Field(default=None, gt=0)
    retention_keep_per_action: int = Field(default=0, ge=0)
    retention_seconds: float = Field(default=3600.0, gt=0)

    # Rules: how often each `execd serve` looks for due timers and new events.
    rules_poll_seconds: float = Field(default=0.5, gt=0)
    # Analytics: how often each `execd serve` rolls up the hours that are over.
    rollup_seconds: float = Field(default=60.0, gt=0)
    # Live streams: how often a stream looks for new events or output.
    stream_poll_seconds: float = Field(default=0.25, gt=0)

    # SQLite durability: FULL syncs the WAL at each commit, so an acknowledged
    # submission survives a power cut, not only a killed process.
    sqlite_synchronous: str = "FULL"
    db_pool_size: int = Field(default=10, ge=1)

    @field_validator(
        "worker_labels",
        "worker_devices",
        "actions_path",
        "action_env",
        "sandbox_read_only",
        "fetch_allow",
        "trusted_proxies",
        mode="before",
    )
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return _split(value)

    @field_validator("fetch_allow")
    @classmethod
    def _fetch_allow(cls, value: list[str]) -> list[str]:
        AllowList.parse(value)
        return value

    @field_validator("rate_limit", "auth_failure_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        if value.strip().lower() not in ("off", "none", "0", ""):
            try:
                parse_limit(value)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a rate limit: write 600/minute, or off"
                ) from None
        return value

    @field_validator("rate_limit_storage")
    @classmethod
    def _rate_storage(cls, value: str) -> str:
        scheme = value.removeprefix("async+").split("://", 1)[0]
        if scheme not in ("memory", "redis", "rediss", "redis+sentinel", "redis+cluster", "valkey"):
            raise ValueError("EXECD_RATE_LIMIT_STORAGE is memory:// or a redis:// URL")
        return value

    @field_validator("anonymous_role")
    @classmethod
    def _anonymous_role(cls, value: str) -> str:
        role = value.strip().lower()
        if role == "admin":
            raise ValueError(
                "EXECD_ANONYMOUS_ROLE is never admin: a request without a token administers "
                "nothing (off, viewer or operator)"
            )
        if role not in ("off", *ANONYMOUS_ROLES):
            raise ValueError("EXECD_ANONYMOUS_ROLE is off, viewer or operator")
        return role

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parsed = urlsplit(value.strip())
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("EXECD_PUBLIC_URL is an http:// or https:// URL with a host")
        if parsed.query or parsed.fragment or parsed.username or parsed.password:
            raise ValueError("EXECD_PUBLIC_URL has no query, fragment or user")
        return value.strip().rstrip("/")

    @field_validator("sandbox")
    @classmethod
    def _sandbox(cls, value: str) -> str:
        mode = {"bwrap": "bubblewrap"}.get(value.strip().lower(), value.strip().lower())
        if mode not in ("bubblewrap", "none"):
            raise ValueError("EXECD_SANDBOX is 'bubblewrap' or 'none'")
        return mode

    @property
    def anonymous(self) -> str | None:
        """The role of a caller without credentials, or None: such calls are refused."""
        return None if self.anonymous_role == "off" else self.anonymous_role

    def anonymous_warning(self) -> str | None:
        """What `serve` says at start while EXECD_ANONYMOUS_ROLE is on."""
        if self.anonymous is None:
            return None
        return (
            f"EXECD_ANONYMOUS_ROLE={self.anonymous}: requests without a token act as "
            f"{self.anonymous} of the default project, for anyone who can reach "
            f"{self.host}:{self.port}. Only for a single-user machine listening on a "
            "loopback address"
        )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'execd.db').resolve()}"

    @property
    def public_base(self) -> str:
        """The start of every absolute link: EXECD_PUBLIC_URL, else the bind address
        (a wildcard one by the machine's name)."""
        if self.public_url:
            return self.public_url
        host = self.host
        if host in ("", "0.0.0.0", "::"):
            host = socket.getfqdn()
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def resolved_artifacts_dir(self) -> Path:
        return (self.artifacts_dir or self.data_dir / "artifacts").resolve()

    @property
    def resolved_work_dir(self) -> Path:
        return (self.work_dir or self.data_dir / "work").resolve()

    @property
    def sqlite_path(self) -> Path | None:
        url = self.resolved_database_url
        return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None

    def private_paths(self) -> list[Path]:
        """What no action may see: the data, work and artifact directories, the database."""
        paths = [self.data_dir, self.resolved_work_dir, self.resolved_artifacts_dir]
        return paths + ([self.sqlite_path.parent] if self.sqlite_path else [])

    def sandbox_ceiling(self) -> Limits:
        return Limits(
            memory_bytes=self.sandbox_memory_bytes,
            processes=self.sandbox_processes,
            cpu_seconds=self.sandbox_cpu_seconds,
            output_bytes=self.sandbox_output_bytes,
        )

    def fetch_allow_list(self) -> AllowList:
        return AllowList.parse(self.fetch_allow)

    def retention_policy(self) -> Policy:
        days: dict[Status, float] = {}
        for status in RETENTION_STATUSES:
            value = getattr(self, f"retention_days_{status.value}") or self.retention_days
            if value is not None:
                days[status] = value
        return Policy(
            days=days,
            keep_per_action=self.retention_keep_per_action,
            audit_days=self.retention_days_audit or self.retention_days,
        )

    def serve_workers(self) -> tuple[int, int]:
        """Worker loops inside `execd serve`'s process, and worker processes it starts."""
        processes = self.worker_processes
        if processes is None:
            processes = 0 if self.embedded_workers is not None else max(0, cpu_count() - 1)
        embedded = self.embedded_workers
        if embedded is None:
            embedded = 0 if processes else 1
        return embedded, processes

    def serve_api_processes(self) -> int:
        """How many processes serve the API. With SQLite on two cores, two answer about
        1.6 times the requests of one at half the median latency (bench/README.md,
        load.py); a third added nothing. With PostgreSQL on the same two cores the
        database server needs the second core, and two got a p99 of 724 ms against 399:
        one there, and more machines (or EXECD_API_PROCESSES) where there are cores.
        Linux only: there the kernel spreads connections over processes on one port."""
        if self.api_processes is not None:
            return self.api_processes
        local = self.sqlite_path is not None
        return 2 if local and sys.platform.startswith("linux") and cpu_count() >= 2 else 1

    def default_worker_name(self) -> str:
        return self.worker_name or f"{socket.gethostname()}-{os.getpid()}"


def cpu_count() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
