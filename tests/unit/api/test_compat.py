"""``POST /api/agent/execute`` in process: the commands it cannot resolve to one plugin."""

from tests.unit.api.conftest import PROBLEM, LocalAPI


def test_compat_route_unknown_and_ambiguous_commands(local: LocalAPI) -> None:
    unknown = local.client.post("/api/agent/execute", json={"command": "/nope"})
    ambiguous = local.client.post(
        "/api/agent/execute", json={"command": "/hit", "params": {"path": "/tmp/x"}}
    )

    assert unknown.status_code == 422
    assert unknown.headers["content-type"] == PROBLEM
    assert "/latest" in unknown.json()["detail"]
    assert ambiguous.status_code == 422
    assert "counter" in ambiguous.json()["detail"]
    assert "parked" in ambiguous.json()["detail"]
