"""The outbound guard: address checks after DNS and on every redirect, size and time caps."""

import asyncio
import ipaddress
import re
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from agentq.core import outbound as core_outbound
from agentq.core.errors import PermanentError, RetryLater
from agentq.core.settings import settings
from tests.unit.conftest import PUBLIC, Handler, Serve
from workers.plugins import outbound, outbound_pool

real_resolve = outbound.resolve


def fetch(url: str, **kwargs: object) -> outbound.Fetched:
    kwargs.setdefault("timeout_s", 5)
    return asyncio.run(outbound.fetch(url, **kwargs))  # type: ignore[arg-type]


def ok(_request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, text="hello")


def redirect_to(location: str) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/start":
            return httpx.Response(302, headers={"Location": location})
        return httpx.Response(200, text="landed")

    return handler


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.0.0.1", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fc00::1", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("0.0.0.0", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("240.0.0.1", "a private address"),
        ("100.64.0.1", "not a globally routable address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("64:ff9b::a00:1", "a private address"),
        ("2002:7f00:1::", "a loopback address"),
        (PUBLIC, None),
        ("2606:4700::1111", None),
        ("64:ff9b::5db8:d822", None),
    ],
)
def test_refusal_classifies_address(address: str, why: str | None) -> None:
    assert core_outbound.refusal(ipaddress.ip_address(address)) == why


