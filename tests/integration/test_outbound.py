"""Outbound calls over real sockets: pooled connections per address and host, and many
``http`` runs at once on one real worker."""

import asyncio
import datetime
import ipaddress
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agentq.core import queue, store
from agentq.core.settings import settings
from tests.integration.conftest import Stack
from tests.integration.outside import Handler as Outside
from tests.integration.processes import child_env, start_worker, wait_until
from workers.plugins import outbound, outbound_pool

NAMES = ("a.test", "b.test")


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, signer: ec.EllipticCurvePrivateKey, ca: bool
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        names = [x509.DNSName(n) for n in NAMES] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting its CA): a certificate for a.test and b.test."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test CA", ca_key, "test CA", ca_key, ca=True)
    leaf = _certificate("a.test", key, "test CA", ca_key, ca=False)
    folder = tmp_path_factory.mktemp("tls")
    (folder / "leaf.pem").write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "leaf.pem")
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


class Recorder(BaseHTTPRequestHandler):
    """Answers every GET on a kept-open connection; records each request's connection."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[int, str]]] = []  # (client port: the connection, Host)
    names: ClassVar[dict[int, str]] = {}  # client port -> the name it asked for in TLS (SNI)

    def log_message(self, *_: Any) -> None:
        pass

    def do_GET(self) -> None:
        Recorder.seen.append((self.client_address[1], self.headers["Host"].split(":")[0]))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture
def recorder(tls: tuple[ssl.SSLContext, ssl.SSLContext], request: pytest.FixtureRequest) -> Iterator[str]:
    """A local server for a.test and b.test, both at 127.0.0.1: yields its base URL."""
    scheme = request.param
    Recorder.seen, Recorder.names = [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    if scheme == "https":
        context = tls[0]

        def sni(sock: ssl.SSLSocket, name: str | None, _: ssl.SSLContext) -> None:
            Recorder.names[sock.getpeername()[1]] = name or ""

        context.sni_callback = sni  # type: ignore[assignment]
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://{{name}}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("recorder", ["http", "https"], indirect=True)
def test_pooled_connection_serves_its_own_host_only(
    recorder: str, tls: tuple[ssl.SSLContext, ssl.SSLContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a.test and b.test at one checked address, each has connections of its own; calls
    to one host reuse its connection."""

    async def at_loopback(host: str, _port: int) -> list[str]:
        assert host in NAMES
        return ["127.0.0.1"]

    monkeypatch.setattr(outbound, "resolve", at_loopback)
    monkeypatch.setattr(outbound_pool, "tls_context", lambda: tls[1])
    monkeypatch.setattr(settings, "outbound_allow_private", True)  # still resolved and pinned

    async def calls() -> list[int]:
        statuses = []
        for name in ("a.test", "a.test", "b.test", "a.test", "b.test"):
            fetched = await outbound.fetch(recorder.format(name=name) + "/", timeout_s=10)
            statuses.append(fetched.status)
        await outbound._clients().aclose()
        return statuses

    assert asyncio.run(calls()) == [200] * 5

    connections: dict[str, set[int]] = {}
    for port, host in Recorder.seen:
        connections.setdefault(host, set()).add(port)
    assert [host for _, host in Recorder.seen] == ["a.test", "a.test", "b.test", "a.test", "b.test"]
    assert {host: len(ports) for host, ports in connections.items()} == {"a.test": 1, "b.test": 1}
    assert connections["a.test"].isdisjoint(connections["b.test"])
    if recorder.startswith("https"):
        assert Recorder.names == {connections[n].pop(): n for n in NAMES}


# A lease this short runs out under a worker whose loop stalls for a few seconds; the
# reaper (the beat fixture) then publishes the run again and it runs twice.
SHORT_LEASE_S = 3


@pytest.fixture
def short_lease_worker(stack: Stack) -> Iterator[str]:
    """A worker with a short lease, on a queue of its own; yields the queue's name."""
    name = f"agentq.outbound.{time.time_ns()}"
    env = child_env(stack.env, AGENTQ_LEASE_S=str(SHORT_LEASE_S))
    proc = start_worker(env, stack.log_dir, f"outbound-{time.time_ns()}", queues=name)
    wait_until(lambda: "ready." in proc.log(), 60, "the short-lease worker")
    yield name
    proc.stop()


@pytest.mark.usefixtures("beat")
def test_300_http_gets_on_one_worker_each_run_once(
    stack: Stack, outside: str, short_lease_worker: str
) -> None:
    """300 outbound calls at once leave the worker's loop free enough to renew its leases:
    every run succeeds at its first attempt, and the server is asked once per run."""
    tag = time.time_ns()
    urls = [f"{outside}/hello?run={tag}-{i}" for i in range(300)]
    specs = [store.NewExecution("http", "get", {"url": url}, short_lease_worker, 5, 60, 3) for url in urls]
    submitted = store.create_executions(specs)
    queue.enqueue([s.execution for s in submitted])

    rows = [stack.wait(s.execution.id, timeout_s=60) for s in submitted]

    assert {(r["status"], r["attempts"]) for r in rows} == {("succeeded", 1)}
    assert {r["result"]["body"] for r in rows} == {"hello from outside"}
    assert [Outside.hits[url.removeprefix(outside)] for url in urls] == [1] * 300
