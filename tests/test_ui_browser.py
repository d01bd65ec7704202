"""The admin UI in a real browser (Debian's Chromium through Selenium): sign in, create a key, call the
proxy with it, see the call in Logs and on the Overview, block the key, sign out. Every page is screenshot
(light and dark) into tests/artifacts/ui/ and must log no console error.

Skipped with the reason where Chromium or its driver is missing (`.ci/run` installs both).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.serving import MASTER_KEY, config_for, running_proxy

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).parent / "artifacts" / "ui"
PAGES = ["/ui", "/ui?window=hour", "/ui?window=month", "/ui/keys", "/ui/teams", "/ui/users", "/ui/customers",
         "/ui/tags", "/ui/models", "/ui/logs"]

webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[test]')")
if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
    pytest.skip(f"needs Chromium and ChromeDriver ({CHROMIUM}, {CHROMEDRIVER}): apt-get install chromium "
                "chromium-driver", allow_module_level=True)

from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def browser(dark: bool = False) -> webdriver.Chrome:
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900", "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    if dark:
        options.add_argument("--force-dark-mode")
        options.add_argument("--blink-settings=preferredColorScheme=0")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture(scope="module")
def proxy_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("ui") / "ui.db"
    with running_proxy(config_for(None, f"sqlite:///{db}")) as server:
        yield server.url


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    chrome = browser()
    chrome.set_page_load_timeout(30)
    yield chrome
    chrome.quit()


def console_errors(chrome: webdriver.Chrome) -> list[str]:
    return [entry["message"] for entry in chrome.get_log("browser") if entry["level"] == "SEVERE"]


def wait_for(chrome: webdriver.Chrome, by: str, what: str) -> Any:
    return WebDriverWait(chrome, 15).until(expected_conditions.presence_of_element_located((by, what)))


def sign_in(chrome: webdriver.Chrome, url: str, key: str = MASTER_KEY) -> None:
    chrome.get(url + "/ui")
    assert chrome.current_url.endswith("/ui/login")
    chrome.find_element(By.ID, "master_key").send_keys(key)
    chrome.find_element(By.ID, "sign-in").click()


def test_sign_in_create_a_key_use_it_see_it_block_it_and_sign_out(driver, proxy_url) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    sign_in(driver, proxy_url, "sk-wrong")
    assert "not the master key" in wait_for(driver, By.CSS_SELECTOR, "[role=alert]").text
    assert all("401" in message for message in console_errors(driver))  # the refused sign-in itself, only
    sign_in(driver, proxy_url)
    assert wait_for(driver, By.CSS_SELECTOR, "dl.totals") and driver.find_element(By.TAG_NAME, "h1").text == "Overview"
    assert MASTER_KEY not in driver.current_url
    cookie = driver.get_cookie("rerank_proxy_ui")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict" and MASTER_KEY not in cookie["value"]

    driver.get(proxy_url + "/ui/keys")
    driver.find_element(By.CSS_SELECTOR, "details.card > summary").click() if not driver.find_element(
        By.ID, "key_alias").is_displayed() else None
    driver.find_element(By.ID, "key_alias").send_keys("browser-key")
    driver.find_element(By.ID, "create-key").click()
    key = wait_for(driver, By.ID, "new-key").text
    assert key.startswith("sk-")
    driver.save_screenshot(str(ARTIFACTS / "key-created.png"))

    answer = httpx.post(f"{proxy_url}/v1/rerank", headers={"authorization": f"Bearer {key}"},
                        json={"model": "local-bm25", "query": CAPITAL_QUERY, "documents": CAPITALS}, timeout=10)
    assert answer.status_code == 200
    request_id = answer.headers["x-request-id"]

    def logged() -> bool:
        driver.get(proxy_url + "/ui/logs?key=browser-key")
        return request_id in driver.page_source or bool(driver.find_elements(By.CSS_SELECTOR, "#logs tbody a"))

    _eventually(logged)
    driver.find_element(By.CSS_SELECTOR, "#logs tbody a").click()
    wait_for(driver, By.CSS_SELECTOR, "dl.detail")
    assert request_id in driver.page_source and "browser-key" in driver.page_source

    driver.get(proxy_url + "/ui?window=hour")
    totals = {dt.text: dd.text for dt, dd in zip(driver.find_elements(By.CSS_SELECTOR, ".totals dt"),
                                                  driver.find_elements(By.CSS_SELECTOR, ".totals dd"), strict=True)}
    assert int(totals["Requests"].replace(",", "")) >= 1
    assert driver.find_elements(By.CSS_SELECTOR, "svg.chart polyline, svg.chart circle")

    driver.get(proxy_url + "/ui/keys")
    row = driver.find_element(By.CSS_SELECTOR, "tr[data-alias='browser-key']")
    row.find_element(By.XPATH, ".//summary[text()='Regenerate']").click()
    row.find_element(By.CSS_SELECTOR, "button[name='regenerate']").click()
    rotated = wait_for(driver, By.ID, "new-key").text
    assert rotated.startswith("sk-") and rotated != key
    body = {"model": "local-bm25", "query": CAPITAL_QUERY, "documents": CAPITALS}
    assert httpx.post(f"{proxy_url}/v1/rerank", headers={"authorization": f"Bearer {key}"}, json=body,
                      timeout=10).status_code == 401
    key = rotated

    driver.get(proxy_url + "/ui/tags")
    driver.find_element(By.CSS_SELECTOR, "details.card > summary").click() if not driver.find_element(
        By.NAME, "id").is_displayed() else None
    driver.find_element(By.NAME, "id").send_keys("browser-tag")
    driver.find_element(By.NAME, "max_budget").send_keys("5")
    driver.find_element(By.CSS_SELECTOR, "form.grid button[type=submit]").click()
    assert "browser-tag" in wait_for(driver, By.CSS_SELECTOR, "[role=status]").find_element(
        By.XPATH, "//table").text

    driver.get(proxy_url + "/ui/keys")
    row = driver.find_element(By.CSS_SELECTOR, "tr[data-alias='browser-key']")
    row.find_element(By.CSS_SELECTOR, "button[name='block']").click()
    wait_for(driver, By.CSS_SELECTOR, "tr[data-alias='browser-key'] button[name='unblock']")
    assert "blocked" in driver.find_element(By.CSS_SELECTOR, "tr[data-alias='browser-key']").text
    refused = httpx.post(f"{proxy_url}/v1/rerank", headers={"authorization": f"Bearer {key}"},
                         json={"model": "local-bm25", "query": CAPITAL_QUERY, "documents": CAPITALS}, timeout=10)
    assert refused.status_code == 403

    for path in PAGES:
        driver.get(proxy_url + path)
        assert driver.find_element(By.TAG_NAME, "h1").text
        name = path.strip("/").replace("/", "-").replace("?window=", "-") or "ui"
        driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    assert console_errors(driver) == []

    driver.find_element(By.ID, "sign-out").click()
    wait_for(driver, By.ID, "master_key")
    assert driver.current_url.endswith("/ui/login")
    driver.get(proxy_url + "/ui/keys")
    assert driver.current_url.endswith("/ui/login")


def test_every_page_renders_in_dark_mode_on_a_phone_without_console_errors(proxy_url) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chrome = browser(dark=True)
    try:
        chrome.set_window_size(390, 844)
        sign_in(chrome, proxy_url)
        wait_for(chrome, By.CSS_SELECTOR, "dl.totals")
        for path in PAGES:
            chrome.get(proxy_url + path)
            background = chrome.execute_script(
                "return getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(21, 23, 28)", background  # the dark theme's --bg
            width = chrome.execute_script("return document.documentElement.scrollWidth")
            assert width <= 400, f"{path} is {width}px wide on a 390px screen"
            name = path.strip("/").replace("/", "-").replace("?window=", "-") or "ui"
            chrome.save_screenshot(str(ARTIFACTS / f"{name}-dark-phone.png"))
        assert console_errors(chrome) == []
    finally:
        chrome.quit()


def _eventually(predicate, attempts: int = 40) -> None:
    import time

    for _ in range(attempts):
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError("condition not met in time")
