"""``http``: fetches a URL with GET through the outbound guard."""

from typing import Any

from pydantic import BaseModel, Field

from agentq import Context, Plugin, command
from workers.plugins import outbound


class GetParams(BaseModel):
    url: str = Field(
        pattern=r"^https?://", max_length=2048, description="The http:// or https:// URL to fetch."
    )
    timeout_s: float = Field(
        10, gt=0, le=60, description="Give up (and retry later) after this long, redirects included."
    )


class HttpPlugin(Plugin):
    name = "http"
    description = "Fetches a URL with GET; refuses private addresses and caps the body."

    @command(GetParams)
    async def get(self, ctx: Context, params: GetParams) -> dict[str, Any]:
        """GET a URL and return its status, headers and body (capped)."""
        fetched = await outbound.fetch(params.url, timeout_s=params.timeout_s)
        return {
            "status": fetched.status,
            "headers": dict(fetched.headers.items()),
            "body": fetched.text(),
            "truncated": fetched.truncated,
            "url": fetched.url,
        }