def test_resolve_looks_up_on_a_resolver_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not on the loop, nor in its default executor (which the heartbeat and to_thread share)."""
    threads = []

    def getaddrinfo(host: str, port: int, *_args: object) -> list[tuple[object, ...]]:
        assert (host, port) == ("one.one.one.one", 443)
        threads.append(threading.current_thread().name)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("1.1.1.1", port)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2606:4700::1111", port, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("1.1.1.1", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    assert asyncio.run(real_resolve("one.one.one.one", 443)) == ["1.1.1.1", "2606:4700::1111"]
    assert threads[0].startswith("agentq-resolve")


def test_fetch_public_address_succeeds(serve: Serve) -> None:
    seen = serve(ok)

    fetched = fetch(f"http://{PUBLIC}/")

    assert (fetched.status, fetched.text(), fetched.truncated) == (200, "hello", False)
    assert fetched.url == f"http://{PUBLIC}/"
    assert seen[0].headers["user-agent"] == outbound.USER_AGENT


def test_fetch_loopback_literal_refused(serve: Serve) -> None:
    seen = serve(ok)

    with pytest.raises(PermanentError) as caught:
        fetch("http://127.0.0.1/")

    assert caught.value.detail == (
        "Refusing to fetch http://127.0.0.1/: 127.0.0.1 is a loopback address "
        "(set AGENTQ_OUTBOUND_ALLOW_PRIVATE=1 to allow private addresses)"
    )
    assert seen == []


@pytest.mark.parametrize(
    "url", ["http://[::ffff:127.0.0.1]/", "http://[::1]:8080/", "https://169.254.169.254/"]
)
def test_fetch_other_private_literals_refused(serve: Serve, url: str) -> None:
    seen = serve(ok)

    with pytest.raises(PermanentError, match="Refusing to fetch"):
        fetch(url)

    assert seen == []


@pytest.mark.parametrize(
    ("host", "address"),
    [("internal.example", "10.0.0.5"), ("localhost", "127.0.0.1"), ("mixed.example", "10.1.2.3")],
)
def test_fetch_name_resolving_to_private_refused(serve: Serve, host: str, address: str) -> None:
    seen = serve(ok)

    with pytest.raises(PermanentError, match=f"{host} resolves to {address}, a (private|loopback) address"):
        fetch(f"http://{host}/")

    assert seen == []


def test_fetch_connects_to_the_checked_address(serve: Serve) -> None:
    """Given a name, the request goes to the address that was checked, not to a second DNS answer."""
    seen = serve(ok)

    fetched = fetch("https://example.com:8443/feed?x=1")

    request = seen[0]
    assert str(request.url) == f"https://{PUBLIC}:8443/feed?x=1"
    assert request.headers["host"] == "example.com:8443"
    assert request.extensions["sni_hostname"] == "example.com"
    assert fetched.url == "https://example.com:8443/feed?x=1"


def test_fetch_tries_next_address_when_one_does_not_connect(
    serve: Serve,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "1.1.1.1":
            raise httpx.ConnectError("unreachable", request=request)
        return httpx.Response(200, text="second")

    seen = serve(handler)

    assert fetch("http://other.example/").text() == "second"
    assert [r.url.host for r in seen] == ["1.1.1.1", "8.8.8.8"]


def test_fetch_allow_private_permits_private_addresses(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "outbound_allow_private", True)
    seen = serve(ok)

    assert fetch("http://127.0.0.1:8000/").status == 200
    assert fetch("http://internal.example/").status == 200
    # Still resolved off the loop and pinned, only not refused.
    assert (seen[1].url.host, seen[1].headers["host"]) == ("10.0.0.5", "internal.example")


def test_fetch_redirect_followed_and_checked(serve: Serve) -> None:
    seen = serve(redirect_to("http://other.example/end"))

    fetched = fetch("http://example.com/start")

    assert (fetched.status, fetched.text(), fetched.url) == (200, "landed", "http://other.example/end")
    assert [r.headers["host"] for r in seen] == ["example.com", "other.example"]


def test_fetch_relative_redirect_resolved_against_current_url(
    serve: Serve,
) -> None:
    serve(redirect_to("/end"))

    assert fetch("http://example.com/start").url == "http://example.com/end"


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1/admin",
        "http://169.254.169.254/latest/meta-data/",
        "http://internal.example/",
        "http://[::1]/",
    ],
)
def test_fetch_redirect_to_private_refused(serve: Serve, location: str) -> None:
    seen = serve(redirect_to(location))

    with pytest.raises(PermanentError, match="Refusing to fetch"):
        fetch("http://example.com/start")

    assert len(seen) == 1


@pytest.mark.parametrize("location", ["file:///etc/passwd", "gopher://example.com/", "ftp://example.com/x"])
def test_fetch_redirect_to_other_scheme_refused(serve: Serve, location: str) -> None:
    serve(redirect_to(location))

    with pytest.raises(PermanentError, match="only http and https"):
        fetch("http://example.com/start")


def test_fetch_too_many_redirects(serve: Serve) -> None:
    seen = serve(lambda _request: httpx.Response(302, headers={"Location": "/again"}))

    with pytest.raises(PermanentError, match="after 5 redirects"):
        fetch("http://example.com/")

    assert len(seen) == outbound.MAX_REDIRECTS + 1


def test_fetch_drops_credentials_on_redirect_to_other_origin(
    serve: Serve,
) -> None:
    seen = serve(redirect_to("http://other.example/end"))

    fetch("http://example.com/start", headers={"Authorization": "Bearer secret", "X-Keep": "1"})

    assert seen[0].headers["authorization"] == "Bearer secret"
    assert "authorization" not in seen[1].headers
    assert seen[1].headers["x-keep"] == "1"


def test_fetch_post_does_not_follow_redirects(serve: Serve) -> None:
    seen = serve(redirect_to("http://other.example/end"))

    fetched = fetch("http://example.com/start", method="POST", json={"a": 1})

    assert fetched.status == 302
    assert len(seen) == 1


def test_fetch_truncates_body_at_max_bytes(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given an endless body, reading stops just past the cap."""
    monkeypatch.setattr(settings, "outbound_max_bytes", 25)
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while True:
            sent += 1
            yield b"0123456789"

    serve(lambda _request: httpx.Response(200, content=endless()))

    fetched = fetch(f"http://{PUBLIC}/")

    assert (fetched.body, fetched.truncated) == (b"0123456789" * 2 + b"01234", True)
    assert sent == 3


def test_fetch_body_exactly_at_cap_is_not_truncated(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "outbound_max_bytes", 5)
    serve(lambda _request: httpx.Response(200, content=b"12345"))

    assert fetch(f"http://{PUBLIC}/").truncated is False


def test_fetch_decodes_with_declared_charset(serve: Serve) -> None:
    serve(
        lambda _request: httpx.Response(
            200, content="café".encode("latin-1"), headers={"Content-Type": "text/plain; charset=latin-1"}
        )
    )

    assert fetch(f"http://{PUBLIC}/").text() == "café"


def test_fetch_network_error_retries_later(serve: Serve) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    serve(refuse)

    with pytest.raises(RetryLater, match="ConnectError: connection refused"):
        fetch(f"http://{PUBLIC}/")


