"""``/v1/plugins``: what the workers offer."""

from itertools import groupby

from fastapi import APIRouter, Depends

from api.auth import authenticate
from api.catalog import catalog
from api.onloop import LoopRoute
from api.schemas import CommandPublic, PluginPublic, PluginsPublic

router = APIRouter(
    prefix="/v1/plugins", tags=["plugins"], dependencies=[Depends(authenticate)], route_class=LoopRoute
)


@router.get("")
def read_plugins() -> PluginsPublic:
    """Plugins, their commands and the JSON Schema of each command's params."""
    entries = sorted(catalog.entries().values(), key=lambda e: (e.plugin, e.command))
    plugins = []
    for name, group in groupby(entries, key=lambda e: e.plugin):
        commands = list(group)
        first = commands[0]
        plugins.append(
            PluginPublic(
                name=name,
                description=first.plugin_description,
                version=first.version,
                queue=first.queue,
                commands=[
                    CommandPublic(
                        name=c.command,
                        description=c.description,
                        params_schema=c.params_schema,
                        result_type=c.result_type,
                    )
                    for c in commands
                ],
            )
        )
    return PluginsPublic(plugins=plugins)
