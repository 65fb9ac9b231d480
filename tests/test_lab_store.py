"""The store in JupyterLab's file browser: jupyter-fs mounts `reproml://` (env/jupyter_server_config.py).

A real JupyterLab server from .venv-lab, configured as `make lab` configures it, serves a small store:
its contents API lists repos, branches and files through the mount, opens a report notebook with its
outputs, refuses a save with a message, and still opens notebooks/*.py as notebooks (jupytext). Headless
Chromium opens the mounted Report.ipynb; the screenshot is kept in test-artifacts/lab-store-report.png.
"""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest
from test_pachd_reader import build_runs

from conftest import PROJECT
from reproml.pfs import Store

LAB = PROJECT / ".venv-lab" / "bin" / "jupyter"
ARTIFACTS = PROJECT / "test-artifacts"
DRIVE = hashlib.md5(b"reproml://fsspec").hexdigest()[:8]  # jupyter-fs names a resource by md5(url + type)
TOKEN = "reproml-test"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(base URL, commits made) of a JupyterLab server over a store with two runs."""
    if not LAB.exists():
        pytest.fail(f"{LAB} is missing: create it with `make lab-env` (env/requirements-lab.txt)")
    tmp = tmp_path_factory.mktemp("lab")
    store = Store(tmp / "store")
    made = build_runs(store)
    store.close()
    (tmp / "root").mkdir()
    (tmp / "root" / "notebooks").symlink_to(PROJECT / "notebooks")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [str(LAB), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1", f"--ServerApp.token={TOKEN}",
         f"--config={PROJECT / 'env' / 'jupyter_server_config.py'}", f"--ServerApp.root_dir={tmp / 'root'}",
         "--allow-root"], stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "wb"),
        env={**os.environ, "REPROML_STORE": str(tmp / "store"), "JUPYTER_CONFIG_DIR": str(tmp / "config"),
             "JUPYTER_RUNTIME_DIR": str(tmp / "rt")})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                contents(base, f"{DRIVE}:")
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise AssertionError((tmp / "server.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        yield base, made
    finally:
        server.terminate()
        server.wait(timeout=30)


def contents(base: str, path: str, method: str = "GET", body: dict | None = None) -> dict:
    request = urllib.request.Request(f"{base}/api/contents/{path}", method=method,
                                     data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"token {TOKEN}"})
    return json.loads(urllib.request.urlopen(request, timeout=60).read())


def names(listing: dict) -> list[str]:
    return sorted(item["name"] for item in listing["content"])


def test_the_mount_lists_repos_branches_commits_and_files(lab):
    base, made = lab
    assert names(contents(base, f"{DRIVE}:")) == ["data", "evaluate", "model"]
    refs = names(contents(base, f"{DRIVE}:evaluate"))
    assert "master" in refs and all(r["evaluate"].id in refs for r in made["runs"])
    assert names(contents(base, f"{DRIVE}:evaluate/master")) == [
        "README.txt", "Report.ipynb", "evaluation.json", "predictions.png"]


def test_a_report_opens_with_its_outputs_and_a_save_is_refused(lab):
    base, made = lab
    path = f"{DRIVE}:evaluate/{made['runs'][0]['evaluate'].id}/Report.ipynb"
    report = contents(base, path)
    assert report["type"] == "notebook"
    assert any(cell.get("outputs") for cell in report["content"]["cells"])
    with pytest.raises(urllib.error.HTTPError) as refused:
        contents(base, path, "PUT", {"type": "notebook", "format": "json", "content": report["content"]})
    assert "read-only" in refused.value.read().decode()
    assert contents(base, path)["content"] == report["content"]


def test_the_servers_own_folder_still_opens_jupytext_notebooks(lab):
    base, _ = lab
    listing = contents(base, "notebooks?content=1")
    kinds = {item["name"]: item["type"] for item in listing["content"]}
    assert kinds["evaluate.py"] == "notebook", kinds


def test_chromium_shows_the_mounted_report(lab):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        pytest.fail("Chromium is missing: apt-get install -y chromium chromium-driver")
    base, _ = lab
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    profile = tempfile.mkdtemp(prefix="reproml-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1400,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        driver.get(f"{base}/lab?token={TOKEN}")
        WebDriverWait(driver, 90).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-DirListing-item"))
        time.sleep(2)
        driver.save_screenshot(str(ARTIFACTS / "lab-store-start.png"))  # what a user sees first
        # jupyter-fs's own panel in the left bar, named after the resource, lists the repos.
        panel = driver.find_element(By.CSS_SELECTOR, f".jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id$='_{DRIVE}']")
        assert panel.get_attribute("title") == "reproml runs"
        panel.click()
        WebDriverWait(driver, 30).until(lambda d: "evaluate/" in d.find_element(By.TAG_NAME, "body").text)
        driver.save_screenshot(str(ARTIFACTS / "lab-store-sidebar.png"))
        driver.get(f"{base}/lab/tree/{DRIVE}:evaluate/master/Report.ipynb?token={TOKEN}")
        WebDriverWait(driver, 90).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-OutputArea-output"))
        time.sleep(2)  # let the file browser and outputs settle before the picture
        driver.save_screenshot(str(ARTIFACTS / "lab-store-report.png"))
        WebDriverWait(driver, 30).until(lambda d: d.title.startswith("Report.ipynb"))
        crumbs = driver.find_element(By.CSS_SELECTOR, ".jp-BreadCrumbs").text
        assert f"{DRIVE}:evaluate" in crumbs and "master" in crumbs, crumbs  # the browser shows the commit's folder
        listed = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".jp-DirListing-itemText")]
        assert "Report.ipynb" in listed and "evaluation.json" in listed, listed
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
