"""The names of concurrency limits (admission scopes), which the store and clients share.

- ``api_key:<owner>``: an API key's ``max_running``;
- ``plugin:<name>``: a plugin's ``max_concurrency`` or ``AGENTQ_PLUGIN_LIMITS`` entry;
- ``concurrency_key:<owner>:<name>``: an owner's concurrency key and its limit.

Clients see them as ``api_key``, ``plugin:<name>`` and ``concurrency_key:<name>``
(``waiting_on``): a name never shows another owner's id.
"""

API_KEY = "api_key"
PLUGIN = "plugin"
CONCURRENCY_KEY = "concurrency_key"


def api_key_scope(owner: str) -> str:
    return f"{API_KEY}:{owner}"


def plugin_scope(plugin: str) -> str:
    return f"{PLUGIN}:{plugin}"


def concurrency_key_scope(owner: str, name: str) -> str:
    return f"{CONCURRENCY_KEY}:{owner}:{name}"


def public_name(scope: str) -> str:
    """What a client is shown of a scope: never the owner's id."""
    kind, _, rest = scope.partition(":")
    if kind == API_KEY:
        return API_KEY
    if kind == CONCURRENCY_KEY:
        return f"{CONCURRENCY_KEY}:{rest.partition(':')[2]}"
    return scope
