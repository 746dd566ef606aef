"""The web UI in a real browser: headless Chromium (Debian's chromium and chromium-driver)
driven through Selenium. A person signs in with an access key, sees the overview, follows it to
a service, a task and a container instance (a hollow agent runs the tasks), and changes made
through the ECS API appear on the open page without a reload. Screenshots are kept as artifacts in
$BERTH_ARTIFACTS/ui (default target/artifacts/ui)."""

import os
import shutil
import time
from pathlib import Path

import pytest

from conftest import make_ecs_client, start_hollow_agent

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

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


def scroll_to(driver, selector: str) -> None:
    driver.execute_script(
        "document.querySelector(arguments[0]).scrollIntoView({block: 'center'})", selector)


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


def hollow_definition(family: str, memory: int) -> dict:
    return {
        "family": family,
        "containerDefinitions": [{
            "name": "app", "image": "hollow/app:1", "cpu": 128, "memory": memory,
            "portMappings": [{"containerPort": 80, "hostPort": 0}],
        }],
    }


def wait_live(driver, what: str, condition):
    """Waits (within BOUND) for a change on an open page that must not reload: the page is
    marked first, and the mark must survive. Prints the latency."""
    driver.execute_script("document.documentElement.dataset.mark = 'same page'")
    changed = time.monotonic()
    found = WebDriverWait(driver, BOUND, poll_frequency=0.02).until(condition)
    print(f"ui live-update latency ({what}): {(time.monotonic() - changed) * 1000:.0f} ms")
    assert driver.execute_script("return document.documentElement.dataset.mark") == "same page"
    return found


def test_overview_service_task_and_instance_pages_follow_the_cluster_live(
    berth_server, start_berth, browser
):
    admin = berth_server.admin
    ecs = make_ecs_client(berth_server.endpoint, admin)
    ecs.create_cluster(clusterName="shop")
    instance = start_hollow_agent(start_berth, berth_server, "shop", "--attribute", "stack=blue")
    ecs.register_task_definition(**hollow_definition("web", 128))
    ecs.register_task_definition(**hollow_definition("huge", 65536))
    ecs.create_service(cluster="shop", serviceName="web", taskDefinition="web", desiredCount=1)

    sign_in(browser, berth_server.endpoint, admin.access_key_id, admin.secret_access_key)
    link = WebDriverWait(browser, BOUND).until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, "article[data-service='web'] h4 a")))
    screenshot(browser, "overview-with-service")

    # Overview → service: its deployment and its task.
    link.click()
    WebDriverWait(browser, BOUND).until(EC.url_contains("/ui/clusters/shop/services/web"))
    WebDriverWait(browser, BOUND).until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, "#live tr[data-task][data-status='RUNNING']")))
    assert "PRIMARY" in browser.find_element(By.CSS_SELECTOR, "table.deployments").text
    # Scaling through the API shows on the open page.
    ecs.update_service(cluster="shop", service="web", desiredCount=2)
    wait_live(browser, "service scaled", lambda d: len(d.find_elements(
        By.CSS_SELECTOR, "#live tr[data-task][data-status='RUNNING']")) == 2)
    screenshot(browser, "service")

    # Service → task: containers, bindings, the log tail.
    browser.find_element(By.CSS_SELECTOR, "#live tr[data-task] td a").click()
    WebDriverWait(browser, BOUND).until(EC.url_contains("/ui/clusters/shop/tasks/"))
    task = browser.current_url.rsplit("/", 1)[1]
    WebDriverWait(browser, BOUND).until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, "#live tr[data-container='app'][data-status='RUNNING']")))
    WebDriverWait(browser, BOUND).until(EC.text_to_be_present_in_element(
        (By.CSS_SELECTOR, "div.log"), "hollow container"))
    assert "→ 80/tcp" in browser.find_element(By.CSS_SELECTOR, "table.containers").text
    scroll_to(browser, "section.logs")
    screenshot(browser, "task")
    # Stopping it through the API shows on the open page, with the reason and in the timeline.
    ecs.stop_task(cluster="shop", task=task, reason="stopped by the browser test")
    wait_live(browser, "task stopped", EC.presence_of_element_located(
        (By.CSS_SELECTOR, "#live div.task-page[data-status='STOPPED']")))
    assert "stopped by the browser test" in browser.find_element(By.CSS_SELECTOR, "dl.facts").text
    timeline = browser.find_element(By.CSS_SELECTOR, "ol.timeline").text
    assert "desired: RUNNING → STOPPED" in timeline, timeline
    screenshot(browser, "task-stopped")

    # Task → instance: capacity, attributes, and why a task of `huge` cannot go there.
    browser.find_element(By.CSS_SELECTOR, f"dl.facts a[href$='/instances/{instance}']").click()
    WebDriverWait(browser, BOUND).until(EC.url_contains(f"/ui/clusters/shop/instances/{instance}"))
    assert "blue" in browser.find_element(By.CSS_SELECTOR, "table.attributes").text
    Select(browser.find_element(By.NAME, "taskdef")).select_by_value("huge:1")
    browser.find_element(By.CSS_SELECTOR, "form.explain button").click()
    verdict = WebDriverWait(browser, BOUND).until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, "#live tr[data-verdict='rejected']")))
    assert "MEMORY" in verdict.text, verdict.text
    scroll_to(browser, "table.verdicts")
    screenshot(browser, "instance")
