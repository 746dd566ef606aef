"""The web UI in a real browser: headless Chromium (Debian's chromium and chromium-driver)
driven through Selenium. A person signs in with an access key, sees the overview, and a change
made through the ECS API appears without a reload. Screenshots are kept as artifacts in
$BERTH_ARTIFACTS/ui (default target/artifacts/ui)."""

import os
import shutil
import time
from pathlib import Path

import pytest

from conftest import make_ecs_client

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("BERTH_ARTIFACTS", "target/artifacts")) / "ui"
# How long the test waits for a change to show; the latency itself is printed, not asserted.
BOUND = 10.0


@pytest.fixture
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the browser tests: chromium and chromium-driver are missing")
        pytest.skip("no chromium/chromedriver (scripts/test.sh installs them as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot at {path}"
    return path


def sign_in(driver, endpoint: str, access_key_id: str, secret: str) -> None:
    driver.get(f"{endpoint}/ui")
    WebDriverWait(driver, BOUND).until(EC.url_contains("/ui/login"))
    driver.find_element(By.NAME, "access_key_id").send_keys(access_key_id)
    driver.find_element(By.NAME, "secret").send_keys(secret)
    driver.find_element(By.CSS_SELECTOR, "form[action='/ui/login'] button").click()


def test_a_change_through_the_api_appears_without_a_reload(berth_server, browser):
    admin = berth_server.admin
    ecs = make_ecs_client(berth_server.endpoint, admin)
    ecs.create_cluster(clusterName="before")

    sign_in(browser, berth_server.endpoint, "wrong", "wrong")
    error = WebDriverWait(browser, BOUND).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "p.error")))
    assert "not valid" in error.text
    screenshot(browser, "login-refused")

    sign_in(browser, berth_server.endpoint, admin.access_key_id, admin.secret_access_key)
    WebDriverWait(browser, BOUND).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "section[data-cluster='before']")))
    assert "signed in as user/admin" in browser.find_element(By.CSS_SELECTOR, "header").text
    cookies = {c["name"]: c for c in browser.get_cookies()}
    session = cookies["berth_session"]
    assert session["httpOnly"] and session.get("sameSite") == "Strict", session
    assert admin.secret_access_key not in session["value"]
    screenshot(browser, "overview")

    # Mark the page: a reload would lose the mark, a live update keeps it.
    browser.execute_script("document.documentElement.dataset.mark = 'same page'")
    changed = time.monotonic()
    ecs.create_cluster(clusterName="live")
    WebDriverWait(browser, BOUND, poll_frequency=0.02).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "section[data-cluster='live']")))
    latency = time.monotonic() - changed
    print(f"ui live-update latency: {latency * 1000:.0f} ms")
    assert browser.execute_script("return document.documentElement.dataset.mark") == "same page"
    screenshot(browser, "overview-live")

    # Signing out ends the session in the browser.
    browser.find_element(By.CSS_SELECTOR, "header form button").click()
    WebDriverWait(browser, BOUND).until(EC.url_contains("/ui/login"))
    browser.get(f"{berth_server.endpoint}/ui")
    WebDriverWait(browser, BOUND).until(EC.url_contains("/ui/login"))
