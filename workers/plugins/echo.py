"""``echo``: returns its params; the smallest possible agent."""

from typing import Any

from pydantic import BaseModel, ConfigDict

from agentq import Context, Plugin, command


class EchoParams(BaseModel):
    model_config = ConfigDict(extra="allow")


class EchoPlugin(Plugin):
    name = "echo"
    description = "Returns its params unchanged."

    @command(EchoParams)
    def echo(self, ctx: Context, params: EchoParams) -> dict[str, Any]:
        """Return the params."""
        return params.model_dump()
