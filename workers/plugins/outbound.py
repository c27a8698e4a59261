"""Outbound HTTP for plugins, guarded against server-side request forgery.

``fetch`` resolves the host itself and refuses any address that is not global
(loopback, link-local, private, reserved…) unless ``AGENTQ_OUTBOUND_ALLOW_PRIVATE=1``
(``agentq.core.outbound``, shared with webhooks).
It then connects to the very address it checked, so a second DNS answer cannot swap
in a private one, follows redirects by hand so that every hop is checked again, and
caps the body at ``AGENTQ_OUTBOUND_MAX_BYTES`` and the whole exchange at ``timeout_s``.
Clients, connections and the TLS context are shared between calls (``outbound_pool``):
a call costs the event loop little more than the exchange itself.

Tests replace the network: set ``transport`` to an ``httpx.MockTransport`` and
monkeypatch ``resolve``.
"""

import asyncio
import email.utils
import ipaddress
import math
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from agentq.core.errors import PermanentError, RetryLater
from agentq.core.outbound import ALLOW_HINT, refusal
from agentq.core.settings import settings
from workers.plugins import outbound_pool

MAX_REDIRECTS = 5
USER_AGENT = "agentq"

# The transport of every client; None connects for real.
transport: httpx.AsyncBaseTransport | None = None

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Credentials given for one origin must not travel to another one with a redirect.
_ORIGIN_BOUND = frozenset({"authorization", "cookie", "proxy-authorization"})


