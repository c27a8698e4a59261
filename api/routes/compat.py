"""``POST /api/agent/execute``: the slash-command interface, run on the queue."""

from fastapi import APIRouter, Response

from agentq.core.errors import UnknownCommand
from agentq.core.models import ExecutionStatus
from agentq.core.settings import settings
from api import polling
from api.auth import OwnerDep
from api.catalog import catalog
from api.jsonbody import JSONRoute
from api.schemas import AgentExecute, AgentResult, ExecutionCreate
from api.submit import Single, submit_single

router = APIRouter(tags=["compatibility"], route_class=JSONRoute)


@router.post("/api/agent/execute")
async def execute_agent(request: AgentExecute, response: Response, owner: OwnerDep) -> AgentResult:
    """Run `/command` on the plugin that owns it and wait (bounded) for the answer."""
    name = request.command.removeprefix("/")
    await catalog.refresh()
    owners = [e for e in catalog.owners_of(name) if request.plugin in (None, e.plugin)]
    if len(owners) != 1:
        offered = sorted(f"/{c}" for _, c in catalog.entries())
        problem = (
            f"Several plugins own {request.command}: {', '.join(sorted(e.plugin for e in owners))}; name one in `plugin`."
            if owners
            else f"No plugin owns {request.command}. Commands: {', '.join(offered)}."
        )
        raise UnknownCommand(
            problem, [{"loc": ["body", "command"], "msg": problem, "type": "unknown_command"}]
        )
    entry = owners[0]
    item = ExecutionCreate(plugin=entry.plugin, command=entry.command, params=request.params)
    submitted = await submit_single(Single(item, owner))
    row = await polling.wait_terminal(submitted.execution.id, owner, settings.compat_wait_s)
    success = row.status is ExecutionStatus.SUCCEEDED
    if not row.status.terminal:
        response.status_code = 202
        response.headers["Location"] = f"/v1/executions/{row.id}"
    return AgentResult(
        success=success,
        data=row.result if success else row.error,
        type=entry.result_type if success else ("pending" if not row.status.terminal else "error"),
        plugin=entry.plugin,
        command=request.command,
        execution_id=row.id,
        status=row.status,
    )
