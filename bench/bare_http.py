"""The floor under outbound calls: N GETs at once from a bare asyncio script sharing one
``httpx.AsyncClient`` (its default limits), no queue, no guard.

    python -m bench.bare_http URL N    prints {"seconds": …, "ok": …} as JSON
"""

import asyncio
import json
import sys
import time

import httpx


async def gets(url: str, n: int) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=60) as client:
        started = time.monotonic()
        responses = await asyncio.gather(*(client.get(url) for _ in range(n)))
        seconds = time.monotonic() - started
    return {"seconds": seconds, "ok": sum(r.status_code == 200 for r in responses)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(gets(sys.argv[1], int(sys.argv[2])))))
