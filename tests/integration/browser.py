"""A headless Chromium (Debian's ``chromium`` and ``chromedriver``) driven by Selenium,
for the console's tests; and the steps they share."""

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# How long a step may wait for the page to show something (bounded, not a speed target).
WAIT_S = 30
LAPTOP = (1280, 900)
PHONE = (390, 844)

T = TypeVar("T")


def installed() -> bool:
    return shutil.which(CHROMIUM) is not None and shutil.which(CHROMEDRIVER) is not None


@contextmanager
def chromium() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-first-run",
        f"--window-size={LAPTOP[0]},{LAPTOP[1]}",
    ):
        options.add_argument(argument)
    # The page's console messages, for the no-errors check.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(
    driver: WebDriver, condition: Callable[[WebDriver], T], what: str, timeout_s: float = WAIT_S
) -> T:
    # A live update may replace an element between finding it and reading it: look again.
    wait = WebDriverWait(driver, timeout_s, 0.1, ignored_exceptions=[StaleElementReferenceException])
    return wait.until(condition, f"waited for {what}")


def sign_in(driver: WebDriver, base_url: str, key: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{base_url}/ui/sign-in")
    field = driver.find_element(By.ID, "api_key")
    field.send_keys(key)
    field.submit()
    wait_for(
        driver, lambda d: d.current_url.endswith("/ui/executions"), "the executions page after signing in"
    )


def text_of(driver: WebDriver, css: str) -> str:
    """The text of what ``css`` finds ("" when nothing is, or a live update just replaced it)."""
    try:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return found[0].text if found else ""
    except StaleElementReferenceException:
        return ""


def mark_page(driver: WebDriver) -> None:
    """A mark on this page's window: still there later means the page was never reloaded."""
    driver.execute_script("window.agentqTestMark = 'kept';")


def page_kept(driver: WebDriver) -> bool:
    return bool(driver.execute_script("return window.agentqTestMark === 'kept';"))


def console_errors(driver: WebDriver) -> list[dict[str, Any]]:
    """What the page logged at error level since the last call."""
    return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]  # type: ignore[attr-defined]


def visible(driver: WebDriver, css: str) -> WebElement | None:
    found = [e for e in driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]
    return found[0] if found else None


def click(driver: WebDriver, css: str) -> None:
    """Click what ``css`` finds; a live update may replace it in between: then find it again."""

    def clicked(d: WebDriver) -> bool:
        try:
            d.find_element(By.CSS_SELECTOR, css).click()
        except (StaleElementReferenceException, NoSuchElementException):
            return False
        return True

    wait_for(driver, clicked, f"a click on {css}")
