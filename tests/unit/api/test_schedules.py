"""``/v1/schedules`` in process: create, read, change and delete, and what is refused."""

import time
from typing import Any

from tests.unit.api.conftest import LocalAPI


def create(local: LocalAPI, **fields: Any) -> dict[str, Any]:
    body = {"name": f"s-{time.time_ns()}", "plugin": "echo", "command": "echo", "params": {}} | fields
    response = local.client.post("/v1/schedules", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_schedule_crud_and_validation(local: LocalAPI) -> None:
    schedule = create(local, cron="30 2 * * *", timezone="Europe/Berlin")
    name = schedule["name"]

    assert len(schedule["next_fire_times"]) == 5
    assert local.client.get(f"/v1/schedules/{schedule['id']}").json()["name"] == name
    assert any(s["id"] == schedule["id"] for s in local.client.get("/v1/schedules").json()["schedules"])
    bad: list[tuple[dict[str, Any], str | None]] = [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * *"}, "cron"),
        ({"interval_s": 5, "cron": "* * * * *"}, "cron"),
        ({}, "cron"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"interval_s": 5, "params": {"sleep_s": "x"}, "plugin": "simulate", "command": "run"}, None),
    ]
    for fields, loc in bad:
        response = local.client.post(
            "/v1/schedules", json={"name": "x", "plugin": "echo", "command": "echo"} | fields
        )
        assert response.status_code == 422, (fields, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        if loc:
            assert response.json()["errors"][0]["loc"] == ["body", loc]
    duplicate = local.client.post(
        "/v1/schedules", json={"name": name, "plugin": "echo", "command": "echo", "interval_s": 60}
    )
    assert duplicate.status_code == 409

    switched = local.client.patch(f"/v1/schedules/{schedule['id']}", json={"interval_s": 60}).json()
    assert switched["cron"] is None
    assert switched["interval_s"] == 60
    assert local.client.delete(f"/v1/schedules/{schedule['id']}").status_code == 204
    assert local.client.get(f"/v1/schedules/{schedule['id']}").status_code == 404
