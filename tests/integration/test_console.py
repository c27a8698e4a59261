"""The web console at /ui, driven in a real browser (headless Chromium) against a real
API, worker and database: sign in, live statuses and logs, cancel, owner scoping,
schedules, CSRF, and no errors in the browser's console on any page."""

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.conftest import SERVICES_REQUIRED
from tests.integration import browser
from tests.integration.browser import mark_page, page_kept, sign_in, text_of, wait_for
from tests.integration.conftest import ADMIN_KEY, Stack, bearer
from tests.integration.processes import wait_until
from tests.integration.receiver import receiver

# Set to a directory, the page tour saves a screenshot of each page there (docs/console/).
SCREENSHOTS = os.environ.get("AGENTQ_CONSOLE_SCREENSHOTS", "")


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    if not browser.installed():
        message = "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        if SERVICES_REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    with browser.chromium() as built:
        yield built


@pytest.fixture
def signed_in(driver: WebDriver, stack: Stack) -> WebDriver:
    driver.set_window_size(*browser.LAPTOP)
    sign_in(driver, stack.url, ADMIN_KEY)
    return driver


def new_key(stack: Stack, name: str) -> str:
    response = stack.client.post("/v1/keys", json={"name": name})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def status_shown(driver: WebDriver) -> str:
    return text_of(driver, "#summary .badge")


def test_sign_in_refuses_an_unknown_key_and_signs_out(driver: WebDriver, stack: Stack) -> None:
    # Given the sign-in page, when a wrong key is given, then it says so and stays there
    driver.delete_all_cookies()
    driver.get(f"{stack.url}/ui/executions")
    wait_for(driver, lambda d: "/ui/sign-in" in d.current_url, "the redirect to sign in")
    driver.find_element(By.ID, "api_key").send_keys("not-a-key")
    driver.find_element(By.ID, "api_key").submit()
    wait_for(driver, lambda d: "unknown or revoked" in text_of(d, "#api_key-error"), "the error by the field")

    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(SCREENSHOTS) / "ui-sign-in.png"))

    # When the right key is given, then the console opens; signing out closes it again
    sign_in(driver, stack.url, ADMIN_KEY)
    assert driver.get_cookie("agentq_session")["httpOnly"] is True  # type: ignore[index]
    assert driver.get_cookie("agentq_session")["sameSite"] == "Strict"  # type: ignore[index]
    driver.find_element(By.CSS_SELECTOR, ".signout button").click()
    wait_for(driver, lambda d: "/ui/sign-in" in d.current_url, "the sign-in page after signing out")
    driver.get(f"{stack.url}/ui/executions")
    wait_for(driver, lambda d: "/ui/sign-in" in d.current_url, "the sign-in page again")


def test_a_plugin_form_starts_an_execution_that_turns_succeeded_without_reload(
    signed_in: WebDriver, stack: Stack
) -> None:
    driver = signed_in
    # Given the plugins page, the simulate/run form generated from its JSON Schema
    driver.get(f"{stack.url}/ui/plugins")
    form = driver.find_element(By.ID, "form-simulate-run")
    driver.execute_script("arguments[0].closest('details').open = true;", form)
    sleep = form.find_element(By.ID, "f-simulate-run-sleep_s")
    sleep.clear()
    sleep.send_keys("1.5")
    mode = form.find_element(By.ID, "f-simulate-run-mode")
    assert [o.text for o in mode.find_elements(By.TAG_NAME, "option")] == ["sync", "async"]

    # When it is submitted
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(driver, lambda d: "/ui/executions/" in d.current_url, "the execution's page")
    execution_id = driver.current_url.rsplit("/", 1)[1]
    mark_page(driver)

    # Then the page shows it succeed, live, and the API agrees on what ran
    wait_for(driver, lambda d: status_shown(d) == "succeeded", "the status turning succeeded")
    assert page_kept(driver)
    assert stack.get(execution_id)["params"] == {
        "sleep_s": 1.5,
        "cpu_ms": 0,
        "fail_times": 0,
        "result_bytes": 0,
        "progress_steps": 0,
        "mode": "sync",
        "crash": False,
    }
    assert "Result" in text_of(driver, "#summary")


