"""The HTTP contract: plugins catalog, compatibility route, problem+json errors."""

from tests.integration.conftest import Stack

PROBLEM = "application/problem+json"


def test_plugins_lists_builtins_and_entry_point_plugins_with_schemas(stack: Stack) -> None:
    plugins = {p["name"]: p for p in stack.client.get("/v1/plugins").json()["plugins"]}

    assert {"echo", "simulate", "http", "news", "llm", "counter", "parked"} <= set(plugins)
    simulate = plugins["simulate"]["commands"][0]
    assert simulate["name"] == "run"
    assert {"sleep_s", "fail_times", "cpu_ms", "result_bytes", "progress_steps", "mode", "crash"} <= set(
        simulate["params_schema"]["properties"]
    )
    assert plugins["parked"]["queue"] == "agentq.parked"
    assert plugins["counter"]["version"] == "0.1"


def test_entry_point_plugin_runs_on_the_worker(stack: Stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    runs = tmp_path / "runs.txt"

    done = stack.wait(stack.submit("counter", "hit", {"path": str(runs)})["id"])

    assert done["status"] == "succeeded"
    assert done["result"] == {"runs": 1}


def test_compat_route_runs_news_on_the_queue(stack: Stack, outside: str) -> None:
    response = stack.client.post(
        "/api/agent/execute",
        json={"command": "/latest", "params": {"feed_url": f"{outside}/feed.xml", "limit": 2}},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert (body["plugin"], body["command"], body["type"]) == ("news", "/latest", "news")
    assert [item["title"] for item in body["data"]["items"]] == ["First", "Second"]
    # It really went through the queue: the execution row exists and a worker ran it.
    row = stack.get(body["execution_id"])
    assert row["status"] == "succeeded"
    assert row["worker"]


def test_compat_route_reports_plugin_failure(stack: Stack) -> None:
    response = stack.client.post(
        "/api/agent/execute",
        json={"command": "/latest", "params": {"feed_url": "http://127.0.0.1:9/none.xml"}},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is False
    assert body["type"] == "error"
    assert body["data"]["message"]


def test_compat_route_unknown_and_ambiguous_commands(stack: Stack) -> None:
    unknown = stack.client.post("/api/agent/execute", json={"command": "/nope"})
    ambiguous = stack.client.post(
        "/api/agent/execute", json={"command": "/hit", "params": {"path": "/tmp/x"}}
    )

    assert unknown.status_code == 422
    assert unknown.headers["content-type"] == PROBLEM
    assert "/latest" in unknown.json()["detail"]
    assert ambiguous.status_code == 422
    assert "counter" in ambiguous.json()["detail"]
    assert "parked" in ambiguous.json()["detail"]


def test_http_plugin_fetches_a_page(stack: Stack, outside: str) -> None:
    done = stack.wait(stack.submit("http", "get", {"url": f"{outside}/hello"})["id"])

    assert done["status"] == "succeeded", done
    assert done["result"]["status"] == 200
    assert done["result"]["body"] == "hello from outside"


def test_llm_plugin_calls_the_configured_endpoint(stack: Stack) -> None:
    messages = [{"role": "user", "content": "ping"}]

    done = stack.wait(stack.submit("llm", "chat", {"messages": messages, "model": "test-model"})["id"])

    assert done["status"] == "succeeded", done
    assert done["result"]["content"] == "echo: ping"
    assert done["result"]["model"] == "test-model"


def test_unknown_plugin_lists_what_is_offered(stack: Stack) -> None:
    response = stack.client.post("/v1/executions", json={"plugin": "nope", "command": "x"})

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert {"type", "title", "status", "detail"} <= set(problem)
    assert "echo" in problem["detail"]
    assert "simulate" in problem["detail"]
    assert problem["errors"][0]["loc"] == ["body", "plugin"]


def test_unknown_command_lists_the_plugins_commands(stack: Stack) -> None:
    response = stack.client.post("/v1/executions", json={"plugin": "simulate", "command": "walk"})

    assert response.status_code == 422
    assert "run" in response.json()["detail"]


def test_bad_params_point_at_the_field(stack: Stack) -> None:
    response = stack.client.post(
        "/v1/executions",
        json={"plugin": "simulate", "command": "run", "params": {"sleep_s": -1, "mode": "fast"}},
    )

    assert response.status_code == 422
    locs = [e["loc"] for e in response.json()["errors"]]
    assert ["body", "params", "mode"] in locs
    assert ["body", "params", "sleep_s"] in locs


def test_bad_fields_and_malformed_json(stack: Stack) -> None:
    out_of_range = stack.client.post(
        "/v1/executions", json={"plugin": "echo", "command": "echo", "priority": 10}
    )
    extra = stack.client.post("/v1/executions", json={"plugin": "echo", "command": "echo", "colour": "red"})
    malformed = stack.client.post(
        "/v1/executions", content=b'{"plugin": "echo",', headers={"Content-Type": "application/json"}
    )

    assert out_of_range.status_code == 422
    assert out_of_range.json()["errors"][0]["loc"] == ["body", "priority"]
    assert extra.status_code == 422
    assert extra.json()["errors"][0]["loc"] == ["body", "colour"]
    assert malformed.status_code == 400
    assert malformed.headers["content-type"] == PROBLEM
    assert "JSON" in malformed.json()["detail"]


def test_unknown_ids_and_routes_are_404_problems(stack: Stack) -> None:
    for response in (
        stack.client.get("/v1/executions/01AAAAAAAAAAAAAAAAAAAAAAAA"),
        stack.client.get("/v1/executions/01AAAAAAAAAAAAAAAAAAAAAAAA", params={"wait": 1}),
        stack.client.post("/v1/executions/01AAAAAAAAAAAAAAAAAAAAAAAA/cancel"),
        stack.client.get("/v1/nothing-here"),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["status"] == 404


def test_bad_query_values_are_422(stack: Stack) -> None:
    assert stack.client.get("/v1/executions", params={"status": "sleeping"}).status_code == 422
    assert stack.client.get("/v1/executions", params={"limit": 0}).status_code == 422
    assert stack.client.get("/v1/executions/x", params={"wait": 61}).status_code == 422


def test_health_and_readiness(stack: Stack) -> None:
    assert stack.client.get("/healthz").json() == {"status": "ok"}
    ready = stack.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "workers": "ok"}
    assert stack.client.get("/docs").status_code == 200
