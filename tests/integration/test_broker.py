"""The Redis transport keeps one client per channel, and messages go through it as before."""

import pytest
from kombu.connection import Connection

from agentq.core import broker, queue
from tests.conftest import REDIS_URL


def test_the_celery_app_publishes_through_the_shared_client_transport() -> None:
    with queue.app.connection_for_write() as connection:
        assert isinstance(connection.transport, broker.Transport)


@pytest.mark.usefixtures("database")
def test_a_channel_keeps_its_client_until_its_pool_is_replaced() -> None:
    with Connection(REDIS_URL, transport=broker.Transport) as connection:  # type: ignore[no-untyped-call]
        messages = connection.SimpleQueue("agentq-test-broker")
        try:
            channel = messages.channel
            client = channel._create_client()
            assert channel._create_client() is client
            messages.put({"n": 1})
            assert channel._create_client() is client

            channel._disconnect_pools()  # as after a fork
            rebuilt = channel._create_client()
            assert rebuilt is not client
            assert rebuilt.connection_pool is channel.pool
            messages.put({"n": 2})
            assert [messages.get(timeout=5).payload for _ in range(2)] == [{"n": 1}, {"n": 2}]
        finally:
            messages.clear()
            messages.close()


def test_a_message_shows_flower_its_first_ids_and_how_many_more() -> None:
    assert queue.args_repr(["a", "b"]) == "[['a', 'b']]"
    ids = [f"id{n}" for n in range(queue.ARGS_SHOWN + 5)]
    shown = queue.args_repr(ids)
    assert shown.startswith("[['id0', 'id1', ")
    assert shown.endswith("'id9', … 5 more]]")