def test_a_plugin_form_shows_the_servers_message_by_the_field(signed_in: WebDriver, stack: Stack) -> None:
    driver = signed_in
    driver.get(f"{stack.url}/ui/plugins")
    form = driver.find_element(By.ID, "form-simulate-run")
    driver.execute_script("arguments[0].closest('details').open = true;", form)
    field = form.find_element(By.ID, "f-simulate-run-sleep_s")
    field.clear()
    field.send_keys("99999")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    error = wait_for(driver, lambda d: text_of(d, "#f-simulate-run-sleep_s-error"), "the field's error")
    assert "3600" in error
    assert driver.find_element(By.ID, "f-simulate-run-sleep_s").get_attribute("aria-invalid") == "true"


def test_progress_and_log_lines_arrive_live(signed_in: WebDriver, stack: Stack) -> None:
    driver = signed_in
    # Given a running execution that reports progress in 4 steps over 4 seconds
    execution = stack.submit("simulate", "run", {"sleep_s": 4, "progress_steps": 4})
    driver.get(f"{stack.url}/ui/executions/{execution['id']}")
    mark_page(driver)

    # Then the page shows a step in between, then all of them, without a reload
    def progress(d: WebDriver) -> float:
        return float(d.find_element(By.ID, "progress-bar").get_attribute("value") or 0)

    wait_for(driver, lambda d: 0 < progress(d) < 100 and status_shown(d) == "running", "progress under way")
    wait_for(driver, lambda d: "step 4 of 4 done" in text_of(d, "#log"), "the last log line")
    wait_for(driver, lambda d: status_shown(d) == "succeeded", "the end")
    assert progress(driver) == 100
    log = text_of(driver, "#log")
    for line in ("queued", "running", "step 1 of 4 done", "step 2 of 4 done", "succeeded"):
        assert line in log, log
    assert page_kept(driver)


def test_cancel_a_running_execution(signed_in: WebDriver, stack: Stack) -> None:
    driver = signed_in
    execution = stack.submit("simulate", "run", {"sleep_s": 60, "mode": "async"})
    driver.get(f"{stack.url}/ui/executions/{execution['id']}")
    wait_for(driver, lambda d: status_shown(d) == "running", "the run to start")

    browser.click(driver, "#summary button.danger")

    wait_for(driver, lambda d: status_shown(d) == "cancelled", "the cancelled status")
    assert stack.wait(execution["id"])["status"] == "cancelled"


def test_the_list_updates_statuses_in_place(signed_in: WebDriver, stack: Stack) -> None:
    driver = signed_in
    execution = stack.submit("simulate", "run", {"sleep_s": 2})
    # Filtered with the form: any status, this plugin
    driver.get(f"{stack.url}/ui/executions")
    driver.find_element(By.ID, "f-plugin").send_keys("simulate")
    driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait_for(driver, lambda d: "plugin=simulate" in d.current_url, "the filtered page")
    assert driver.find_element(By.CSS_SELECTOR, "h1").text == "Executions"
    badge = f"#st-{execution['id']}"
    assert text_of(driver, badge) in ("queued", "running")
    mark_page(driver)
    width = driver.find_element(By.CSS_SELECTOR, badge).size["width"]

    wait_for(driver, lambda d: text_of(d, badge) == "succeeded", "the row's status turning succeeded")
    assert page_kept(driver)
    # The badge keeps its width: the row does not move when the status changes.
    assert driver.find_element(By.CSS_SELECTOR, badge).size["width"] == width


