"""``llm``: a chat completion from an OpenAI-compatible provider at ``AGENTQ_LLM_BASE_URL``."""

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from agentq import Context, PermanentError, Plugin, command
from agentq.core.settings import settings
from workers.plugins import outbound

# Long completions take minutes; the execution's own timeout still bounds the whole run.
LLM_TIMEOUT_S = 120.0


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "tool"] = Field(description="Who speaks.")
    content: str = Field(description="What is said.")


class ChatParams(BaseModel):
    messages: list[Message] = Field(min_length=1, description="The conversation so far, oldest first.")
    model: str = Field("gpt-4o-mini", min_length=1, max_length=200, description="The provider's model name.")
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int | None = Field(
        None, ge=1, description="The most tokens to generate; the provider's default if unset."
    )


def _provider_error(fetched: outbound.Fetched) -> str:
    """The provider's own error message (OpenAI shape: ``{"error": {"message": …}}``), else the body."""
    try:
        error = json.loads(fetched.body).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str) and error:
        return error
    return fetched.text()[:500]


class LlmPlugin(Plugin):
    name = "llm"
    description = "Asks an OpenAI-compatible chat completions API (AGENTQ_LLM_BASE_URL)."

    @command(ChatParams)
    async def chat(self, ctx: Context, params: ChatParams) -> dict[str, Any]:
        """Send the messages and return the first choice's reply."""
        base_url = settings.llm_base_url.rstrip("/")
        if not base_url:
            raise PermanentError(
                "The llm plugin has no provider: set AGENTQ_LLM_BASE_URL on the workers to an "
                "OpenAI-compatible API (e.g. https://api.openai.com/v1), and AGENTQ_LLM_API_KEY if it needs one"
            )
        headers = {"Authorization": f"Bearer {settings.llm_api_key}"} if settings.llm_api_key else {}
        fetched = await outbound.fetch(
            f"{base_url}/chat/completions",
            method="POST",
            headers=headers,
            json=params.model_dump(exclude_none=True),
            timeout_s=LLM_TIMEOUT_S,
        )
        if not 200 <= fetched.status < 300:
            outbound.raise_for_status(fetched, _provider_error(fetched))
        if fetched.truncated:
            raise PermanentError(
                f"The LLM response exceeds AGENTQ_OUTBOUND_MAX_BYTES ({len(fetched.body)} bytes)"
            )
        try:
            data = json.loads(fetched.body)
            choice = data["choices"][0]
            content = (choice.get("message") or {}).get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise PermanentError(
                f"{fetched.url} answered {fetched.status} without a chat completion"
            ) from None
        return {
            "content": content,
            "model": data.get("model", params.model),
            "usage": data.get("usage"),
            "finish_reason": choice.get("finish_reason"),
            "raw": data,
        }
