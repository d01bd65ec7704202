"""The admin UI in a real browser (Debian's Chromium through Selenium): sign in, create a key, call the
proxy with it, see the call in Logs and on the Overview, block the key, sign out; see a key made in the UI
in the Audit page and its spend in Reports; wrong keys until sign-in answers 429. Every page is screenshot
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

from proxy.ui.sign_in_limits import PER_ADDRESS
from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.serving import MASTER_KEY, config_for, running_proxy

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).parent / "artifacts" / "ui"
PAGES = ["/ui", "/ui?window=hour", "/ui?window=month", "/ui/keys", "/ui/teams", "/ui/users", "/ui/customers",
         "/ui/tags", "/ui/models", "/ui/logs", "/ui/reports", "/ui/reports?granularity=day&group_by=key",
         "/ui/reports?granularity=hour&group_by=model", "/ui/audit"]
PRICED = {"model_name": "priced-bm25", "litellm_params": {"model": "local/bm25", "input_cost_per_query": 0.25}}

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
    with running_proxy(config_for(None, f"sqlite:///{db}", model_list=[PRICED])) as server:
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
        By.NAME, "name").is_displayed() else None
    driver.find_element(By.NAME, "name").send_keys("browser-tag")
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
        name = shot_name(path)
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
            name = shot_name(path)
            chrome.save_screenshot(str(ARTIFACTS / f"{name}-dark-phone.png"))
        assert console_errors(chrome) == []
    finally:
        chrome.quit()


def shot_name(path: str) -> str:
    name = path.strip("/").replace("/", "-").replace("?window=", "-").replace("?granularity=", "-")
    return name.replace("&group_by=", "-by-") or "ui"


def open_form(chrome: webdriver.Chrome, field: str) -> None:
    """Open the page's Add/Create card when it is folded (it starts open on an empty page)."""
    if not chrome.find_element(By.ID, field).is_displayed():
        chrome.find_element(By.CSS_SELECTOR, "details.card > summary").click()


def test_a_key_made_in_the_ui_shows_in_audit_and_its_spend_in_reports(driver, proxy_url) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    sign_in(driver, proxy_url)
    wait_for(driver, By.CSS_SELECTOR, "dl.totals")
    driver.get(proxy_url + "/ui/keys")
    open_form(driver, "key_alias")
    driver.find_element(By.ID, "key_alias").send_keys("report-key")
    driver.find_element(By.ID, "metadata").send_keys("{not json")
    driver.find_element(By.ID, "create-key").click()
    assert "Metadata (a JSON object): not JSON" in wait_for(driver, By.CSS_SELECTOR, "[role=alert]").text
    open_form(driver, "key_alias")
    for field, value in (("key_alias", "report-key"), ("tags", "browser"), ("max_parallel_requests", "2"),
                         ("metadata", '{"suite": "browser"}')):
        driver.find_element(By.ID, field).clear()
        driver.find_element(By.ID, field).send_keys(value)
    driver.save_screenshot(str(ARTIFACTS / "key-form.png"))
    driver.find_element(By.ID, "create-key").click()
    key = wait_for(driver, By.ID, "new-key").text
    body = {"model": "priced-bm25", "query": CAPITAL_QUERY, "documents": CAPITALS}
    for _ in range(2):
        assert httpx.post(f"{proxy_url}/v1/rerank", headers={"authorization": f"Bearer {key}"}, json=body,
                          timeout=10).status_code == 200

    driver.get(proxy_url + "/ui/audit?table=verification_tokens&action=created")
    trail = wait_for(driver, By.ID, "audit").text
    assert "report-key" in trail and '{"suite": "browser"}' in trail and key not in driver.page_source
    driver.save_screenshot(str(ARTIFACTS / "audit-key-created.png"))

    driver.get(proxy_url + "/ui/reports")
    driver.find_element(By.CSS_SELECTOR, "input[name=group_by][value=model]").click()  # off: the default
    driver.find_element(By.CSS_SELECTOR, "input[name=group_by][value=key]").click()
    driver.find_element(By.ID, "run-report").click()

    def reported() -> bool:
        rows = driver.find_elements(By.CSS_SELECTOR, "tr[data-group='report-key']")
        if rows and "$0.500000" in rows[0].text:
            return True
        driver.refresh()
        return False

    _eventually(reported)
    assert driver.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")
    driver.save_screenshot(str(ARTIFACTS / "reports-by-key.png"))
    driver.get(proxy_url + "/ui/teams")
    open_form(driver, "team_id")
    driver.find_element(By.ID, "team_id").send_keys("browser-team")
    driver.find_element(By.ID, "members_with_roles").send_keys("ann, bob:admin")
    driver.find_element(By.ID, "add").click()
    row = wait_for(driver, By.CSS_SELECTOR, "tr[data-id='browser-team']")
    assert "ann, bob (admin)" in row.text
    row.find_element(By.XPATH, ".//summary[text()='Edit']").click()
    driver.save_screenshot(str(ARTIFACTS / "team-edit.png"))
    row.find_element(By.NAME, "rpm_limit").send_keys("42")
    row.find_element(By.NAME, "save").click()
    WebDriverWait(driver, 15).until(expected_conditions.text_to_be_present_in_element(
        (By.CSS_SELECTOR, "[role=status]"), "saved"))
    assert "42 rpm" in driver.find_element(By.CSS_SELECTOR, "tr[data-id='browser-team']").text
    driver.get(proxy_url + "/ui/reports")
    link = driver.find_element(By.ID, "report-csv").get_attribute("href")
    link = link.replace("/ui/reports.csv?", "/ui/reports.csv?granularity=all&group_by=key&")
    exported = httpx.get(link, cookies={"rerank_proxy_ui": driver.get_cookie("rerank_proxy_ui")["value"]},
                         timeout=10)
    assert exported.status_code == 200 and any(
        line.split(",")[1:4] == ["report-key", "2", "0"] for line in exported.text.splitlines()), exported.text
    assert console_errors(driver) == []


def test_wrong_keys_until_sign_in_answers_429_and_says_when_to_retry(tmp_path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chrome = browser()
    try:
        with running_proxy(config_for(None, f"sqlite:///{tmp_path / 'limited.db'}")) as server:
            for n in range(PER_ADDRESS):
                sign_in(chrome, server.url, f"sk-wrong-{n}")
                assert "not the master key" in wait_for(chrome, By.CSS_SELECTOR, "[role=alert]").text
            sign_in(chrome, server.url)  # the right key, too late
            refusal = wait_for(chrome, By.CSS_SELECTOR, "[role=alert]").text
            assert refusal == "Too many failed sign-ins. Try again in 15 minutes."
            assert chrome.get_cookie("rerank_proxy_ui") is None
            chrome.save_screenshot(str(ARTIFACTS / "login-limited.png"))
            logged = console_errors(chrome)  # only the refused sign-ins themselves
            assert logged and all(" 401 " in m or " 429 " in m for m in logged), logged
            assert any(" 429 " in m for m in logged)
    finally:
        chrome.quit()


def _eventually(predicate, attempts: int = 40) -> None:
    import time

    for _ in range(attempts):
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError("condition not met in time")
