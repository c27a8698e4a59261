"""A Python client for the agentq HTTP API: ``Client`` (sync) and ``AsyncClient``.

    from agentq.client import Client

    with Client() as agentq:  # AGENTQ_URL, AGENTQ_API_KEY
        execution = agentq.submit("simulate", "run", {"sleep_s": 2, "progress_steps": 4})
        for event in agentq.events(execution.id):  # history first, then live
            print(event.seq, event.kind, event.data)
        print(agentq.get(execution.id).result)

Answers are typed (``Execution``, ``Event``, ``Schedule``, ...); unknown fields a newer
server sends are kept. Error answers (``application/problem+json``) raise typed errors:

    AgentqClientError
     ├── AgentqConnectionError   the API cannot be reached
     └── AgentqHTTPError         the API answered with an error: status, title, detail, type, errors
          ├── AuthError          401, 403
          ├── NotFoundError      404
          ├── ConflictError      409
          ├── ValidationError    400, 413, 422
          ├── RateLimitedError   429 (retry_after)
          └── UnavailableError   502, 503, 504 (retry_after)
"""

from agentq.client.aio import AsyncClient
from agentq.client.common import DEFAULT_URL, LONG_POLL_S, STREAM_READ_TIMEOUT_S
from agentq.client.errors import (
    AgentqClientError,
    AgentqConnectionError,
    AgentqHTTPError,
    AuthError,
    ConflictError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
    error_from_response,
)
from agentq.client.models import (
    TERMINAL,
    ApiKey,
    ApiKeyCreated,
    CommandInfo,
    Delivery,
    DeliveryAttempt,
    DeliveryPage,
    ErrorInfo,
    Event,
    Execution,
    ExecutionPage,
    Limit,
    PluginInfo,
    Progress,
    Schedule,
    SchedulePage,
    Submission,
    Webhook,
    WebhookCreated,
    WebhookPage,
)
from agentq.client.sse import ServerSentEvent, SSEDecoder, parse_event
from agentq.client.sync import Client

__all__ = [
    "DEFAULT_URL",
    "LONG_POLL_S",
    "STREAM_READ_TIMEOUT_S",
    "TERMINAL",
    "AgentqClientError",
    "AgentqConnectionError",
    "AgentqHTTPError",
    "ApiKey",
    "ApiKeyCreated",
    "AsyncClient",
    "AuthError",
    "Client",
    "CommandInfo",
    "ConflictError",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryPage",
    "ErrorInfo",
    "Event",
    "Execution",
    "ExecutionPage",
    "Limit",
    "NotFoundError",
    "PluginInfo",
    "Progress",
    "RateLimitedError",
    "SSEDecoder",
    "Schedule",
    "SchedulePage",
    "ServerSentEvent",
    "Submission",
    "UnavailableError",
    "ValidationError",
    "Webhook",
    "WebhookCreated",
    "WebhookPage",
    "error_from_response",
    "parse_event",
]
