"""Request body cap: a body over ``AGENTQ_MAX_BODY_BYTES`` is a 413 before it is parsed."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentq.core.settings import settings
from api.problems import problem


class BodyLimit:
    """Answers 413 on a declared Content-Length over the cap; buffers a chunked body up to it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            if length.isdigit() and int(length) > settings.max_body_bytes:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)  # the server holds the body to its declared length
            return
        if b"chunked" not in headers.get(b"transfer-encoding", b""):
            await self.app(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > settings.max_body_bytes:
                await self._refuse(scope, receive, send)
                return
        body = b"".join(chunks)

        async def replay() -> Message:
            nonlocal body
            message: Message = {"type": "http.request", "body": body, "more_body": False}
            body = b""
            return message

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413, "payload-too-large", f"The request body exceeds {settings.max_body_bytes} bytes; send less."
        )
        await response(scope, receive, send)
