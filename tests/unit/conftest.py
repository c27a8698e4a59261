"""Unit tests open no sockets: names resolve from ``DNS``, outbound HTTP goes to a handler."""

import asyncio
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from agentq.core.settings import settings
from agentq.plugin import Context, Plugin
from workers.plugins import outbound, outbound_pool

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

PUBLIC = "93.184.216.34"
DNS = {
    "example.com": [PUBLIC],
    "other.example": ["1.1.1.1", "8.8.8.8"],
    "mixed.example": [PUBLIC, "10.1.2.3"],
    "internal.example": ["10.0.0.5"],
    "intranet.example": ["192.168.0.10"],
    "localhost": ["127.0.0.1", "::1"],
    "news.example": [PUBLIC],
    "blog.example": [PUBLIC],
    "feeds.internal": ["10.20.30.40"],
    "llm.example": [PUBLIC],
}
Handler = Callable[[httpx.Request], httpx.Response]
Serve = Callable[[Handler], list[httpx.Request]]
Kept = dict[outbound_pool.Key, list[httpx.AsyncClient]]


async def fake_resolve(host: str, _port: int) -> list[str]:
    try:
        return DNS[host]
    except KeyError:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


def no_sockets(*_args: object) -> None:
    raise AssertionError("unit tests open no sockets")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names resolve from ``DNS``; any real connection or lookup fails the test."""
    monkeypatch.setattr(outbound, "resolve", fake_resolve)
    monkeypatch.setattr(socket.socket, "connect", no_sockets)
    monkeypatch.setattr(socket, "getaddrinfo", no_sockets)
    monkeypatch.setattr(settings, "outbound_allow_private", False)


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Serve:
    """Route outbound requests to a handler; returns the list of requests it sees."""

    def install(handler: Handler) -> list[httpx.Request]:
        seen: list[httpx.Request] = []

        def record(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return handler(request)

        monkeypatch.setattr(outbound, "transport", httpx.MockTransport(record))
        return seen

    return install


API_KEY = "unit-admin-key"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> "TestClient":
    """The API in process, with the admin key, no rate limit, and a catalog of echo and
    simulate; its lifespan is not run (it would connect to Redis)."""
    from fastapi.testclient import TestClient

    from api.catalog import catalog
    from api.main import create_app
    from workers.plugins.echo import EchoPlugin
    from workers.plugins.registry import Registry
    from workers.plugins.simulate import SimulatePlugin

    registry = Registry()
    registry.add(SimulatePlugin)
    registry.add(EchoPlugin)
    monkeypatch.setattr(settings, "admin_api_key", API_KEY)
    monkeypatch.setattr(settings, "rate_limit_per_s", 0)
    monkeypatch.setattr(catalog, "_load", lambda: registry.catalog("agentq"))
    monkeypatch.setattr(catalog, "_loaded_at", float("-inf"))
    return TestClient(create_app(), headers={"Authorization": f"Bearer {API_KEY}"})


def run_side_by_side(plugin: Plugin, command: str, params: list[dict[str, Any]]) -> tuple[list[Any], Kept]:
    """Run a command once per params at the same time on one event loop, as a worker does;
    returns the results and the outbound clients the loop kept once they were done."""
    cmd = type(plugin).commands[command]
    fn = plugin.bind(cmd)

    async def run() -> tuple[list[Any], Kept]:
        calls = [
            fn(Context(f"test-{i}", 1), cmd.params_model.model_validate(p)) for i, p in enumerate(params)
        ]
        results = await asyncio.gather(*calls)
        return list(results), outbound._clients().idle()

    return asyncio.run(run())
