"""The outside internet for the I/O benchmark: an ASGI app that uvicorn serves in a process of its own.

    python -m uvicorn bench.outside:app --port 8000 --lifespan off

``GET /hello`` answers at once; ``POST /v1/chat/completions`` answers like an
OpenAI-compatible provider after ``AGENTQ_BENCH_CHAT_DELAY_S`` (default 0.5 s);
``GET /count`` tells how many of each it answered, so that a run's side effects can be counted.
"""

import asyncio
import json
import os
from collections import Counter
from typing import Any

CHAT_DELAY_S = float(os.environ.get("AGENTQ_BENCH_CHAT_DELAY_S", "0.5"))
counts: Counter[str] = Counter()

Receive = Any
Send = Any


def completion(request: bytes) -> dict[str, Any]:
    body = json.loads(request or b"{}")
    said = (body.get("messages") or [{}])[-1].get("content", "")
    return {
        "id": f"chatcmpl-{counts['chat']}",
        "object": "chat.completion",
        "model": body.get("model"),
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": said}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    request = b""
    more = True
    while more:
        message = await receive()
        request += message.get("body", b"")
        more = message.get("more_body", False)
    status, content_type = 200, b"application/json"
    if scope["method"] == "POST" and scope["path"] == "/v1/chat/completions":
        counts["chat"] += 1
        await asyncio.sleep(CHAT_DELAY_S)
        payload = json.dumps(completion(request)).encode()
    elif scope["path"] == "/count":
        payload = json.dumps(counts).encode()
    elif scope["path"] == "/hello":
        counts["hello"] += 1
        status, content_type, payload = 200, b"text/plain", b"hello from outside"
    else:
        status, payload = 404, b"{}"
    headers = [(b"content-type", content_type), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
