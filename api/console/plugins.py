"""The plugins page: the catalog, each command with a params form from its JSON Schema.

A submitted form starts an execution through the API's own submit path (catalog
validation, insert, publish) and opens its page; problems are shown next to the fields.
"""

from itertools import groupby
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from agentq.core import db
from agentq.core.errors import InvalidRequest
from agentq.core.models import PluginCommand
from api.catalog import catalog
from api.console import schemaforms
from api.console.rendering import page
from api.console.session import Viewer, ViewerDep, form
from api.onloop import LoopRoute
from api.schemas import ExecutionCreate
from api.submit import submit

router = APIRouter(route_class=LoopRoute)


def _plugins() -> list[tuple[str, list[PluginCommand]]]:
    entries = sorted(catalog.entries().values(), key=lambda e: (e.plugin, e.command))
    return [(name, list(group)) for name, group in groupby(entries, key=lambda e: e.plugin)]


def _render(request: Request, viewer: Viewer, status_code: int = 200, **failed: Any) -> HTMLResponse:
    """The catalog; ``failed`` (plugin, command, sent, errors) re-shows a refused form."""
    return page(
        request,
        "plugins.html",
        status_code=status_code,
        viewer=viewer,
        plugins=_plugins(),
        fields=schemaforms.fields,
        failed=failed,
    )


@router.get("/plugins", response_class=HTMLResponse)
def plugins(request: Request, viewer: ViewerDep) -> HTMLResponse:
    return _render(request, viewer)


@router.post("/plugins/{plugin}/{command}", response_class=HTMLResponse)
async def run_command(request: Request, plugin: str, command: str, viewer: ViewerDep) -> Response:
    sent = await form(request)
    await catalog.refresh()
    entry = catalog.resolve(plugin, command)
    form_fields = schemaforms.fields(entry.params_schema)
    params, errors = schemaforms.params_from(form_fields, sent)
    if not errors:
        try:
            item = ExecutionCreate(plugin=plugin, command=command, params=params)
            (submitted,) = await db.run(submit, [item], viewer.owner)
            return RedirectResponse(f"/ui/executions/{submitted.execution.id}", status_code=303)
        except ValidationError as exc:
            errors = {"": "; ".join(str(e["msg"]) for e in exc.errors())}
        except InvalidRequest as exc:
            errors = schemaforms.errors_by_field(exc.errors, exc.detail, form_fields)
    return await db.run(
        _render, request, viewer, 422, plugin=plugin, command=command, sent=sent, errors=errors
    )
