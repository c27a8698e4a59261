"""Jinja2 templates of the console, their filters, and its versioned static files.

A static file's URL carries a hash of its content (``/ui/static/htmx.min.3f2a….js``): a
page always loads the script it was rendered with, and a deploy never mixes old and new
(an old hash is a 404, a current one is cached for good).
"""

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from agentq.core.models import ExecutionStatus
from api.console.session import new_idempotency_key

HERE = Path(__file__).parent
STATIC = HERE / "static"
# Characters of formatted JSON shown on a page; the rest is behind the raw link.
SHOWN_JSON_CHARS = 4000


def _versioned(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    stem, dot, ext = path.name.partition(".")
    return f"{stem}.{digest}{dot}{ext}"


# Versioned name -> file; and file name -> versioned name.
STATIC_FILES: dict[str, Path] = {_versioned(p): p for p in STATIC.iterdir() if p.suffix in (".js", ".css")}
_VERSIONED = {path.name: name for name, path in STATIC_FILES.items()}


def static_url(name: str) -> str:
    return f"/ui/static/{_VERSIONED[name]}"


def when(value: datetime | None) -> Markup:
    """A time in UTC, shown in the browser's zone by console.js; UTC on hover."""
    if value is None:
        return Markup("—")
    utc = value.astimezone(UTC)
    text = utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        utc.isoformat().replace("+00:00", "Z"), text, text
    )


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "—"
    seconds = (end - start).total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def pretty(value: Any) -> tuple[str, bool]:
    """Indented JSON, cut at SHOWN_JSON_CHARS; and whether it was cut."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return (text[:SHOWN_JSON_CHARS], True) if len(text) > SHOWN_JSON_CHARS else (text, False)


def percent(progress: dict[str, Any] | None) -> float:
    try:
        return max(0.0, min(100.0, float((progress or {}).get("percent", 0))))
    except (TypeError, ValueError):
        return 0.0


env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,  # templates ship with the code: no stat per render
)
env.globals.update(static=static_url, statuses=list(ExecutionStatus), new_key=new_idempotency_key)
env.filters.update(when=when, duration=duration, pretty=pretty, percent=percent)


def render(name: str, **context: Any) -> str:
    return env.get_template(name).render(**context)


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A full page; ``viewer`` (in context) is None on the sign-in page."""
    context.setdefault("viewer", None)
    html = render(name, path=request.url.path, **context)
    return HTMLResponse(html, status_code=status_code, headers=NO_STORE)


# Pages show one owner's data: never kept by a shared cache, nor in the browser's history.
NO_STORE = {"Cache-Control": "no-store"}
