"""What Flower is shown, built without services: task outcomes, agents, events, the broker URL."""

from kombu.connection import Connection

from agentq.core import broker, queue
from agentq.core.models import Execution
from tasks.executions import failure_summary


def _execution(execution_id: str, plugin: str, command: str) -> Execution:
    return Execution(id=execution_id, plugin=plugin, command=command)


def test_a_message_of_one_agent_shows_its_plugin_and_command() -> None:
    chunk = [_execution("a", "echo", "echo"), _execution("b", "echo", "echo")]

    assert queue.agents_repr(chunk) == "{'plugin': 'echo', 'command': 'echo'}"


def test_a_message_of_several_agents_shows_each_with_how_many() -> None:
    chunk = [
        _execution("a", "echo", "echo"),
        _execution("b", "simulate", "run"),
        _execution("c", "echo", "echo"),
        _execution("d", "echo", "shout"),
    ]

    assert queue.agents_repr(chunk) == "{'agents': 'echo/echo ×2, simulate/run ×1, echo/shout ×1'}"


def test_a_failure_names_the_failed_and_timed_out_executions_and_counts_the_others() -> None:
    statuses = {
        "a": "succeeded",
        "b": "failed",
        "c": "timed_out",
        "d": "retrying",
        "e": "cancelled",
        "f": "skipped",
        "g": "succeeded",
    }

    summary = failure_summary(statuses, {"b": "PluginCrashed", "c": "timed_out", "d": "RetryLater"})

    assert summary == (
        "2 of 7 executions ended failed or timed_out: b failed (PluginCrashed), c timed_out (timed_out); "
        "the others: 2 succeeded, 1 retrying, 1 cancelled, 1 skipped"
    )


def test_a_failure_of_many_names_the_first_ones_and_how_many_more() -> None:
    statuses = {f"id{n}": "failed" for n in range(queue.ARGS_SHOWN + 3)}

    summary = failure_summary(statuses, {})

    assert summary.startswith(f"{queue.ARGS_SHOWN + 3} of {queue.ARGS_SHOWN + 3} executions ended failed")
    assert "id0 failed (unknown), id1 failed (unknown)" in summary
    assert summary.endswith("id9 failed (unknown), … 3 more")


def test_maintenance_messages_go_without_a_task_sent_event() -> None:
    def sent_event(name: str) -> object:
        message = queue.app.amqp.create_task_message("id", name, (), {}, create_sent_event=True)
        return message.sent_event

    assert sent_event(queue.REAP_EXECUTIONS) is None
    assert sent_event(queue.PURGE_EXECUTIONS) is None
    assert sent_event(queue.RUN_EXECUTION) is not None


def test_redis_urls_use_the_shared_client_transport_and_stay_redis_urls() -> None:
    # Flower recognises a Redis broker by its URL's scheme.
    with Connection("redis://127.0.0.1:6379/3") as connection:  # type: ignore[no-untyped-call]
        assert connection.get_transport_cls() is broker.Transport
        assert connection.as_uri().startswith("redis://")
    with queue.app.connection_for_write() as connection:
        assert connection.get_transport_cls() is broker.Transport
        assert connection.as_uri().startswith("redis://")
