"""Headless Chromium for the page tests (the report site, JupyterLab): one way to start it, and the checks
every page gets: no console errors, a screenshot kept in test-artifacts/.
"""

import contextlib
import shutil
import tempfile

import pytest

from conftest import PROJECT

ARTIFACTS = PROJECT / "test-artifacts"


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000):
    """A headless Chromium WebDriver with a throwaway profile; fails (not skips) when Chromium is missing."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        pytest.fail("Chromium is missing: apt-get install -y chromium chromium-driver (or `make browser`)")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    profile = tempfile.mkdtemp(prefix="reproml-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver) -> list[str]:
    """The browser's console errors since the last call (SEVERE: failed loads, script errors)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def full_page_screenshot(driver, name: str, width: int | None = None, most: int = 4000) -> None:
    """Save the whole page (up to `most` pixels tall) as test-artifacts/<name>.png; the window size is restored."""
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width or size["width"], min(height + size["height"] - driver.execute_script(
        "return window.innerHeight"), most))
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    driver.set_window_size(size["width"], size["height"])
