"""The HTTP contract with a worker behind it: the plugins it publishes, the compatibility route
and the plugins running, health and readiness. What the API answers alone is tested in
``tests/unit/api/``."""

from tests.integration.conftest import Stack


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


def test_health_and_readiness(stack: Stack) -> None:
    assert stack.client.get("/healthz").json() == {"status": "ok"}
    ready = stack.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "workers": "ok"}
    assert stack.client.get("/docs").status_code == 200
