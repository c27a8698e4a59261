"""``/v1/schedules`` in process: create, read, change and delete, and what is refused."""

import time
from datetime import datetime, timedelta
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


def test_patch_null_clears_an_optional_field_and_is_a_422_naming_a_required_one(local: LocalAPI) -> None:
    schedule = create(local, interval_s=60, jitter_s=5, timeout_s=30)
    url = f"/v1/schedules/{schedule['id']}"

    refused = {field: local.client.patch(url, json={field: None}) for field in ("name", "plugin", "enabled")}
    cleared = local.client.patch(url, json={"jitter_s": None, "timeout_s": None})

    for field, response in refused.items():
        assert response.status_code == 422, (field, response.text)  # not 409 "name taken"
        assert response.json()["errors"][0]["loc"] == ["body", field]
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["jitter_s"], cleared.json()["timeout_s"]) == (None, None)
    assert cleared.json()["name"] == schedule["name"]
    assert cleared.json()["enabled"] is True
    assert local.client.delete(url).status_code == 204


def _slot_and_fire(schedule: dict[str, Any]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(schedule["next_run_at"]), datetime.fromisoformat(schedule["next_fire_at"])


def test_a_jitter_longer_than_the_period_fires_each_slot_before_the_next(local: LocalAPI) -> None:
    # Given a schedule every 10 s with an hour of jitter (kept as given, capped when used)
    created = create(local, interval_s=10, jitter_s=3600)
    url = f"/v1/schedules/{created['id']}"

    # When it is patched to every minute with a day of jitter, then to every 2 s
    every_minute = local.client.patch(url, json={"cron": "* * * * *", "jitter_s": 86_400}).json()
    every_2s = local.client.patch(url, json={"interval_s": 2}).json()

    # Then each next fire time falls between its slot and the next slot
    for schedule, period_s in ((created, 10), (every_minute, 60), (every_2s, 2)):
        slot, fire = _slot_and_fire(schedule)
        assert slot <= fire < slot + timedelta(seconds=period_s), schedule
    assert (created["jitter_s"], every_minute["jitter_s"], every_2s["jitter_s"]) == (3600, 86_400, 86_400)
    assert local.client.delete(url).status_code == 204
