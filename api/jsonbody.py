"""Request bodies are JSON (RFC 8259), read strictly: nothing is silently reinterpreted.

Python's json module reads NaN, Infinity and -Infinity, numbers beyond a double
(1e999, read as inf) and lone surrogates ("\\ud800"). None is JSON a database stores as
sent: MariaDB refuses them, SQLite stores null. Each is a 400 here, before the route runs.
A body sent without a JSON Content-Type is a 415 saying so (FastAPI would read it as a
string, and answer that it is not an object).

A valid body is still parsed once, by the C decoder: only its floats call back into
Python, and only a body with a surrogate escape is scanned again.
"""

import json
import math
import re
from collections.abc import Callable, Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from agentq.core.errors import UnsupportedMediaType
from api.onloop import LoopRoute


class _NotJSON(ValueError):
    """The decoder read a value that JSON has not."""


def _constant(name: str) -> Any:
    raise _NotJSON(f"{name} is not a JSON value (RFC 8259); send a number, a string or null")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NotJSON(f"{text} is beyond the range of a number (RFC 8259 §6: a finite double)")
    return value


_DECODER = json.JSONDecoder(parse_constant=_constant, parse_float=_finite)
# Any escape; group 1 is the code of a \uXXXX one. Escapes follow one another from the
# start of a valid JSON text (a backslash is in a string there), so ``\\ud800`` is one
# escaped backslash and text.
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# Strings (skipped), and the tokens the decoder reads as NaN or an infinite float.
_NUMERIC = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|NaN|-?Infinity|-?\d+(?:\.\d+)?[eE][-+]?\d+|-?\d+\.\d+')


def loads(body: bytes) -> Any:
    """The JSON value of ``body``; ``json.JSONDecodeError`` (a 400) saying what is not JSON."""
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError(
            "the body is not UTF-8 (RFC 8259 §8.1)", body.decode(errors="replace"), exc.start
        ) from None
    try:
        value = _DECODER.decode(text)
    except _NotJSON as exc:
        raise json.JSONDecodeError(str(exc), text, _non_finite_at(text)) from None
    except RecursionError:
        raise json.JSONDecodeError("the body nests too deep", text, 0) from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise json.JSONDecodeError(str(exc), text, 0) from None
    if _SURROGATE_ESCAPE.search(text) and (at := _lone_surrogate_at(text)) is not None:
        raise json.JSONDecodeError(
            f"{text[at : at + 6]} is half a surrogate pair, no character (RFC 8259 §8.2)", text, at
        )
    return value


def _non_finite_at(text: str) -> int:
    for match in _NUMERIC.finditer(text):
        token = match.group()
        if token[0] != '"' and (token[-1] in "Ny" or math.isinf(float(token))):
            return match.start()
    return 0


def _lone_surrogate_at(text: str) -> int | None:
    """Where the first escape of a lone surrogate is in ``text``, a valid JSON text."""
    high_at, high_end = -1, -1  # a high surrogate's escape, waiting for a low one right after it
    for match in _ESCAPE.finditer(text):
        code = int(match.group(1), 16) if match.group(1) else 0
        low = 0xDC00 <= code <= 0xDFFF
        if high_at >= 0:
            if low and match.start() == high_end:
                high_at = -1
                continue
            return high_at
        if 0xD800 <= code <= 0xDBFF:
            high_at, high_end = match.start(), match.end()
        elif low:
            return match.start()
    return high_at if high_at >= 0 else None


class _JSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class JSONRoute(LoopRoute):
    """A route whose body, where it takes one, is sent as JSON and read strictly."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        if self.body_field is None:
            return handle

        async def strict(request: Request) -> Response:
            content_type = request.headers.get("content-type", "")
            if not _is_json(content_type):
                sent = (
                    f"`Content-Type: {content_type.partition(';')[0]}`" if content_type else "no Content-Type"
                )
                message = f"Send the body as JSON, with `Content-Type: application/json`; this one came with {sent}."
                raise UnsupportedMediaType(
                    message,
                    [{"loc": ["header", "content-type"], "msg": message, "type": "unsupported_media_type"}],
                )
            return await handle(_JSONRequest(request.scope, request.receive))

        return strict
