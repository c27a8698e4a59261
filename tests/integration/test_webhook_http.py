"""The webhook sender's HTTP client against real local servers (standing in for receivers
out on the internet): connections kept and reused per origin, the outbound guard run
when a connection opens (a private address still refused), and the ways a receiver
answers, closes or hangs."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import h11
import pytest

from agentq.core.errors import PermanentError, RetryLater
from agentq.core.settings import settings
from workers.plugins import outbound
from workers.webhook_http import RESPONSE_KEPT, Pool

HEADERS = {"Content-Type": "application/json", "webhook-id": "msg_1"}


@dataclass
class Server:
    """An HTTP/1.1 server (h11) that records each request and its connection."""

    status: int = 204
    body: bytes = b""
    close_after: int = 0  # close each connection after this many answers (0: never)
    http10: bool = False  # answer as HTTP/1.0, no keep-alive
    hang: bool = False  # never answer
    requests: list[tuple[int, h11.Request, bytes]] = field(default_factory=list)  # (connection, ...)
    connections: int = 0
    port: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number, answered = self.connections, 0
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    conn.receive_data(data)
                    if not data:
                        break
                    continue
                if isinstance(event, h11.Request):
                    request, body = event, b""
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    self.requests.append((number, request, body))
                    if self.hang:
                        await asyncio.sleep(3600)
                    answered += 1
                    writer.write(self._answer(conn))
                    await writer.drain()
                    if self.http10 or answered == self.close_after:
                        break
                    conn.start_next_cycle()
                else:
                    break
        finally:
            writer.close()

    def _answer(self, conn: h11.Connection) -> bytes:
        if self.http10:
            return b"HTTP/1.0 %d Whatever\r\n\r\n" % self.status + self.body  # ends with the connection
        headers = [("Content-Length", str(len(self.body)))] if self.status != 204 else []
        head = conn.send(h11.Response(status_code=self.status, headers=headers))
        data = conn.send(h11.Data(data=self.body)) if self.body else b""
        return head + data + conn.send(h11.EndOfMessage())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?x=1"


def run(server: Server, scenario: Callable[[Pool], Awaitable[None]]) -> Pool:
    async def main() -> Pool:
        listening = await asyncio.start_server(server.serve, "127.0.0.1", 0)
        server.port = listening.sockets[0].getsockname()[1]
        pool = Pool()
        try:
            await scenario(pool)
        finally:
            pool.close()
            listening.close()
        return pool

    return asyncio.run(main())


@pytest.fixture(autouse=True)
def private_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "outbound_allow_private", True)  # the servers are on 127.0.0.1


def test_requests_to_one_origin_share_a_kept_connection() -> None:
    server = Server(status=200, body=b"thanks")

    async def three(pool: Pool) -> None:
        for i in range(3):
            answer = await pool.post(server.url, HEADERS, b'{"n":%d}' % i, 5)
            assert (answer.status, answer.body) == (200, b"thanks")

    pool = run(server, three)

    assert pool.opened == 1
    assert [(c, r.method, r.target, body) for c, r, body in server.requests] == [
        (1, b"POST", b"/hook?x=1", b'{"n":%d}' % i) for i in range(3)
    ]
    headers = dict(server.requests[0][1].headers)
    assert headers[b"host"] == b"127.0.0.1:%d" % server.port
    assert headers[b"webhook-id"] == b"msg_1"
    assert headers[b"content-type"] == b"application/json"


def test_concurrent_requests_each_have_a_connection_then_reuse_them() -> None:
    server = Server()

    async def bursts(pool: Pool) -> None:
        for _ in range(2):
            answers = await asyncio.gather(*(pool.post(server.url, HEADERS, b"{}", 5) for _ in range(4)))
            assert {a.status for a in answers} == {204}

    pool = run(server, bursts)

    assert (pool.opened, server.connections, len(server.requests)) == (4, 4, 8)


def test_the_guard_runs_once_per_connection_which_goes_to_the_checked_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lookups = []

    async def resolve(host: str, _port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(outbound, "resolve", resolve)
    server = Server()

    async def by_name(pool: Pool) -> None:
        for _ in range(3):
            answer = await pool.post(f"http://receiver.test:{server.port}/hook", HEADERS, b"{}", 5)
            assert answer.status == 204

    pool = run(server, by_name)

    assert lookups == ["receiver.test"]
    assert pool.opened == 1
    assert {dict(r.headers)[b"host"] for _, r, _ in server.requests} == {b"receiver.test:%d" % server.port}


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_private_address_is_refused_and_never_connected_to(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.setattr(settings, "outbound_allow_private", False)
    server = Server()

    async def refused(pool: Pool) -> None:
        with pytest.raises(PermanentError, match="AGENTQ_OUTBOUND_ALLOW_PRIVATE"):
            await pool.post(f"http://{host}:{server.port}/hook", HEADERS, b"{}", 5)

    pool = run(server, refused)

    assert (pool.opened, server.connections) == (0, 0)


def test_a_connection_the_receiver_closed_while_idle_is_replaced() -> None:
    server = Server(close_after=1)

    async def twice(pool: Pool) -> None:
        for _ in range(2):
            assert (await pool.post(server.url, HEADERS, b"{}", 5)).status == 204
            await asyncio.sleep(0.05)  # the close reaches the client while the connection is idle

    pool = run(server, twice)

    assert [c for c, _, _ in server.requests] == [1, 2]
    assert pool.opened == 2


def test_a_keep_alive_connection_closed_just_as_it_is_reused_sends_once_more() -> None:
    server = Server(close_after=1)

    async def at_once(pool: Pool) -> None:
        assert (await pool.post(server.url, HEADERS, b"{}", 5)).status == 204
        # Reused before the close is seen: the request fails unanswered, and goes on a new one.
        assert (await pool.post(server.url, HEADERS, b"{}", 5)).status == 204

    run(server, at_once)

    assert [c for c, _, _ in server.requests] == [1, 2]


def test_an_http10_answer_ending_with_the_connection_is_read_and_not_kept() -> None:
    server = Server(status=410, body=b"gone for good", http10=True)

    async def twice(pool: Pool) -> None:
        for _ in range(2):
            answer = await pool.post(server.url, HEADERS, b"{}", 5)
            assert (answer.status, answer.body) == (410, b"gone for good")

    pool = run(server, twice)

    assert (pool.opened, server.connections) == (2, 2)


def test_only_the_start_of_a_long_answer_is_kept() -> None:
    server = Server(status=500, body=b"x" * (RESPONSE_KEPT * 3))

    async def once(pool: Pool) -> None:
        answer = await pool.post(server.url, HEADERS, b"{}", 5)
        assert (answer.status, len(answer.body)) == (500, RESPONSE_KEPT)

    run(server, once)


def test_a_receiver_that_hangs_costs_its_connection_until_the_timeout() -> None:
    server = Server(hang=True)

    async def hung(pool: Pool) -> None:
        with pytest.raises(RetryLater, match=r"took longer than 0\.2s"):
            await pool.post(server.url, HEADERS, b"{}", 0.2)
        assert not pool.idle.get(("http", "127.0.0.1", server.port))

    run(server, hung)


def test_a_receiver_that_is_down_is_a_retry() -> None:
    server = Server()

    async def down(pool: Pool) -> None:
        with pytest.raises(RetryLater, match="ConnectionRefusedError"):
            await pool.post("http://127.0.0.1:9/hook", HEADERS, b"{}", 5)

    run(server, down)