@dataclass(frozen=True)
class Fetched:
    """A response, read within the caps; ``url`` is the last hop's."""

    url: str
    status: int
    headers: httpx.Headers
    body: bytes
    truncated: bool
    charset: str | None = None

    def text(self) -> str:
        """The body decoded with the charset the server named, else UTF-8."""
        try:
            return self.body.decode(self.charset or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Body:
    """What a request sends: ``json`` to serialize, or ``content`` as it is (signed bytes)."""

    json: Any = None
    content: bytes | None = None


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, looked up on a resolver thread."""
    infos = await asyncio.get_running_loop().run_in_executor(
        outbound_pool.resolver(), socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _new_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=transport, verify=outbound_pool.tls_context(), limits=outbound_pool.LIMITS, trust_env=False
    )


def _clients() -> outbound_pool.LoopClients:
    return outbound_pool.of_running_loop(_new_client)


def _refused(url: httpx.URL, why: str) -> PermanentError:
    return PermanentError(f"Refusing to fetch {url}: {why} ({ALLOW_HINT})")


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


async def check_url(url: httpx.URL) -> list[str]:
    """Refuse ``url`` unless it is http(s) to an allowed host; return the addresses checked.

    An empty list means there is nothing to pin: the host is an IP literal. With private
    addresses allowed, a name is still resolved here (off the loop, shared) and pinned.
    """
    if url.scheme not in ("http", "https"):
        raise PermanentError(f"Refusing to fetch {url}: only http and https URLs are allowed")
    if not url.host:
        raise PermanentError(f"Refusing to fetch {url}: the URL has no host")
    allow_private = settings.outbound_allow_private
    try:
        literal = ipaddress.ip_address(url.host)
    except ValueError:
        literal = None
    if literal is not None:
        if not allow_private and (why := refusal(literal)):
            raise _refused(url, f"{literal} is {why}")
        return []
    host = url.raw_host.decode("ascii")
    try:
        addresses = await _clients().lookup(host, _port(url), resolve)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_NONAME:
            raise PermanentError(f"Cannot fetch {url}: {host} does not resolve") from None
        raise RetryLater(f"Cannot resolve {host}: {exc.strerror}") from None
    if not addresses:
        raise RetryLater(f"Cannot resolve {host}: no addresses")
    for address in [] if allow_private else addresses:
        if why := refusal(ipaddress.ip_address(address)):
            raise _refused(url, f"{host} resolves to {address}, {why}")
    return addresses


async def _read(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            return bytes(body[:max_bytes]), True
    return bytes(body), False


async def _hop(
    method: str, url: httpx.URL, addresses: list[str], headers: dict[str, str], sent: Body, timeout_s: float
) -> Fetched | str:
    """Send to the first checked address that connects; the response read within the cap,
    or where it redirects to (GET only: replaying a request body elsewhere is seldom meant)."""
    clients = _clients()
    port = _port(url)
    if addresses:  # pinned: the name stays in Host, SNI and the certificate check
        host = url.raw_host.decode("ascii")
        headers = {**headers, "Host": url.netloc.decode("ascii")}
        extensions = {"sni_hostname": host}
    else:
        host, extensions, addresses = url.host, {}, [url.host]
    for i, address in enumerate(addresses):
        # Pooled per address *and* host: a connection opened for one host never serves another.
        async with clients.client((url.scheme, address, port, host)) as client:
            target = url.copy_with(host=address) if extensions else url
            request = client.build_request(
                method,
                target,
                headers=headers,
                json=sent.json,
                content=sent.content,
                timeout=timeout_s,
                extensions=extensions,
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.ConnectError:
                if i + 1 < len(addresses):
                    continue  # the next address, as a resolving client would
                raise
            try:
                location = response.headers.get("location")
                if method != "GET" or response.status_code not in _REDIRECTS or not location:
                    body, truncated = await _read(response, settings.outbound_max_bytes)
                    charset = response.charset_encoding
                    return Fetched(str(url), response.status_code, response.headers, body, truncated, charset)
                return str(location)
            finally:
                await response.aclose()
    raise AssertionError("unreachable: the last address returns or raises")


async def _exchange(
    method: str, url: httpx.URL, headers: dict[str, str], sent: Body, timeout_s: float
) -> Fetched:
    for _ in range(MAX_REDIRECTS + 1):
        addresses = await check_url(url)
        hop = await _hop(method, url, addresses, headers, sent, timeout_s)
        if isinstance(hop, Fetched):
            return hop
        target = url.join(hop)
        if (target.scheme, target.host, target.port) != (url.scheme, url.host, url.port):
            headers = {k: v for k, v in headers.items() if k.lower() not in _ORIGIN_BOUND}
        url = target
    raise PermanentError(f"Gave up fetching after {MAX_REDIRECTS} redirects, at {url}")


async def fetch(
    url: str,
    *,
    timeout_s: float,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    json: Any = None,
    content: bytes | None = None,
) -> Fetched:
    """Send one request under the guard and read the response within the caps.

    Refused URLs and addresses raise ``PermanentError``; network failures and running
    past ``timeout_s`` (DNS, redirects and body included) raise ``RetryLater``. The
    status is returned as it came; see ``raise_for_status``.
    """
    try:
        start = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise PermanentError(f"Cannot fetch {url!r}: {exc}") from None
    merged = {"User-Agent": USER_AGENT, **(headers or {})}
    try:
        async with asyncio.timeout(timeout_s):
            return await _exchange(method, start, merged, Body(json, content), timeout_s)
    except TimeoutError:
        raise RetryLater(f"Fetching {url} took longer than {timeout_s:g}s") from None
    except httpx.TransportError as exc:
        raise RetryLater(f"Fetching {url} failed: {_describe(exc)}") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise PermanentError(f"Fetching {url} failed: {_describe(exc)}") from exc


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def retry_after_s(headers: httpx.Headers) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), if any."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def raise_for_status(fetched: Fetched, detail: str = "") -> None:
    """Raise unless the status is 2xx: ``RetryLater`` for 408, 429 and 5xx, else ``PermanentError``."""
    if 200 <= fetched.status < 300:
        return
    message = f"{fetched.url} answered {fetched.status}" + (f": {detail}" if detail else "")
    if fetched.status in (408, 429) or fetched.status >= 500:
        raise RetryLater(message, delay_s=retry_after_s(fetched.headers))
    raise PermanentError(message)
