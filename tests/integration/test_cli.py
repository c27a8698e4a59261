"""The ``agentq`` command as users run it: a subprocess talking HTTP to the real API and worker."""

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.integration.conftest import ADMIN_KEY, Stack, bearer
from tests.integration.processes import ROOT, free_port


def agentq(
    stack: Stack, *args: str, key: str = ADMIN_KEY, url: str | None = None, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    """Run the CLI with nothing but AGENTQ_URL and AGENTQ_API_KEY to find the API."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(ROOT),
        "COLUMNS": str(columns),
        "AGENTQ_URL": url or stack.url,
        "AGENTQ_API_KEY": key,
    }
    argv = [sys.executable, "-m", "agentq.cli", *args]
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=90)


def json_out(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


def test_cli_submit_wait_prints_the_result_and_exits_0(stack: Stack) -> None:
    result = agentq(stack, "submit", "echo", "echo", "-p", "hello=world", "-p", "n=2", "--wait", "--json")

    assert result.returncode == 0, result.stderr
    execution = json_out(result)
    assert execution["status"] == "succeeded"
    assert execution["result"] == {"hello": "world", "n": 2}


def test_cli_submit_wait_exit_code_tells_failed_and_timed_out(stack: Stack) -> None:
    failed = agentq(
        stack,
        "submit",
        "simulate",
        "run",
        "--params-json",
        '{"fail_times": 3}',
        "--max-retries",
        "0",
        "--wait",
    )
    timed_out = agentq(stack, "submit", "simulate", "run", "-p", "sleep_s=10", "--timeout", "0.5", "--wait")

    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "RetryLater" in failed.stdout
    assert timed_out.returncode == 3, timed_out.stdout + timed_out.stderr
    assert "timed_out" in timed_out.stdout


def test_cli_watch_shows_progress_log_lines_and_the_outcome(stack: Stack) -> None:
    created = stack.submit("simulate", "run", {"sleep_s": 1.5, "progress_steps": 3, "mode": "async"})

    live = agentq(stack, "watch", created["id"])
    replay = agentq(stack, "watch", created["id"], "--json")

    assert live.returncode == 0, live.stderr
    for line in ("step 1 of 3 done", "step 2 of 3 done", "step 3 of 3 done", "running", "succeeded"):
        assert line in live.stdout
    assert replay.returncode == 0
    events = [json.loads(line) for line in replay.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["data"]["percent"] for e in events if e["kind"] == "progress"] == [100 / 3, 200 / 3, 100.0]
    assert events[-1]["data"]["status"] == "succeeded"


def test_cli_cancel_then_watch_and_get_exit_cancelled(stack: Stack) -> None:
    created = stack.submit("simulate", "run", {"sleep_s": 30, "mode": "async"})

    cancelled = agentq(stack, "cancel", created["id"], "--json")
    watched = agentq(stack, "watch", created["id"])
    got = agentq(stack, "get", created["id"])

    assert cancelled.returncode == 0, cancelled.stderr
    assert json_out(cancelled)["status"] == "cancelled"
    assert watched.returncode == 4
    assert "cancelled" in watched.stdout
    assert got.returncode == 4
    assert "cancelled" in got.stdout


def test_cli_cancel_of_a_finished_execution_is_an_api_error(stack: Stack) -> None:
    done = stack.wait(stack.submit("echo", "echo", {})["id"])

    result = agentq(stack, "cancel", done["id"], "--json")

    assert result.returncode == 5
    assert "409" in result.stderr
    assert "already ended as succeeded" in result.stderr
    assert json_out(result)["status"] == 409


def test_cli_list_filters_by_status_and_plugin(stack: Stack) -> None:
    cancelled = stack.submit("simulate", "run", {"sleep_s": 30})
    stack.client.post(f"/v1/executions/{cancelled['id']}/cancel")
    echoed = stack.wait(stack.submit("echo", "echo", {"listed": True})["id"])

    by_status = agentq(stack, "list", "--status", "cancelled", "--json")
    table = agentq(stack, "list", "--plugin", "echo", "--limit", "5")

    assert by_status.returncode == 0, by_status.stderr
    page = json_out(by_status)
    assert cancelled["id"] in [e["id"] for e in page["executions"]]
    assert {e["status"] for e in page["executions"]} == {"cancelled"}
    assert table.returncode == 0
    assert echoed["id"] in table.stdout
    assert "echo/echo" in table.stdout
    assert "simulate" not in table.stdout


def test_cli_exit_codes_for_usage_api_and_connection_errors(stack: Stack) -> None:
    missing = agentq(stack, "get", "01NOPE")
    bad_param = agentq(stack, "submit", "echo", "echo", "-p", "novalue")
    bad_status = agentq(stack, "list", "--status", "bogus")
    bad_key = agentq(stack, "plugins", key="not-a-key")
    unknown_plugin = agentq(stack, "submit", "nope", "x")
    unreachable = agentq(stack, "plugins", url=f"http://127.0.0.1:{free_port()}")

    assert missing.returncode == 5
    assert "404" in missing.stderr
    assert bad_param.returncode == 2
    assert "KEY=VALUE" in bad_param.stderr
    assert bad_status.returncode == 2
    assert bad_key.returncode == 5
    assert "401" in bad_key.stderr
    assert unknown_plugin.returncode == 5
    assert "No worker offers plugin 'nope'" in unknown_plugin.stderr
    assert unreachable.returncode == 6
    assert "Cannot reach agentq" in unreachable.stderr


def test_cli_plugins_and_keys(stack: Stack) -> None:
    plugins = agentq(stack, "plugins", "--json")
    created = agentq(stack, "keys", "create", "cli-robot", "--json")
    key = json_out(created)
    as_new_key = agentq(stack, "list", "--json", key=key["key"])
    listed = agentq(stack, "keys", "list", "--json")
    revoked = agentq(stack, "keys", "revoke", key["id"])
    table = agentq(stack, "keys", "list")

    assert plugins.returncode == 0
    assert {"echo", "simulate"} <= {p["name"] for p in json_out(plugins)}
    assert created.returncode == 0
    assert key["key"]
    assert key["name"] == "cli-robot"
    assert as_new_key.returncode == 0
    assert json_out(as_new_key)["executions"] == []
    assert key["id"] in [k["id"] for k in json_out(listed)]
    assert revoked.returncode == 0
    assert key["id"] in table.stdout
    assert "cli-robot" in table.stdout


def test_cli_schedules_add_list_run_rm(stack: Stack) -> None:
    added = agentq(
        stack, "schedules", "add", "cli-hourly", "echo", "echo", "--every", "3600", "-p", "from=cli",
        "--jitter", "90", "--json",
    )  # fmt: skip
    schedule = json_out(added)
    listed = agentq(stack, "schedules", "list", "--json")
    ran = agentq(stack, "schedules", "run", schedule["id"], "--wait", "--json")
    removed = agentq(stack, "schedules", "rm", schedule["id"])
    gone = agentq(stack, "schedules", "list", "--json")
    neither = agentq(stack, "schedules", "add", "cli-bad", "echo", "echo")

    assert added.returncode == 0, added.stderr
    assert schedule["interval_s"] == 3600
    assert schedule["params"] == {"from": "cli"}
    assert schedule["jitter_s"] == 90
    assert schedule["id"] in [s["id"] for s in json_out(listed)["schedules"]]
    assert ran.returncode == 0, ran.stderr
    assert json_out(ran)["result"] == {"from": "cli"}
    assert json_out(ran)["schedule_id"] == schedule["id"]
    assert removed.returncode == 0
    assert schedule["id"] not in [s["id"] for s in json_out(gone)["schedules"]]
    assert neither.returncode == 2


def test_cli_list_piped_prints_whole_rows_that_grep_counts(stack: Stack) -> None:
    # Given executions that succeeded, among others
    done = [stack.wait(stack.submit("echo", "echo", {"n": n})["id"]) for n in range(3)]
    assert {e["status"] for e in done} == {"succeeded"}

    # When the list goes into a pipe, 80 columns wide
    piped = agentq(stack, "list", "--limit", "20", columns=80)

    # Then each row is whole and tab-separated: `grep -c succeeded` counts the succeeded ones
    assert piped.returncode == 0, piped.stderr
    header, *rows = piped.stdout.splitlines()
    assert header.split("\t") == ["ID", "PLUGIN/COMMAND", "STATUS", "PROGRESS", "CREATED (UTC)", "TOOK"]
    status = {row.split("\t")[0]: row.split("\t")[2] for row in rows}
    assert all(status[e["id"]] == "succeeded" for e in done), piped.stdout
    assert sum("succeeded" in row for row in rows) == list(status.values()).count("succeeded") >= 3


def test_cli_schedules_run_and_rm_take_a_name(stack: Stack) -> None:
    added = agentq(stack, "schedules", "add", "cli-by-name", "echo", "echo", "--every", "3600", "--json")
    schedule = json_out(added)

    ran = agentq(stack, "schedules", "run", "cli-by-name", "--wait", "--json")
    removed = agentq(stack, "schedules", "rm", "cli-by-name")
    again = agentq(stack, "schedules", "rm", "cli-by-name")

    assert added.returncode == 0, added.stderr
    assert ran.returncode == 0, ran.stderr
    assert json_out(ran)["schedule_id"] == schedule["id"]
    assert removed.returncode == 0, removed.stderr
    assert schedule["id"] in removed.stdout, removed.stderr
    assert again.returncode == 5
    assert "No schedule has the id or name 'cli-by-name'" in again.stderr


def test_cli_without_a_key_says_to_set_it(stack: Stack) -> None:
    result = agentq(stack, "list", key="")

    assert result.returncode == 5
    assert "401" in result.stderr
    assert "set AGENTQ_API_KEY" in result.stderr


def test_cli_retry_by_id_and_by_filter(stack: Stack, tmp_path: Path) -> None:
    made = stack.client.post("/v1/keys", json={"name": f"cli-retry-{time.time_ns()}"}).json()
    key = made["key"]
    tenant = httpx.Client(base_url=stack.url, headers=bearer(key), timeout=90)
    (tmp_path / "outage").touch()
    flaky = {
        "plugin": "flaky",
        "command": "hit",
        "params": {"path": str(tmp_path / "runs"), "fail_while": str(tmp_path / "outage")},
    }
    first, second = (tenant.post("/v1/executions", json=flaky).json() for _ in range(2))
    echoed = tenant.post("/v1/executions", json={"plugin": "echo", "command": "echo"}).json()
    for execution in (first, second, echoed):
        tenant.get(f"/v1/executions/{execution['id']}", params={"wait": 30})
    tenant.close()
    until = (datetime.fromisoformat(second["created_at"]) + timedelta(microseconds=1)).isoformat()

    by_id = agentq(stack, "retry", first["id"], "--json", key=key)
    table = agentq(stack, "retry", first["id"], key=key)
    succeeded = agentq(stack, "retry", echoed["id"], key=key)
    by_filter = agentq(
        stack,
        "retry",
        "--status",
        "failed",
        "--plugin",
        "flaky",
        "--since",
        "1h",
        "--until",
        until,
        "--json",
        key=key,
    )
    nothing = agentq(stack, "retry", "--plugin", "counter", "--since", "1h", key=key)

    assert by_id.returncode == 0, by_id.stderr
    assert json_out(by_id)["retry_of"] == first["id"]
    assert table.returncode == 0, table.stderr
    assert "RETRY OF" in table.stdout
    assert first["id"] in table.stdout
    assert succeeded.returncode == 5
    assert "409" in succeeded.stderr
    assert "is succeeded" in succeeded.stderr
    assert by_filter.returncode == 0, by_filter.stderr
    retried = [json.loads(line) for line in by_filter.stdout.splitlines()]
    assert [r["retry_of"] for r in retried] == [first["id"], second["id"]]
    assert nothing.returncode == 0
    assert "nothing to retry" in nothing.stderr