def test_a_second_key_sees_none_of_the_first_keys_rows(driver: WebDriver, stack: Stack) -> None:
    first, second = new_key(stack, "console-first"), new_key(stack, "console-second")
    with httpx.Client(base_url=stack.url, headers=bearer(first), timeout=30) as client:
        mine = client.post(
            "/v1/executions", json={"plugin": "echo", "command": "echo", "params": {"k": 1}}
        ).json()
        failing = client.post(
            "/v1/executions",
            json={"plugin": "simulate", "command": "run", "params": {"fail_times": 5}, "max_retries": 0},
        ).json()
        assert client.get(f"/v1/executions/{failing['id']}", params={"wait": 30}).json()["status"] == "failed"

    # The first key sees its rows
    sign_in(driver, stack.url, first)
    assert mine["id"] in driver.page_source
    driver.get(f"{stack.url}/ui/failed")
    assert failing["id"] in driver.page_source

    # The second sees none of them, on any page, nor by the id
    sign_in(driver, stack.url, second)
    for path in ("/ui/executions", "/ui/failed", "/ui/schedules"):
        driver.get(stack.url + path)
        assert mine["id"] not in driver.page_source, path
        assert failing["id"] not in driver.page_source, path
    driver.get(f"{stack.url}/ui/executions/{mine['id']}")
    assert driver.title.startswith("Execution not found")
    # ... and no admin page
    driver.get(f"{stack.url}/ui/admin")
    assert "Only the admin key" in driver.page_source


def test_a_schedule_created_in_the_form_shows_its_next_fire_times(signed_in: WebDriver, stack: Stack) -> None:
    driver = signed_in
    driver.get(f"{stack.url}/ui/schedules/new")
    driver.find_element(By.ID, "s-name").send_keys("console-every-5-min")
    driver.find_element(By.ID, "s-plugin").send_keys("echo")
    driver.find_element(By.ID, "s-command").send_keys("echo")
    driver.find_element(By.ID, "s-cron").send_keys("*/5 * * 13 *")  # month 13: refused

    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    error = wait_for(driver, lambda d: text_of(d, "#s-cron-error"), "the cron field's error")
    assert error
    assert driver.find_element(By.ID, "s-name").get_attribute("value") == "console-every-5-min"

    cron = driver.find_element(By.ID, "s-cron")
    cron.clear()
    cron.send_keys("*/5 * * * *")
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait_for(driver, lambda d: d.current_url.endswith("/ui/schedules"), "the schedules page")

    section = driver.find_element(By.XPATH, "//section[h2[contains(., 'console-every-5-min')]]")
    times = section.find_elements(By.CSS_SELECTOR, "ol.times time")
    assert len(times) == 5
    assert all((t.get_attribute("datetime") or "").endswith("Z") for t in times)
    assert all((t.get_attribute("title") or "").endswith(" UTC") for t in times)


def test_a_post_without_the_csrf_token_is_refused(signed_in: WebDriver, stack: Stack) -> None:
    driver = signed_in
    execution = stack.submit("simulate", "run", {"sleep_s": 60, "mode": "async"})
    driver.get(f"{stack.url}/ui/executions/{execution['id']}")
    # A POST from the signed-in page, with the session cookie but without the token
    status = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'POST', credentials: 'same-origin',"
        " headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'csrf_token=wrong'})"
        ".then(r => done(r.status));",
        f"/ui/executions/{execution['id']}/cancel",
    )
    assert status == 403
    assert stack.get(execution["id"])["status"] in ("queued", "running")
    stack.client.post(f"/v1/executions/{execution['id']}/cancel")


def test_retry_a_failed_execution(signed_in: WebDriver, stack: Stack, tmp_path: Path) -> None:
    driver = signed_in
    # Given an execution that failed while an outage lasted
    outage = tmp_path / "outage"
    outage.touch()
    params = {"path": str(tmp_path / "runs"), "fail_while": str(outage)}
    failed = stack.wait(stack.submit("flaky", "hit", params)["id"])
    assert failed["status"] == "failed"
    driver.get(f"{stack.url}/ui/executions/{failed['id']}")
    wait_for(driver, lambda d: status_shown(d) == "failed", "the failed status")

    # When the outage is over and Retry is pressed
    outage.unlink()
    browser.click(driver, "#summary form[action$='/retry'] button")

    # Then a new execution runs, linked to the original, and succeeds
    wait_for(driver, lambda d: failed["id"] not in d.current_url, "the new execution's page")
    wait_for(driver, lambda d: status_shown(d) == "succeeded", "the retry succeeding")
    assert text_of(driver, "#retry-of") == failed["id"]
    retry_id = driver.current_url.rsplit("/", 1)[1]
    assert stack.get(retry_id)["retry_of"] == failed["id"]


