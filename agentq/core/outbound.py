"""Which addresses agentq may send requests to: the guard that plugins' fetches
(``workers/plugins/outbound.py``) and webhooks share.

Loopback, link-local, private, reserved… addresses are refused unless
``AGENTQ_OUTBOUND_ALLOW_PRIVATE=1``. A fetch checks the addresses a name resolves to and
then connects to the very address it checked (DNS pinning); ``url_refusal`` is the check
a URL gets before it is stored (a webhook's, at submit).
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from agentq.core.settings import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW_HINT = "set AGENTQ_OUTBOUND_ALLOW_PRIVATE=1 to allow private addresses"
# DNS64 networks answer with these for IPv4-only hosts; judge the IPv4 address inside.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be fetched (e.g. "a loopback address"), or None if it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return refusal(embedded)
    # Most specific first: 0.0.0.0 and 127.0.0.1 are "private" too in ipaddress's eyes.
    kinds = (
        ("an unspecified", address.is_unspecified),
        ("a loopback", address.is_loopback),
        ("a link-local", address.is_link_local),
        ("a multicast", address.is_multicast),
        ("a private", address.is_private),
        ("a reserved", address.is_reserved),
    )
    for kind, matches in kinds:
        if matches:
            return f"{kind} address"
    return None if address.is_global else "not a globally routable address"


def url_refusal(url: str, *, resolve: bool) -> str | None:
    """Why ``url`` may not be sent to, or None: it must be absolute http(s) with a host,
    and (unless private addresses are allowed) not name a refused address; with
    ``resolve``, neither may any address its host resolves to. An address that only a
    later DNS answer brings is caught when the request is sent."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http:// or https:// URL"
    if settings.outbound_allow_private:
        return None
    host = parts.hostname
    try:
        addresses: list[str] = [str(ipaddress.ip_address(host))]
    except ValueError:
        if host == "localhost" or host.endswith(".localhost"):
            return f"{host} is a loopback name ({ALLOW_HINT})"
        if not resolve:
            return None
        try:
            infos = socket.getaddrinfo(host, parts.port or 443, 0, socket.SOCK_STREAM)
        except (OSError, UnicodeError):  # no such name, or not one IDNA can encode
            return f"{host} does not resolve"
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        if why := refusal(ipaddress.ip_address(address)):
            said = f"{host} is {why}" if address == host else f"{host} resolves to {address}, {why}"
            return f"{said} ({ALLOW_HINT})"
    return None
