"""The floor under outbound calls: N GETs at once from a bare asyncio script sharing one
``httpx.AsyncClient``, no queue, no guard.

Its connections are not capped: with httpx's default cap (100), a thousand GETs queued on
a cold client keep httpcore's pool busy re-examining the queue, some 28 s of CPU for what
takes 2 s uncapped; the worker caps none either.

    python -m bench.bare_http URL N    prints {"seconds": …, "ok": …} as JSON
"""

import asyncio
import json
import sys
import time

import httpx


async def gets(url: str, n: int) -> dict[str, float]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=100)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        started = time.monotonic()
        responses = await asyncio.gather(*(client.get(url) for _ in range(n)))
        seconds = time.monotonic() - started
    return {"seconds": seconds, "ok": sum(r.status_code == 200 for r in responses)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(gets(sys.argv[1], int(sys.argv[2])))))