def test_fetch_slow_server_retries_later(monkeypatch: pytest.MonkeyPatch) -> None:
    async def slow(_request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    monkeypatch.setattr(outbound, "transport", httpx.MockTransport(slow))

    with pytest.raises(RetryLater, match=re.escape("took longer than 0.05s")):
        fetch(f"http://{PUBLIC}/", timeout_s=0.05)


def test_fetch_unknown_name_is_permanent(serve: Serve) -> None:
    serve(ok)

    with pytest.raises(PermanentError, match=re.escape("nowhere.example does not resolve")):
        fetch("http://nowhere.example/")


@pytest.mark.usefixtures("serve")
def test_fetch_dns_failure_retries_later(monkeypatch: pytest.MonkeyPatch) -> None:
    async def flaky(_host: str, _port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(outbound, "resolve", flaky)

    with pytest.raises(RetryLater, match="Temporary failure"):
        fetch("http://example.com/")


@pytest.mark.parametrize("url", ["http://[::1/", "http:///path"])
def test_fetch_malformed_url_is_permanent(url: str) -> None:
    with pytest.raises(PermanentError):
        fetch(url)


# -- shared clients, connections and TLS context ---------------------------------------


def on_one_loop(*calls: Callable[[], Awaitable[object]]) -> outbound_pool.LoopClients:
    """Run the calls one after another on one event loop; returns that loop's clients."""

    async def run() -> outbound_pool.LoopClients:
        for call in calls:
            await call()
        return outbound._clients()

    return asyncio.run(run())


def get(url: str, **kwargs: object) -> Callable[[], Awaitable[object]]:
    return lambda: outbound.fetch(url, timeout_s=5, **kwargs)  # type: ignore[arg-type]


def test_tls_context_built_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real transports (the connection refused): however many clients, loops and hosts, one context."""
    built = []
    create = httpx.create_ssl_context

    def counted(*args: object, **kwargs: object) -> object:
        built.append(1)
        return create(*args, **kwargs)  # type: ignore[arg-type]

    def refuse(*_args: object) -> None:
        raise ConnectionRefusedError("refused")

    outbound_pool.tls_context.cache_clear()
    monkeypatch.setattr(httpx, "create_ssl_context", counted)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    try:
        for _ in range(2):  # two loops, as tests and forked workers have
            with pytest.raises(RetryLater, match="ConnectError"):
                on_one_loop(
                    get("https://example.com/"), get("https://blog.example/"), get("http://news.example/")
                )
    finally:
        outbound_pool.tls_context.cache_clear()

    assert len(built) == 1


def test_client_reused_across_calls_and_kept_per_address_and_host(serve: Serve) -> None:
    """example.com and blog.example resolve to the same address: each gets a client of its own."""
    seen = serve(ok)

    clients = on_one_loop(
        get("https://example.com/a"), get("https://example.com/b"), get("https://blog.example/"),
        get("http://example.com/"), get(f"https://{PUBLIC}/"),
    )  # fmt: skip

    idle = clients.idle()
    assert list(idle) == [
        ("https", PUBLIC, 443, "example.com"),
        ("https", PUBLIC, 443, "blog.example"),
        ("http", PUBLIC, 80, "example.com"),
        ("https", PUBLIC, 443, PUBLIC),
    ]
    assert [len(c) for c in idle.values()] == [1, 1, 1, 1]
    assert [(r.url.host, r.headers["host"]) for r in seen[1:3]] == [
        (PUBLIC, "example.com"),
        (PUBLIC, "blog.example"),
    ]


def test_calls_at_once_get_a_client_each_kept_for_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client (its one connection) serves one call at a time; done, it serves the next."""
    release = asyncio.Event()
    built = []

    async def held(_request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, text="done")

    def new_client() -> httpx.AsyncClient:
        built.append(httpx.AsyncClient(transport=httpx.MockTransport(held)))
        return built[-1]

    monkeypatch.setattr(outbound, "_new_client", new_client)

    async def run() -> tuple[int, int, list[int]]:
        nonlocal release
        release = asyncio.Event()
        calls = [asyncio.ensure_future(get("https://example.com/")()) for _ in range(10)]
        await asyncio.sleep(0.01)
        during = len(built)
        release.set()
        await asyncio.gather(*calls)
        await get("https://example.com/")()
        return during, len(built), [len(c) for c in outbound._clients().idle().values()]

    assert asyncio.run(run()) == (10, 10, [10])
    assert len({id(c) for c in built}) == 10


def test_idle_clients_past_max_closed_least_recently_used_host_first(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbound_pool, "MAX_IDLE", 2)
    serve(ok)

    async def run() -> tuple[list[outbound_pool.Key], bool, bool]:
        await get("https://example.com/")()
        await get("https://blog.example/")()
        example, blog = (c[0] for c in outbound._clients().idle().values())
        await get("https://example.com/")()  # used again: blog.example is now the least recent
        await get("https://news.example/")()
        return list(outbound._clients().idle()), example.is_closed, blog.is_closed

    kept, example_closed, blog_closed = asyncio.run(run())

    assert kept == [("https", PUBLIC, 443, "example.com"), ("https", PUBLIC, 443, "news.example")]
    assert (example_closed, blog_closed) == (False, True)


def test_client_in_use_is_not_among_the_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    """The only idle client of example.com taken by a call, other hosts' clients come and go."""
    monkeypatch.setattr(outbound_pool, "MAX_IDLE", 1)
    release = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slow":
            await release.wait()
        return httpx.Response(200, text=request.headers["host"])

    monkeypatch.setattr(outbound, "transport", httpx.MockTransport(handler))

    async def run() -> tuple[list[outbound_pool.Key], list[outbound_pool.Key]]:
        nonlocal release
        release = asyncio.Event()
        await get("https://example.com/")()
        slow = asyncio.ensure_future(get("https://example.com/slow")())
        await asyncio.sleep(0.01)
        await get("https://blog.example/")()
        await get("https://news.example/")()
        during = list(outbound._clients().idle())
        release.set()
        await slow
        return during, list(outbound._clients().idle())

    assert asyncio.run(run()) == (
        [("https", PUBLIC, 443, "news.example")],
        [("https", PUBLIC, 443, "example.com")],
    )


def test_clients_idle_too_long_closed(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbound_pool, "IDLE_S", 0.0)
    serve(ok)

    clients = on_one_loop(get("https://example.com/"), get("https://blog.example/"))

    assert list(clients.idle()) == [("https", PUBLIC, 443, "blog.example")]


def test_redirect_to_private_address_refused_though_a_client_for_it_is_kept(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = serve(redirect_to("http://10.0.0.5/"))

    async def allowed_then_not() -> None:
        monkeypatch.setattr(settings, "outbound_allow_private", True)
        await outbound.fetch("http://10.0.0.5/", timeout_s=5)
        monkeypatch.setattr(settings, "outbound_allow_private", False)
        await outbound.fetch("http://example.com/start", timeout_s=5)

    with pytest.raises(PermanentError, match=r"10\.0\.0\.5 is a private address"):
        on_one_loop(allowed_then_not)

    assert [r.url.host for r in seen] == ["10.0.0.5", PUBLIC]


def test_lookups_of_one_name_at_once_share_one(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    serve(ok)
    lookups = []

    async def slow_resolve(host: str, _port: int) -> list[str]:
        lookups.append(host)
        await asyncio.sleep(0.01)
        return [PUBLIC]

    monkeypatch.setattr(outbound, "resolve", slow_resolve)

    async def run() -> None:
        await asyncio.gather(
            *(get("https://example.com/")() for _ in range(20)), get("https://blog.example/")()
        )
        await get("https://example.com/")()  # answers are not kept once the lookup is done

    asyncio.run(run())

    assert sorted(lookups) == ["blog.example", "example.com", "example.com"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7.0), ("0.5", 0.5), ("-3", 0.0), ("soon", None), ("inf", None), ("nan", None)],
)
def test_retry_after_s(value: str, expected: float | None) -> None:
    assert outbound.retry_after_s(httpx.Headers({"Retry-After": value})) == expected


def test_retry_after_s_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)

    delay = outbound.retry_after_s(httpx.Headers({"Retry-After": when}))

    assert delay is not None
    assert 100 < delay <= 120


def test_retry_after_s_absent() -> None:
    assert outbound.retry_after_s(httpx.Headers()) is None


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, RetryLater), (503, RetryLater), (408, RetryLater), (404, PermanentError), (301, PermanentError)],
)
def test_raise_for_status(status: int, error: type[Exception]) -> None:
    fetched = outbound.Fetched("http://example.com/", status, httpx.Headers({"Retry-After": "3"}), b"", False)

    with pytest.raises(error, match=f"answered {status}: why"):
        outbound.raise_for_status(fetched, "why")


def test_raise_for_status_success_passes() -> None:
    outbound.raise_for_status(outbound.Fetched("http://example.com/", 204, httpx.Headers(), b"", False))
