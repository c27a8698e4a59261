"""Log lines for every agentq process: JSON for log collectors, text for people.

``AGENTQ_LOG_FORMAT`` picks ``json`` or ``text``; unset, a process logs text when its
stderr is a terminal and JSON otherwise. Fields passed as ``extra`` (``execution_id``,
``plugin``, ``status``, ``duration_ms``) become JSON keys, or a ``key=value`` tail in
text. Configured secrets (API keys, passwords in URLs, Flower's credentials) are masked
in every line, whichever logger wrote it.
"""

import logging
import logging.config
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter
from sqlalchemy.engine import make_url

from agentq.core.settings import Settings, settings

# Keys the text format appends, in this order, when a record carries them.
FIELDS = ("execution_id", "plugin", "status", "duration_ms")
MASK = "***"
# Secrets shorter than this are not masked: replacing "1" everywhere would garble lines.
MIN_SECRET_LEN = 6


def log_format(value: str = "", stream: TextIO | None = None) -> str:
    """``json`` or ``text``: the configured value, else text on a terminal."""
    value = value.strip().lower()
    if value in ("json", "text"):
        return value
    stream = stream or sys.stderr
    return "text" if stream.isatty() else "json"


def secrets_of(config: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """The configured values no log line may show."""
    if environ is None:
        environ = os.environ
    found = [config.admin_api_key, config.llm_api_key]
    for url in (config.database_url, config.broker_url, config.redis_url):
        try:
            found.append(make_url(url).password or "")
        except Exception:  # not a URL SQLAlchemy parses (amqp://…): take the userinfo part
            userinfo = url.partition("://")[2].rpartition("@")[0]
            found.append(userinfo.partition(":")[2])
    for credential in environ.get("FLOWER_BASIC_AUTH", "").split(","):
        found.append(credential.partition(":")[2])
    return sorted({s for s in found if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)


class _Masking(logging.Formatter):
    secrets: tuple[str, ...] = ()

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        for secret in self.secrets:
            if secret in line:
                line = line.replace(secret, MASK)
        return line


class JsonFormatter(_Masking, _JsonFormatter):
    """One JSON object per line: time, level, logger, message, then the extra fields."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            # uvicorn's ANSI-coloured copy of the message is noise in JSON.
            reserved_attrs=[*RESERVED_ATTRS, "color_message", "taskName"],
        )
        self.secrets = tuple(secrets)


class TextFormatter(_Masking):
    """``time level logger: message key=value ...`` for a terminal."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(name)s: %(message)s")
        self.secrets = tuple(secrets)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        tail = " ".join(f"{k}={getattr(record, k)}" for k in FIELDS if getattr(record, k, None) is not None)
        return f"{line} [{tail}]" if tail else line


def formatter(fmt: str, secrets: Iterable[str] = ()) -> logging.Formatter:
    return JsonFormatter(secrets) if fmt == "json" else TextFormatter(secrets)


def dict_config(fmt: str = "", level: str | int = "INFO", config: Settings | None = None) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for agentq, gunicorn and uvicorn loggers alike.

    gunicorn's Uvicorn worker copies the ``gunicorn.*`` handlers onto ``uvicorn.*``, so
    those keep their own handler; every other logger propagates to the root.
    """
    config = config or settings
    level_name = logging.getLevelName(level) if isinstance(level, int) else level.upper()
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "agentq"}
    own = {"handlers": ["default"], "propagate": False, "level": level_name}
    access = {**own, "level": "INFO" if config.api_access_log else "WARNING"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "agentq": {
                "()": formatter,
                "fmt": log_format(fmt or config.log_format),
                "secrets": secrets_of(config),
            }
        },
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level_name},
        "loggers": {
            "gunicorn.error": own,
            "gunicorn.access": access,
            "uvicorn": own,
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level_name},
            "uvicorn.access": access,
        },
    }


def configure(fmt: str = "", level: str | int | None = None) -> None:
    """Route every logger of this process through one agentq handler on stderr."""
    logging.config.dictConfig(dict_config(fmt, level or settings.log_level))
