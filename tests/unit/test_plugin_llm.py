"""The ``llm`` plugin: OpenAI-compatible chat completions and how provider failures map to retries."""

import json
from collections.abc import Callable
from typing import Any

import httpx
import pydantic
import pytest

from agentq.core.errors import PermanentError, RetryLater
from agentq.core.settings import settings
from agentq.plugin import run_command
from tests.unit.conftest import PUBLIC, Handler, run_side_by_side
from workers.plugins.llm import LlmPlugin

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
}


@pytest.fixture(autouse=True)
def provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider at https://llm.example/v1 with a key (no real network: see conftest)."""
    monkeypatch.setattr(settings, "llm_base_url", "https://llm.example/v1/")
    monkeypatch.setattr(settings, "llm_api_key", "sk-test")


def chat(**params: Any) -> dict[str, Any]:
    params.setdefault("messages", MESSAGES)
    result: dict[str, Any] = run_command(LlmPlugin(), "chat", params)
    return result


def test_chat_returns_first_choice(serve: Callable[[Handler], list[httpx.Request]]) -> None:
    seen = serve(lambda _request: httpx.Response(200, json=COMPLETION))

    result = chat()

    assert result == {
        "content": "Hello.",
        "model": "gpt-4o-mini-2024-07-18",
        "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
        "finish_reason": "stop",
        "raw": COMPLETION,
    }
    request = seen[0]
    assert request.method == "POST"
    assert (request.headers["host"], request.url.path) == ("llm.example", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert json.loads(request.content) == {"messages": MESSAGES, "model": "gpt-4o-mini", "temperature": 0.7}


def test_chats_side_by_side_keep_clients_for_the_provider(
    serve: Callable[[Handler], list[httpx.Request]],
) -> None:
    seen = serve(lambda _request: httpx.Response(200, json=COMPLETION))

    results, kept = run_side_by_side(LlmPlugin(), "chat", [{"messages": MESSAGES}] * 5)

    assert [r["content"] for r in results] == ["Hello."] * 5
    assert list(kept) == [("https", PUBLIC, 443, "llm.example")]
    assert [r.headers["authorization"] for r in seen] == ["Bearer sk-test"] * 5


def test_chat_sends_model_temperature_and_max_tokens(serve: Callable[[Handler], list[httpx.Request]]) -> None:
    seen = serve(lambda _request: httpx.Response(200, json=COMPLETION))

    chat(model="llama3", temperature=0, max_tokens=64)

    body = json.loads(seen[0].content)
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("llama3", 0, 64)


def test_chat_without_key_sends_no_authorization(
    serve: Callable[[Handler], list[httpx.Request]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "llm_api_key", "")
    seen = serve(lambda _request: httpx.Response(200, json=COMPLETION))

    chat()

    assert "authorization" not in seen[0].headers


def test_chat_rate_limited_retries_after_provider_delay(
    serve: Callable[[Handler], list[httpx.Request]],
) -> None:
    serve(
        lambda _request: httpx.Response(
            429,
            headers={"Retry-After": "7"},
            json={"error": {"message": "Rate limit reached", "type": "requests"}},
        )
    )

    with pytest.raises(RetryLater, match="answered 429: Rate limit reached") as caught:
        chat()

    assert caught.value.delay_s == 7


@pytest.mark.parametrize("status", [500, 502, 503])
def test_chat_server_error_retries_later(
    serve: Callable[[Handler], list[httpx.Request]], status: int
) -> None:
    serve(lambda _request: httpx.Response(status, text="upstream trouble"))

    with pytest.raises(RetryLater, match="upstream trouble") as caught:
        chat()

    assert caught.value.delay_s is None


def test_chat_network_error_retries_later(serve: Callable[[Handler], list[httpx.Request]]) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    serve(down)

    with pytest.raises(RetryLater):
        chat()


def test_chat_bad_request_is_permanent_with_provider_message(
    serve: Callable[[Handler], list[httpx.Request]],
) -> None:
    error = {"error": {"message": "The model `gpt-9` does not exist", "type": "invalid_request_error"}}
    serve(lambda _request: httpx.Response(400, json=error))

    with pytest.raises(PermanentError, match="answered 400: The model `gpt-9` does not exist"):
        chat(model="gpt-9")


def test_chat_unauthorized_is_permanent(serve: Callable[[Handler], list[httpx.Request]]) -> None:
    serve(lambda _request: httpx.Response(401, json={"error": "invalid api key"}))

    with pytest.raises(PermanentError, match="answered 401: invalid api key"):
        chat()


def test_chat_missing_base_url_is_permanent(
    serve: Callable[[Handler], list[httpx.Request]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "llm_base_url", "")
    seen = serve(lambda _request: httpx.Response(200, json=COMPLETION))

    with pytest.raises(PermanentError, match="set AGENTQ_LLM_BASE_URL"):
        chat()

    assert seen == []


def test_chat_answer_without_choices_is_permanent(serve: Callable[[Handler], list[httpx.Request]]) -> None:
    serve(lambda _request: httpx.Response(200, json={"choices": []}))

    with pytest.raises(PermanentError, match="without a chat completion"):
        chat()


def test_chat_local_provider_needs_allow_private(
    serve: Callable[[Handler], list[httpx.Request]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "llm_base_url", "http://127.0.0.1:11434/v1")
    serve(lambda _request: httpx.Response(200, json=COMPLETION))

    with pytest.raises(PermanentError, match="AGENTQ_OUTBOUND_ALLOW_PRIVATE=1"):
        chat()

    monkeypatch.setattr(settings, "outbound_allow_private", True)
    assert chat()["content"] == "Hello."


@pytest.mark.parametrize(
    "params",
    [
        {"messages": []},
        {"messages": [{"role": "robot", "content": "beep"}]},
        {"messages": [{"role": "user"}]},
        {"temperature": 2.5},
        {"max_tokens": 0},
    ],
)
def test_chat_invalid_params_rejected(params: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        chat(**params)
