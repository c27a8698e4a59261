"""The ``news`` plugin: the latest items of RSS 2.0 and Atom feeds."""

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pydantic
import pytest

from agentq.core.errors import PermanentError, RetryLater
from agentq.plugin import run_command
from tests.unit.conftest import PUBLIC, Handler, run_side_by_side
from workers.plugins.news import NewsPlugin

RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0">
  <channel>
    <title>Example News</title>
    <link>https://news.example/</link>
    <description>All the news</description>
    <item>
      <title>Second</title>
      <link>https://news.example/2</link>
      <pubDate>Tue, 02 Jan 2024 10:00:00 +0000</pubDate>
      <description>The second story.</description>
    </item>
    <item>
      <title>Third</title>
      <link>https://news.example/3</link>
      <pubDate>Wed, 03 Jan 2024 12:30:00 +0200</pubDate>
      <description>The &lt;b&gt;third&lt;/b&gt; story.</description>
    </item>
    <item>
      <title>First</title>
      <link>https://news.example/1</link>
      <pubDate>Mon, 01 Jan 2024 09:00:00 GMT</pubDate>
      <description>The first story.</description>
    </item>
  </channel>
</rss>
"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Example Blog</title>
  <link href="https://blog.example/"/>
  <id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
  <updated>2024-02-02T00:00:00Z</updated>
  <entry>
    <title>Newer post</title>
    <link href="/posts/2"/>
    <id>urn:uuid:2</id>
    <published>2024-02-02T08:00:00Z</published>
    <updated>2024-02-02T08:00:00Z</updated>
    <summary>Two.</summary>
  </entry>
  <entry>
    <title>Older post</title>
    <link href="https://blog.example/posts/1"/>
    <id>urn:uuid:1</id>
    <updated>2024-02-01T08:00:00Z</updated>
    <summary>One.</summary>
  </entry>
</feed>
"""


def feed(body: bytes, content_type: str = "application/rss+xml") -> Handler:
    return lambda _request: httpx.Response(200, content=body, headers={"Content-Type": content_type})


def latest(**params: object) -> dict[str, object]:
    result: dict[str, object] = run_command(NewsPlugin(), "latest", params)
    return result


def test_latest_rss_newest_first_within_limit(serve: Callable[[Handler], None]) -> None:
    serve(feed(RSS))

    result = latest(feed_url="https://news.example/rss.xml", limit=2)

    assert result == {
        "feed": {"title": "Example News", "link": "https://news.example/"},
        "items": [
            {
                "title": "Third",
                "link": "https://news.example/3",
                "published": "2024-01-03T10:30:00+00:00",
                "summary": "The <b>third</b> story.",
            },
            {
                "title": "Second",
                "link": "https://news.example/2",
                "published": "2024-01-02T10:00:00+00:00",
                "summary": "The second story.",
            },
        ],
    }


def test_latest_atom_with_relative_links(serve: Callable[[Handler], None]) -> None:
    serve(feed(ATOM, "application/atom+xml"))

    result = latest(feed_url="https://blog.example/feed.atom", limit=1)

    assert result == {
        "feed": {"title": "Example Blog", "link": "https://blog.example/"},
        "items": [
            {
                "title": "Newer post",
                "link": "https://blog.example/posts/2",
                "published": "2024-02-02T08:00:00+00:00",
                "summary": "Two.",
            }
        ],
    }


def test_latest_default_limit_returns_all_of_a_short_feed(serve: Callable[[Handler], None]) -> None:
    serve(feed(ATOM, "application/atom+xml"))

    items = latest(feed_url="https://blog.example/feed.atom")["items"]

    assert [item["title"] for item in items] == ["Newer post", "Older post"]  # type: ignore[attr-defined]
    assert items[1]["published"] == "2024-02-01T08:00:00+00:00"  # type: ignore[index]


def test_latest_not_a_feed_is_permanent(serve: Callable[[Handler], None]) -> None:
    serve(feed(b"just some words", "text/plain"))

    with pytest.raises(PermanentError, match="is not an RSS or Atom feed"):
        latest(feed_url="https://news.example/")


def test_latest_body_naming_a_local_file_is_not_opened(
    serve: Callable[[Handler], None], tmp_path: Path
) -> None:
    """Given a body that is the path of a local feed file, the body is parsed, not the file."""
    local = tmp_path / "secret.xml"
    local.write_bytes(RSS)
    serve(feed(str(local).encode(), "text/plain"))

    with pytest.raises(PermanentError, match="is not an RSS or Atom feed"):
        latest(feed_url="https://news.example/")


@pytest.mark.parametrize(
    ("status", "error"), [(404, PermanentError), (410, PermanentError), (503, RetryLater)]
)
def test_latest_error_status(serve: Callable[[Handler], None], status: int, error: type[Exception]) -> None:
    serve(lambda _request: httpx.Response(status))

    with pytest.raises(error, match=f"answered {status}"):
        latest(feed_url="https://news.example/rss.xml")


def test_latest_feed_on_private_address_refused(serve: Callable[[Handler], None]) -> None:
    serve(feed(RSS))

    with pytest.raises(
        PermanentError, match=re.escape("feeds.internal resolves to 10.20.30.40, a private address")
    ):
        latest(feed_url="http://feeds.internal/rss")


def test_feeds_read_side_by_side_keep_clients_per_host(serve: Callable[[Handler], None]) -> None:
    serve(feed(RSS))
    urls = ["https://news.example/rss", "https://news.example/world", "https://blog.example/feed"] * 2

    results, kept = run_side_by_side(NewsPlugin(), "latest", [{"feed_url": url, "limit": 1} for url in urls])

    assert [r["items"][0]["title"] for r in results] == ["Third"] * 6  # the newest
    assert sorted(kept) == [("https", PUBLIC, 443, "blog.example"), ("https", PUBLIC, 443, "news.example")]


@pytest.mark.parametrize(
    "params",
    [
        {"feed_url": "https://news.example/", "limit": 0},
        {"feed_url": "https://news.example/", "limit": 101},
        {"feed_url": "feed://news.example/"},
    ],
)
def test_latest_invalid_params_rejected(params: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        latest(**params)