def test_retry_these_reruns_a_group_of_failures(driver: WebDriver, stack: Stack, tmp_path: Path) -> None:
    key = new_key(stack, "console-retry-these")
    outage = tmp_path / "outage"
    outage.touch()
    body = {
        "plugin": "flaky",
        "command": "hit",
        "params": {"path": str(tmp_path / "runs"), "fail_while": str(outage)},
    }
    with httpx.Client(base_url=stack.url, headers=bearer(key), timeout=60) as client:
        ids = [client.post("/v1/executions", json=body).json()["id"] for _ in range(3)]
        for execution_id in ids:
            assert (
                client.get(f"/v1/executions/{execution_id}", params={"wait": 30}).json()["status"] == "failed"
            )
        sign_in(driver, stack.url, key)
        driver.get(f"{stack.url}/ui/failed")
        outage.unlink()
        driver.find_element(By.XPATH, "//button[starts-with(normalize-space(.), 'Retry these 3')]").click()
        wait_for(driver, lambda d: "3 executions started again" in text_of(d, "main"), "the confirmation")

        listed = client.get("/v1/executions", params={"plugin": "flaky"}).json()["executions"]
    retries = [e for e in listed if e["retry_of"]]
    assert sorted(e["retry_of"] for e in retries) == sorted(ids)


def test_an_executions_page_shows_its_webhook_deliveries(signed_in: WebDriver, stack: Stack) -> None:
    driver = signed_in
    with receiver() as hooks:
        created = stack.submit("echo", "echo", {"hello": "hooks"}, webhook=hooks.url)
        stack.wait(created["id"])
        wait_until(lambda: len(hooks.requests()) == 1, 30, "the webhook")

    driver.get(f"{stack.url}/ui/executions/{created['id']}")
    # Read in one step: the live log may still replace the summary around it.
    first_row = (
        "return [...(document.querySelector('table.deliveries tbody tr')?.cells || [])].map(c => c.innerText)"
    )
    cells = wait_for(driver, lambda d: d.execute_script(first_row), "the deliveries table")
    assert cells[:4] == ["execution.succeeded", "its own webhook", "succeeded", "1"]
    assert cells[4].startswith("200 ")


def test_the_waiting_filter_lists_held_executions(signed_in: WebDriver, stack: Stack) -> None:
    driver = signed_in
    held = stack.submit("echo", "echo", {"later": True}, delay_s=600)
    done = stack.wait(stack.submit("echo", "echo", {"now": True})["id"])
    driver.get(f"{stack.url}/ui/executions")
    driver.find_element(By.CSS_SELECTOR, "input[name=waiting]").click()
    driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait_for(driver, lambda d: "waiting=true" in d.current_url, "the filtered page")
    assert held["id"] in driver.page_source
    assert done["id"] not in driver.page_source
    driver.get(f"{stack.url}/ui/executions/{held['id']}")
    assert wait_for(driver, lambda d: text_of(d, "#waiting-on"), "what it waits on")
    stack.client.post(f"/v1/executions/{held['id']}/cancel")


