"""A local stand-in for the outside internet: an RSS/Atom feed, a web page, an LLM API."""

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import urlsplit

RSS = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>Test news</title><link>http://example.test/</link>
<item><title>First</title><link>http://example.test/1</link><description>one</description>
<pubDate>Sun, 22 Nov 2026 08:00:00 GMT</pubDate></item>
<item><title>Second</title><link>http://example.test/2</link><description>two</description></item>
<item><title>Third</title><link>http://example.test/3</link><description>three</description></item>
</channel></rss>"""


class Handler(BaseHTTPRequestHandler):
    # Keeps connections open between requests, as servers on the internet do.
    protocol_version = "HTTP/1.1"
    chat_requests: ClassVar[list[dict[str, Any]]] = []
    hits: ClassVar[Counter[str]] = Counter()  # GETs answered, by path and query
    _hits_lock = threading.Lock()

    def log_message(self, *_: Any) -> None:
        pass

    def _send(self, status: int, body: str | bytes, content_type: str) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        with Handler._hits_lock:
            Handler.hits[self.path] += 1
        path = urlsplit(self.path).path
        if path == "/feed.xml":
            self._send(200, RSS, "application/rss+xml")
        elif path == "/hello":
            self._send(200, "hello from outside", "text/plain")
        else:
            self._send(404, "not found", "text/plain")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/chat/completions":
            self._send(404, "{}", "application/json")
            return
        Handler.chat_requests.append({"auth": self.headers.get("Authorization"), "body": body})
        reply = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": f"echo: {body['messages'][-1]['content']}"},
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
        self._send(200, json.dumps(reply), "application/json")


class Server(ThreadingHTTPServer):
    request_queue_size = 1024  # hundreds of calls connect at once


@contextmanager
def outside_server() -> Iterator[str]:
    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
