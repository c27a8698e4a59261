"""Webhooks: N executions with a webhook each to a local receiver, all delivered; and the
P1 batch rate with webhooks on against off, alternating in the same run.

    python -m bench.webhooks [--n 5000] [--rounds 2]

Each round submits N ``echo`` executions over POST /v1/executions/batch without a webhook
(off), then N with ``webhook`` set to a receiver in this process (on); a phase ends when
all N rows are ``succeeded``. The on phase then waits until the receiver has every
execution's event. Latency is the receipt time minus the execution's ``finished_at``
(the payload's); deliveries/s is N over the time from the first submission to the last
receipt. One API (gunicorn, 2 processes), one worker, one beat (the sweeper).
"""

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import httptools
from cryptography.fernet import Fernet

from bench.harness import (
    ROOT,
    Report,
    Row,
    Stack,
    arguments,
    free_port,
    percentile,
    progress,
    queue_name,
    stack,
    submit_batches,
)

ECHO: dict[str, Any] = {"plugin": "echo", "command": "echo", "params": {}}
RATIO_TARGET = 0.8
P99_TARGET_S = 1.0


class _Answering(asyncio.Protocol):
    """One connection of the receiver: requests parsed by httptools, each answered 204."""

    def __init__(self, receiver: "Receiver") -> None:
        self.receiver = receiver
        self.parser = httptools.HttpRequestParser(self)
        self.body: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_body(self, chunk: bytes) -> None:
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        now = time.time()
        data = json.loads(b"".join(self.body))["data"]
        self.body = []
        self.receiver.received[data["id"]] = (now, datetime.fromisoformat(data["finished_at"]).timestamp())
        assert self.transport is not None
        self.transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")


@dataclass
class Receiver:
    """An HTTP/1.1 keep-alive server on its own thread that answers 204 to every POST and
    notes, per execution, when its event arrived and when it had finished. It stands in for
    the receivers out on the internet, so it is kept cheap: it shares the 2 cores."""

    port: int = field(default_factory=free_port)
    received: dict[str, tuple[float, float]] = field(default_factory=dict)  # id -> (receipt, finished)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        server = loop.create_server(lambda: _Answering(self), "127.0.0.1", self.port, backlog=1024)
        loop.run_until_complete(server)
        threading.Thread(target=loop.run_forever, name="receiver", daemon=True).start()


def batch_rate(st: Stack, n: int, item: dict[str, Any]) -> tuple[float, float, list[str]]:
    """(executions/s end to end, the wall-clock start, the ids) of N batch submissions."""
    before = sum(st.counts().values())
    with st.client(timeout=120) as client:
        started, started_wall = time.monotonic(), time.time()
        ids = submit_batches(client, n, item)
    done = st.wait_terminal(before + n, 900, "batch")
    return n / (done - started), started_wall, ids


def main() -> None:
    parser = arguments(__doc__ or "", n=5000)
    parser.add_argument("--rounds", type=int, default=2, help="off/on rounds (default 2)")
    parser.add_argument(
        "--sender-worker",
        action="store_true",
        help="send from a worker of its own (-Q the webhook queue), not the executions' worker",
    )
    args = parser.parse_args()
    report = Report("webhooks", {"n": args.n, "rounds": args.rounds, "sender_worker": args.sender_worker})
    receiver = Receiver()
    receiver.start()
    env = {
        "AGENTQ_WEBHOOK_SECRET_KEY": Fernet.generate_key().decode(),
        "AGENTQ_WEBHOOK_QUEUE": f"{queue_name(args.database)}.webhooks",
        "AGENTQ_OUTBOUND_ALLOW_PRIVATE": "1",  # the receiver is on 127.0.0.1
    }
    hooked = {**ECHO, "webhook": receiver.url}
    off_rates: list[float] = []
    on_rates: list[float] = []
    rates: list[float] = []
    latencies: list[float] = []
    with stack(args.database, args.loglevel, ROOT, **env) as st:
        st.start_api()
        if args.sender_worker:
            st.start_worker(AGENTQ_WEBHOOK_SENDER="false")
            st.start_worker("sender", queues=env["AGENTQ_WEBHOOK_QUEUE"])
        else:
            st.start_worker()
        st.start_beat("beat")
        st.wait_for_plugins("echo")
        warm_up = min(200, args.n)
        progress(f"warm-up: {warm_up} executions with a webhook")
        with st.client() as client:
            submit_batches(client, warm_up, hooked)
        st.wait_terminal(warm_up, 120, "warm-up")
        for round_ in range(args.rounds):
            progress(f"round {round_ + 1}: {args.n:,} without webhooks")
            off_rates.append(batch_rate(st, args.n, ECHO)[0])
            progress(f"round {round_ + 1}: {args.n:,} with a webhook each")
            rate, started, ids = batch_rate(st, args.n, hooked)
            on_rates.append(rate)
            deadline = time.monotonic() + 300
            while not all(i in receiver.received for i in ids):
                if time.monotonic() > deadline:
                    missing = sum(i not in receiver.received for i in ids)
                    raise TimeoutError(f"{missing} of {args.n} webhooks not received after 300 s")
                time.sleep(0.05)
            last = max(receiver.received[i][0] for i in ids)
            rates.append(args.n / (last - started))
            latencies += [receiver.received[i][0] - receiver.received[i][1] for i in ids]
            progress(f"  all {args.n:,} delivered; {on_rates[-1]:,.0f} vs {off_rates[-1]:,.0f} exec/s")
    ratios = [on / off for on, off in zip(on_rates, off_rates, strict=True)]
    ratio = sum(ratios) / len(ratios)
    off_mean, on_mean = sum(off_rates) / len(off_rates), sum(on_rates) / len(on_rates)
    report.add(Row("P1 batch → all succeeded, webhooks off", off_mean, "exec/s"))
    report.add(
        Row(
            "P1 batch → all succeeded, a webhook each",
            on_mean,
            "exec/s",
            off_mean,
            "webhooks off",
            f"≥ {RATIO_TARGET}× off",
            ratio >= RATIO_TARGET,
        )
    )
    report.add(Row("  on/off per round: " + ", ".join(f"{r:.2f}" for r in ratios), ratio, "×"))
    report.add(Row(f"deliveries of {args.n:,} (first submit → last receipt)", min(rates), "/s"))
    report.add(Row("  delivery latency p50 (finished_at → receipt)", 1000 * percentile(latencies, 50), "ms"))
    p99 = percentile(latencies, 99)
    report.add(
        Row(
            "  delivery latency p99 (finished_at → receipt)",
            1000 * p99,
            "ms",
            target=f"≤ {P99_TARGET_S * 1000:.0f} ms",
            met=p99 <= P99_TARGET_S,
        )
    )
    report.notes.append("the receiver runs in the benchmark's process on the same 2 cores")
    report.finish(args.results_dir)


if __name__ == "__main__":
    main()
