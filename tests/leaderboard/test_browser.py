"""The leaderboard in a real browser: `harness leaderboard` on loopback, headless Chromium."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout_s: float = 60) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not become healthy")


def test_leaderboard_renders_in_chromium(instrument_results, tmp_path):
    """Issue 7's bar: after `harness run --model synth-oracle --model random-noise --tasks all`,
    `harness leaderboard` shows both models ranked, with the gaps (skipped real tasks) visible."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    results = instrument_results
    port = free_port()
    harness = shutil.which("harness", path=str(Path(sys.executable).parent))
    server = subprocess.Popen([harness, "leaderboard", "--results", str(results), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 f"--user-data-dir={tempfile.mkdtemp()}", "--window-size=1600,1200"):
        options.add_argument(flag)
    driver = None
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, '[data-testid="stApp"]')))
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, '[data-testid="stDataFrame"]')))
        wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "tasks that every model shown has scored"))
        wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "Robustness"))  # the page's last panels
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "Pathology foundation-model leaderboard" in body and "Robustness" in body
        # the grid's accessible table: rows in rank order, real tasks' cells say why they are empty
        overview = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')[0]
        rows = [[cell.get_attribute("textContent") for cell in row.find_elements(By.TAG_NAME, "td")]
                for row in overview.find_elements(By.CSS_SELECTOR, "tbody tr")]
        assert [row[0] for row in rows[:2]] == ["synth-oracle", "random-noise"]
        assert rows[0][1] == rows[1][1] and "skipped" in rows[0][1], rows[0]  # coverage, e.g. 6/18 (12 skipped)
        time.sleep(2)  # let the table canvas paint before the screenshot
        assert driver.save_screenshot(str(tmp_path / "leaderboard.png"))
        assert (tmp_path / "leaderboard.png").stat().st_size > 10_000
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=20)
