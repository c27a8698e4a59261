"""``GET /v1/executions/{id}/events`` in process: what is refused before a stream starts."""

from tests.unit.api.conftest import PROBLEM, LocalAPI


def test_events_of_another_owners_execution_are_not_found(local: LocalAPI) -> None:
    _, other = local.new_key("events-outsider")
    created = local.submit("echo", "echo", {})

    response = local.client_for(other).get(f"/v1/executions/{created['id']}/events")
    missing = local.client.get("/v1/executions/01NOPE/events")

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["detail"] == f"No execution with id {created['id']!r}."
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM


def test_events_refuse_a_bad_last_event_id(local: LocalAPI) -> None:
    created = local.submit("echo", "echo", {})

    response = local.client.get(f"/v1/executions/{created['id']}/events", headers={"Last-Event-ID": "x"})

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