def test_the_admin_sets_and_removes_limits_and_a_keys_most_running(
    signed_in: WebDriver, stack: Stack
) -> None:
    driver = signed_in
    name = f"console-limit-{time.time_ns()}"
    key_id = stack.client.post("/v1/keys", json={"name": name}).json()["id"]
    held = stack.submit("echo", "echo", {"held": True}, concurrency_key=name, delay_s=600)
    driver.get(f"{stack.url}/ui/admin")

    # A refused value is shown by the form, and nothing is set
    driver.find_element(By.ID, "limit-key").send_keys(name)
    driver.find_element(By.ID, "limit-max").send_keys("0")
    driver.find_element(By.CSS_SELECTOR, "form[action='/ui/admin/limits'] button").click()
    assert "greater than or equal to 1" in wait_for(
        driver, lambda d: text_of(d, "#limit-error"), "the refusal"
    )
    assert name not in str(stack.client.get("/v1/limits").json())

    # A limit set in the form is the API's, with its waiting execution counted
    driver.find_element(By.ID, "limit-key").clear()
    driver.find_element(By.ID, "limit-key").send_keys(name)
    driver.find_element(By.ID, "limit-max").clear()
    driver.find_element(By.ID, "limit-max").send_keys("3")
    driver.find_element(By.CSS_SELECTOR, "form[action='/ui/admin/limits'] button").click()
    row = wait_for(driver, lambda d: next((r for r in _rows(d, "#limits") if r[0] == name), []), "the limit")
    assert row[1:4] == ["3", "0", "1"]  # most running, running, waiting
    (limit,) = [x for x in stack.client.get("/v1/limits").json()["limits"] if x["concurrency_key"] == name]
    assert limit["max_running"] == 3

    # A key's most running
    field = driver.find_element(By.ID, f"max-running-{key_id}")
    field.clear()
    field.send_keys("7")
    driver.find_element(By.CSS_SELECTOR, f"form[action='/ui/admin/keys/{key_id}/max-running'] button").click()
    wait_for(
        driver, lambda d: d.find_element(By.ID, f"max-running-{key_id}").get_attribute("value") == "7", "7"
    )
    (shown,) = [k for k in stack.client.get("/v1/keys").json()["keys"] if k["id"] == key_id]
    assert shown["max_running"] == 7

    # Removed
    driver.find_element(By.XPATH, f"//table[@id='limits']//tr[td/code='{name}']//button").click()
    wait_for(driver, lambda d: all(r[0] != name for r in _rows(d, "#limits")), "the limit gone")
    assert name not in str(stack.client.get("/v1/limits").json())
    stack.client.post(f"/v1/executions/{held['id']}/cancel")


def _rows(driver: WebDriver, table: str) -> list[list[str]]:
    # A row read while the page after a form's POST replaces this one has no cells left.
    cells = (
        [c.text.strip() for c in row.find_elements(By.TAG_NAME, "td")]
        for row in driver.find_elements(By.CSS_SELECTOR, f"{table} tbody tr")
    )
    return [row for row in cells if row]


PAGES = ["/ui/executions", "/ui/failed", "/ui/schedules", "/ui/schedules/new", "/ui/plugins", "/ui/admin"]


def test_every_page_renders_without_browser_errors_at_laptop_and_phone_widths(
    signed_in: WebDriver, stack: Stack
) -> None:
    driver = signed_in
    done = stack.submit("simulate", "run", {"progress_steps": 3, "sleep_s": 0.3})
    failed = [stack.submit("simulate", "run", {"fail_times": 3}, max_retries=0) for _ in range(2)]
    for execution in [done, *failed]:
        stack.wait(execution["id"])
    browser.console_errors(driver)  # what earlier tests left
    for width, height in (browser.LAPTOP, browser.PHONE):
        driver.set_window_size(width, height)
        for path in [*PAGES, f"/ui/executions/{done['id']}"]:
            driver.get(stack.url + path)
            wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete", path)
            # Times are shown in the browser's zone once its script ran.
            wait_for(
                driver,
                lambda d: not d.find_elements(By.CSS_SELECTOR, "time:not([data-local])"),
                "local times",
            )
            assert browser.console_errors(driver) == [], path
            # Nothing is wider than the window (wide tables scroll in their own box).
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, (path, width, overflow)
            if SCREENSHOTS:
                driver.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
                name = (path.strip("/").replace("/", "-").replace(done["id"], "detail")) or "home"
                suffix = "-phone" if width == browser.PHONE[0] else ""
                Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(Path(SCREENSHOTS) / f"{name}{suffix}.png"))


def test_pages_are_keyboard_navigable_and_every_control_is_labelled(
    signed_in: WebDriver, stack: Stack
) -> None:
    driver = signed_in
    for path in PAGES:
        driver.get(stack.url + path)
        unlabelled = driver.execute_script(
            "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]"
            ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))"
            ".map(e => e.outerHTML);"
        )
        assert unlabelled == [], path
    # Tab from the top reaches the skip link first, then the navigation
    driver.get(f"{stack.url}/ui/executions")
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys("\ue004")  # Tab
    assert driver.switch_to.active_element.text == "Skip to content"
