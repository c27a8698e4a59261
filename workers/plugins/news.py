"""``news``: the latest items of an RSS or Atom feed, parsed with feedparser."""

import asyncio
import calendar
import io
from datetime import UTC, datetime
from typing import Any

import feedparser
from pydantic import BaseModel, Field

from agentq import Context, PermanentError, Plugin, command
from workers.plugins import outbound

FEED_TIMEOUT_S = 20.0
_ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"


class LatestParams(BaseModel):
    feed_url: str = Field(
        pattern=r"^https?://",
        max_length=2048,
        description="The http:// or https:// URL of an RSS or Atom feed.",
    )
    limit: int = Field(10, ge=1, le=100, description="The most items to return, newest first.")


def _published(entry: Any) -> str | None:
    """ISO 8601 (UTC) when feedparser understood the date, else the feed's own text."""
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if parsed:
        return datetime.fromtimestamp(calendar.timegm(parsed), UTC).isoformat()  # feedparser gives UTC
    raw = entry.get("published") or entry.get("updated")
    return str(raw) if raw else None


def parse_feed(fetched: outbound.Fetched, limit: int) -> dict[str, Any]:
    """Turn a fetched feed into ``{"feed": …, "items": […]}``; PermanentError if it is no feed."""
    # A stream, not bytes: feedparser.parse() would take bytes that look like a path for a file to open.
    parsed = feedparser.parse(
        io.BytesIO(fetched.body),
        response_headers={
            "content-type": fetched.headers.get("content-type", "application/xml"),
            "content-location": fetched.url,  # the base for relative links
        },
    )
    if not parsed.version and not parsed.entries:
        raise PermanentError(f"{fetched.url} is not an RSS or Atom feed")
    entries = list(parsed.entries)
    # Feeds usually list newest first, but not all do; sort when every item has a date.
    if all(e.get("published_parsed") or e.get("updated_parsed") for e in entries):
        entries.sort(key=lambda e: tuple(e.get("published_parsed") or e.get("updated_parsed")), reverse=True)
    return {
        "feed": {"title": parsed.feed.get("title"), "link": parsed.feed.get("link")},
        "items": [
            {
                "title": e.get("title"),
                "link": e.get("link"),
                "published": _published(e),
                "summary": e.get("summary"),
            }
            for e in entries[:limit]
        ],
    }


class NewsPlugin(Plugin):
    name = "news"
    description = "Reads the latest items of an RSS or Atom feed."

    @command(LatestParams)
    async def latest(self, ctx: Context, params: LatestParams) -> dict[str, Any]:
        """Fetch a feed and return its newest items."""
        fetched = await outbound.fetch(params.feed_url, timeout_s=FEED_TIMEOUT_S, headers={"Accept": _ACCEPT})
        outbound.raise_for_status(fetched)
        if fetched.truncated:
            ctx.logger.warning("feed %s exceeds the size cap; parsing what was read", fetched.url)
        # Parsing a large feed takes a while; keep it off the event loop other executions share.
        return await asyncio.to_thread(parse_feed, fetched, params.limit)
