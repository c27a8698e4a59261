"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that records each request
and answers with the statuses it is told, in order (then 200)."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.integration.processes import free_port


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    answers: list[int] = field(default_factory=list)  # statuses to answer first, in order
    hang_first: bool = False  # the first request gets no answer (until the server stops)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def requests(self) -> list[Received]:
        with self.lock:
            return list(self.received)


@contextmanager
def receiver(port: int | None = None, **options: object) -> Iterator[Receiver]:
    """A receiver on ``port`` (a free one by default), stopped on exit."""
    port = port or free_port()
    state = Receiver(f"http://127.0.0.1:{port}/hook", **options)  # type: ignore[arg-type]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with state.lock:
                state.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                first = len(state.received) == 1
                status = state.answers.pop(0) if state.answers else 200
            if first and state.hang_first:
                state.stopping.wait(60)
                return
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
