"""One settings object for every agentq process, read from ``AGENTQ_*`` variables."""

from pathlib import Path
from typing import Annotated, Literal

from cryptography.fernet import Fernet
from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The longest timeout a client may ask for; the broker's visibility timeout must exceed it.
MAX_TIMEOUT_S = 3600


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTQ_", env_file=".env", extra="ignore")

    data_dir: Path = Path("var")
    database_url: str = ""
    broker_url: str = ""
    # Pub/sub for long-polls and events; defaults to the broker when that is Redis.
    redis_url: str = ""

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    flower_port: int = Field(5555, validation_alias=AliasChoices("AGENTQ_FLOWER_PORT", "FLOWER_PORT"))
    admin_api_key: str = ""

    default_queue: str = "agentq"
    worker_concurrency: Annotated[int, Field(ge=1, le=4096)] = 64
    # Of a worker process's sync threads, how many may run CPU-bound commands at once
    # (learned from their runs, or declared); more add no throughput under the GIL and
    # starve the worker's own threads. 0: no such limit.
    worker_cpu_threads: Annotated[int, Field(ge=0, le=4096)] = 1
    # Executions per broker message: a batch is claimed, run and finished a chunk at a time.
    chunk_size: Annotated[int, Field(ge=1, le=1000)] = 100
    default_timeout_s: Annotated[float, Field(gt=0, le=MAX_TIMEOUT_S)] = 300
    default_max_retries: Annotated[int, Field(ge=0, le=100)] = 3
    retry_backoff_s: Annotated[float, Field(gt=0)] = 1.0
    retry_backoff_max_s: Annotated[float, Field(gt=0)] = 300.0
    lease_s: Annotated[float, Field(gt=0)] = 30.0
    heartbeat_s: Annotated[float, Field(gt=0)] = 0.5
    # A worker's event loop that gets back to its timers this late (a plugin blocking it)
    # had a stall: logged, naming the plugins on it, and counted; 0 turns the watch off.
    loop_blocked_s: Annotated[float, Field(ge=0)] = 0.1
    # Longer than any run, so Redis rarely redelivers a live one; when it does, the
    # run's lease makes the claim skip the duplicate.
    broker_visibility_timeout_s: Annotated[float, Field(gt=0)] = MAX_TIMEOUT_S + 600
    # How often a worker sweeps Redis for unacked messages past the visibility timeout.
    broker_restore_sweep_s: Annotated[float, Field(gt=0)] = 60.0
    # A sync plugin that ignores cancellation is interrupted; if it is stuck in C code,
    # the row is finished anyway after this grace period.
    stop_grace_s: Annotated[float, Field(ge=0)] = 2.0
    max_result_bytes: int = 16 * 1024 * 1024
    # A worker keeps retrying database writes this long through an outage before it
    # hands the message back (claim) or leaves the run to the reaper (finish).
    db_retry_s: Annotated[float, Field(ge=0)] = 300.0
    # On SIGTERM, running executions get this long to finish; the rest are handed back.
    shutdown_grace_s: Annotated[float, Field(ge=0)] = 25.0
    max_wait_s: float = 60.0
    # Event streams: a heartbeat comment this often keeps proxies from closing an idle
    # one; a stream re-reads its log this often even without a notification.
    events_heartbeat_s: Annotated[float, Field(gt=0)] = 15.0
    events_recheck_s: Annotated[float, Field(gt=0)] = 30.0
    # A plugin's log lines recorded per execution, and the longest one kept.
    max_log_lines: Annotated[int, Field(ge=0)] = 1000
    max_log_line_chars: Annotated[int, Field(ge=80)] = 2000
    compat_wait_s: float = 30.0
    catalog_ttl_s: float = 2.0
    retention_days: Annotated[int, Field(ge=1)] = 30
    # A queued row not claimed within this is published again by the reaper (an outbox).
    queued_lease_s: Annotated[float, Field(gt=0)] = 300.0
    reaper_interval_s: Annotated[float, Field(gt=0)] = 15.0
    beat_tick_s: Annotated[float, Field(gt=0, le=10)] = 0.5
    # The active beat holds a Redis lock this long, renewed every tick; a standby takes
    # over within this after the active one dies.
    beat_lock_s: Annotated[float, Field(gt=0)] = 10.0
    catch_up_max: Annotated[int, Field(ge=1, le=1000)] = 10
    # Due schedules beat fires together: one locking read, one UPDATE, one INSERT, one publish.
    beat_batch_size: Annotated[int, Field(ge=1, le=5000)] = 500
    # Beat serves Prometheus metrics on this port (0: none), on this address.
    beat_metrics_port: Annotated[int, Field(ge=0, le=65535)] = 0
    beat_metrics_host: str = "127.0.0.1"

    # Plugin name -> its executions running at once across the fleet, as JSON
    # ('{"llm": 20}'); overrides a plugin class's ``max_concurrency``. Set it alike for
    # every process: workers publish it with their catalog, the others apply it too.
    plugin_limits: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    # A delayed run (``run_at``, ``delay_s``) may be asked for at most this far ahead.
    run_at_horizon_s: Annotated[float, Field(gt=0)] = 30 * 24 * 3600.0

    # Per API key: a token bucket refilled at this rate (0 turns it off), holding `burst`.
    rate_limit_per_s: Annotated[float, Field(ge=0)] = 100.0
    rate_limit_burst: Annotated[int, Field(ge=1)] = 200
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    max_params_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024
    # MariaDB refuses a JSON document nested 32 levels deep: params are at most 31.
    max_params_depth: Annotated[int, Field(ge=2, le=31)] = 31
    # A revoked key stops working within this.
    key_cache_s: Annotated[float, Field(ge=0)] = 5.0

    # The web console at /ui: on unless turned off. Its session cookies are signed with
    # ui_secret_key (shared by every API process); empty: derived from the admin key.
    ui: bool = True
    ui_secret_key: str = ""
    ui_session_s: Annotated[float, Field(gt=0)] = 12 * 3600.0
    # Links on the console's admin page; empty: Flower on this host's AGENTQ_FLOWER_PORT.
    ui_flower_url: str = ""

    outbound_allow_private: bool = False
    outbound_max_bytes: int = 1024 * 1024
    llm_base_url: str = ""
    llm_api_key: str = ""

    # -- webhooks ------------------------------------------------------------------
    # Encrypts webhook signing secrets at rest (a Fernet key: 32 url-safe base64 bytes).
    # Without it the API refuses to create subscriptions and hand out secrets.
    webhook_secret_key: str = ""
    # One attempt per entry, each this many seconds after the previous failure (±10%
    # jitter); after the last, the delivery is failed.
    webhook_retry_delays_s: str = "0,5,300,1800,7200,18000,36000,36000"
    webhook_timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    # A result larger than this (JSON) is left out of the payload: `result_truncated`.
    webhook_max_result_bytes: Annotated[int, Field(ge=0)] = 256 * 1024
    # An endpoint that failed every delivery for this long is disabled.
    webhook_disable_after_s: Annotated[float, Field(gt=0)] = 5 * 24 * 3600.0
    # The Celery queue the deliveries go out from; every worker consumes it unless
    # webhook_sender is off (then run workers with `-Q` it to send them).
    webhook_queue: str = "agentq.webhooks"
    webhook_sender: bool = True
    # How often beat publishes due deliveries (retries, and those whose message was lost).
    webhook_sweep_s: Annotated[float, Field(gt=0)] = 2.0
    # Requests in flight per worker process.
    webhook_concurrency: Annotated[int, Field(ge=1, le=10_000)] = 256
    # Processes know which keys have subscriptions from a cache this old at most.
    webhook_cache_s: Annotated[float, Field(ge=0)] = 2.0

    @field_validator("database_url")
    @classmethod
    def _pymysql_driver(cls, url: str) -> str:
        # Operators write mysql://…; SQLAlchemy needs the driver named.
        if url.startswith("mysql://"):
            return "mysql+pymysql://" + url.removeprefix("mysql://")
        return url

    @field_validator("webhook_retry_delays_s")
    @classmethod
    def _delays(cls, value: str) -> str:
        delays = [float(d) for d in value.split(",") if d.strip()]
        if not delays or any(d < 0 for d in delays):
            raise ValueError("comma-separated seconds, at least one, none negative")
        return value

    @field_validator("webhook_secret_key")
    @classmethod
    def _fernet_keys(cls, value: str) -> str:
        for key in filter(None, (k.strip() for k in value.split(","))):
            try:
                Fernet(key)
            except ValueError:
                raise ValueError("not a Fernet key (32 url-safe base64-encoded bytes)") from None
        return value

    @property
    def webhook_delays(self) -> list[float]:
        return [float(d) for d in self.webhook_retry_delays_s.split(",") if d.strip()]

    @model_validator(mode="after")
    def _embedded_defaults(self) -> "Settings":
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'agentq.db').resolve()}"
        if not self.broker_url:
            self.broker_url = "redis://127.0.0.1:6379/0"
        if not self.redis_url and self.broker_url.startswith(("redis://", "rediss://")):
            self.redis_url = self.broker_url
        return self

    # -- operations: logs, readiness, the API server, worker memory ----------------
    # `json` or `text`; empty: text when stderr is a terminal, JSON otherwise.
    log_format: Literal["", "json", "text"] = ""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # /readyz answers from a cache this old at most; a live worker answers a ping within
    # ready_ping_timeout_s.
    ready_cache_s: Annotated[float, Field(ge=0)] = 2.0
    ready_ping_timeout_s: Annotated[float, Field(gt=0, le=10)] = 1.0
    # gunicorn (gunicorn.conf.py): processes, recycling after max_requests (+ jitter; 0
    # never), and how long a stopping process may finish its requests (long-polls last
    # up to max_wait_s). A recycled process is replaced in about a second, so recycling
    # is kept rare: at 1,000 requests/s per process, every 100 s or so.
    api_workers: Annotated[int, Field(ge=1, le=256)] = 2
    api_max_requests: Annotated[int, Field(ge=0)] = 100_000
    api_max_requests_jitter: Annotated[int, Field(ge=0)] = 10_000
    # One log line per request (formatted and written on the request's CPU); off where a
    # load balancer logs them already.
    api_access_log: bool = True
    api_graceful_timeout_s: Annotated[float, Field(gt=0)] = 65.0
    # A worker whose resident memory exceeds this after a task shuts down warmly (running
    # executions finish) for its supervisor to restart it; 0 turns the check off.
    worker_max_memory_mb: Annotated[int, Field(ge=0)] = 0

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, level: object) -> object:
        return level.upper() if isinstance(level, str) else level


settings = Settings()
