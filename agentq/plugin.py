"""The plugin SDK: a plugin is a class with a name and commands.

    class Greeter(Plugin):
        name = "greeter"
        description = "Says hello."

        @command(HelloParams)
        async def hello(self, ctx: Context, params: HelloParams) -> dict[str, str]:
            ctx.progress(50, "thinking")
            return {"greeting": f"hello {params.who}"}

A command's params model gives the JSON Schema that the API validates submissions
against. A command may be ``def`` (run on a worker thread), ``async def`` (run on the
worker's event loop), or a ``def`` that returns an awaitable (its sync part runs on a
thread, the awaitable on the loop). Raise ``RetryLater`` for a transient
failure and ``PermanentError`` for one no retry can mend.
"""

import asyncio
import inspect
import logging
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel

ParamsT = TypeVar("ParamsT", bound=BaseModel)
CommandFunc = Callable[..., Any]


class Interrupted(BaseException):
    """Raised inside a plugin whose execution was cancelled or ran out of time.

    A BaseException, so that a plugin's ``except Exception`` does not swallow it.
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class RecordingLogger(logging.LoggerAdapter[Any]):
    """``ctx.logger``: logs as usual, and hands each line of INFO or above to ``record``
    (the runtime keeps them in the execution's event log, for those who watch it)."""

    def __init__(
        self, logger: logging.Logger | logging.LoggerAdapter[Any], record: Callable[[int, str], None]
    ):
        super().__init__(logger)
        self._record = record

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if level >= logging.INFO:
            self._record(level, _message(msg, args, kwargs.get("exc_info")))
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1  # the caller, not this method
        self.logger.log(level, msg, *args, **kwargs)


def _message(msg: object, args: tuple[object, ...], exc_info: Any) -> str:
    """The line as ``logging`` formats it, and the exception's last line, if any."""
    try:
        text = logging.LogRecord("agentq.plugin", logging.INFO, "", 0, msg, args, None).getMessage()
    except (TypeError, ValueError):
        text = f"{msg} {args!r}"
    if exc_info:
        if isinstance(exc_info, BaseException):
            exc: BaseException | None = exc_info
        elif isinstance(exc_info, tuple):
            exc = exc_info[1]
        else:
            exc = sys.exc_info()[1]
        if exc is not None:
            text += "\n" + "".join(traceback.format_exception_only(exc)).strip()
    return text


# Guards the making of a context's stop event (see Context._stop_event).
_STOP_EVENT_MADE = threading.Lock()


class Context:
    """What a running command sees of its execution."""

    def __init__(
        self,
        execution_id: str,
        attempt: int,
        *,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
        on_log: Callable[[int, str], None] | None = None,
    ) -> None:
        self.execution_id = execution_id
        self.attempt = attempt
        self._on_progress = on_progress
        self._base_logger = logger
        self._on_log = on_log
        self.stop_reason = "cancelled"
        self._stopped = False
        # Made when a command first sleeps on it, as is the logger when first used: most
        # runs do neither, and each costs more than the rest of a run's setup.
        self._stop: threading.Event | None = None
        self.last_progress: dict[str, Any] | None = None

    @cached_property
    def logger(self) -> logging.Logger | logging.LoggerAdapter[Any]:
        base = self._base_logger or logging.LoggerAdapter(
            logging.getLogger("agentq.plugin"), {"execution_id": self.execution_id}
        )
        return RecordingLogger(base, self._on_log) if self._on_log is not None else base

    @property
    def cancelled(self) -> bool:
        """True once the execution was cancelled or timed out: stop soon."""
        return self._stopped

    def check(self) -> None:
        """Raise ``Interrupted`` if the execution should stop."""
        if self._stopped:
            raise Interrupted(self.stop_reason)

    def progress(self, percent: float, message: str = "") -> None:
        """Report progress (0–100); stored on the execution and visible in ``GET``."""
        self.last_progress = {"percent": max(0.0, min(100.0, float(percent))), "message": message}
        if self._on_progress is not None:
            self._on_progress(self.last_progress)

    def sleep(self, seconds: float) -> None:
        """Sleep, waking at once (with ``Interrupted``) when the execution must stop."""
        if self._stop_event().wait(seconds):
            raise Interrupted(self.stop_reason)

    async def asleep(self, seconds: float) -> None:
        """``asyncio.sleep``; the runtime cancels the coroutine when the execution must stop."""
        await asyncio.sleep(seconds)
        self.check()

    def interrupt(self, reason: str) -> None:
        """Ask the command to stop (used by the runtime)."""
        self.stop_reason = reason
        with _STOP_EVENT_MADE:
            self._stopped = True
            if self._stop is not None:
                self._stop.set()

    def _stop_event(self) -> threading.Event:
        with _STOP_EVENT_MADE:  # so that an interrupt sets the event, or finds it set already
            if self._stop is None:
                self._stop = threading.Event()
                if self._stopped:
                    self._stop.set()
            return self._stop


@dataclass(frozen=True)
class Command:
    name: str
    params_model: type[BaseModel]
    func: CommandFunc
    description: str
    result_type: str | None
    # A sync command that computes (True) or waits (False); None: the worker learns it.
    cpu_bound: bool | None = None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)

    def params_schema(self) -> dict[str, Any]:
        return self.params_model.model_json_schema()


def command(
    params: type[ParamsT],
    *,
    name: str | None = None,
    result_type: str | None = None,
    cpu_bound: bool | None = None,
) -> Callable[[CommandFunc], CommandFunc]:
    """Mark a plugin method as a command taking ``params``. ``cpu_bound`` says whether a
    sync command spends its time computing in Python (run on few threads of a worker)
    or waiting (on many); left out, the worker learns it from the command's runs."""

    def mark(func: CommandFunc) -> CommandFunc:
        doc = inspect.getdoc(func) or ""
        func._agentq_command = Command(  # type: ignore[attr-defined]
            name=name or func.__name__,
            params_model=params,
            func=func,
            description=doc.splitlines()[0] if doc else "",
            result_type=result_type,
            cpu_bound=cpu_bound,
        )
        return func

    return mark


class Plugin:
    """Base class of plugins; subclasses set ``name`` and mark commands with ``@command``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    # The Celery queue its executions go to; None means the worker's default queue.
    queue: ClassVar[str | None] = None
    # Its executions running at once across the fleet (every worker, every key); None: no
    # limit. ``AGENTQ_PLUGIN_LIMITS`` overrides it.
    max_concurrency: ClassVar[int | None] = None
    commands: ClassVar[dict[str, Command]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                cmd = getattr(attr, "_agentq_command", None)
                if isinstance(cmd, Command):
                    found[cmd.name] = cmd
        cls.commands = found

    def bind(self, cmd: Command) -> Callable[[Context, BaseModel], Any | Awaitable[Any]]:
        return cmd.func.__get__(self, type(self))  # type: ignore[no-any-return]


def run_command(plugin: Plugin, command_name: str, params: dict[str, Any], ctx: Context | None = None) -> Any:
    """Run one command outside a worker: a test double for plugin authors.

    Validates ``params`` like the API does, runs sync or async commands alike and
    returns the result.
    """
    cmd = type(plugin).commands[command_name]
    ctx = ctx or Context("test", 1)
    fn = plugin.bind(cmd)
    parsed = cmd.params_model.model_validate(params)
    value = fn(ctx, parsed)
    if inspect.isawaitable(value):
        return asyncio.run(_await(value))
    return value


async def _await(value: Awaitable[Any]) -> Any:
    return await value
