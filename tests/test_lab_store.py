"""The store in JupyterLab's file browser: jupyter-fs mounts `reproml://` (env/jupyter_server_config.py).

A real JupyterLab server from .venv-lab, configured as `make lab` configures it, serves a small store:
its contents API lists repos, branches and files through the mount, opens a report notebook with its
outputs, refuses a save with a message, and still opens notebooks/*.py as notebooks (jupytext). Headless
Chromium opens the newest Report.ipynb as a user would, in three clicks (the "reproml runs" tab, a double
click), and from a link; the screenshots are kept in test-artifacts/lab-store-*.png.
"""

import hashlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from chromium import ARTIFACTS, chromium
from test_pachd_reader import build_runs

from conftest import PROJECT
from reproml.pfs import Store

LAB = PROJECT / ".venv-lab" / "bin" / "jupyter"
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


def test_the_newest_report_opens_in_three_clicks(lab):
    """A user's path in a fresh JupyterLab: the "reproml runs" tab (1), a double click on Report.ipynb (2, 3)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, _ = lab
    with chromium(1400, 900) as driver:
        driver.get(f"{base}/lab?token={TOKEN}")
        WebDriverWait(driver, 90).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-DirListing-item"))
        time.sleep(2)
        driver.save_screenshot(str(ARTIFACTS / "lab-store-start.png"))  # what a user sees first
        # jupyter-fs's own panel in the left bar, named after the resource, lists the repos.
        panel = driver.find_element(By.CSS_SELECTOR, f".jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id$='_{DRIVE}']")
        assert panel.get_attribute("title") == "reproml runs"
        clicks = 0
        panel.click()
        clicks += 1
        # The panel opens on evaluate/master (preferredDir); its breadcrumbs lead back up to the repos.
        WebDriverWait(driver, 30).until(lambda d: "Report.ipynb" in d.find_element(By.CSS_SELECTOR, ".jp-tree-finder-sidebar").text)
        time.sleep(1)
        listed = driver.find_element(By.CSS_SELECTOR, ".jp-tree-finder-sidebar").text
        assert listed.split("\n")[:4] == ["/", "evaluate", "/", "master"] and "evaluation.json" in listed, listed
        driver.save_screenshot(str(ARTIFACTS / "lab-store-sidebar.png"))
        report = driver.find_element(By.XPATH, "//*[contains(@class, 'jp-tree-finder-sidebar')]"
                                               "//*[normalize-space(text())='Report.ipynb']")
        ActionChains(driver).double_click(report).perform()
        clicks += 2
        WebDriverWait(driver, 90).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-OutputArea-output"))
        WebDriverWait(driver, 30).until(lambda d: d.title.startswith("Report.ipynb"))
        time.sleep(2)  # let the outputs settle before the picture
        driver.save_screenshot(str(ARTIFACTS / "lab-store-report.png"))
        assert clicks == 3
        assert "mean_iou" in driver.find_element(By.CSS_SELECTOR, ".jp-Notebook").text  # its outputs, as run
        opened = urllib.parse.unquote(driver.current_url)  # JupyterLab puts the current document's path there
        assert f"/lab/tree/{DRIVE}:evaluate/master/Report.ipynb" in opened, opened


def test_a_link_to_a_commits_report_opens_it_beside_its_folder(lab):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, _ = lab
    with chromium(1400, 900) as driver:
        driver.get(f"{base}/lab/tree/{DRIVE}:evaluate/master/Report.ipynb?token={TOKEN}")
        WebDriverWait(driver, 90).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-OutputArea-output"))
        WebDriverWait(driver, 30).until(lambda d: d.title.startswith("Report.ipynb"))
        # The file browser (hidden while another panel is open: textContent, not text) shows the commit's folder.
        # JupyterLab moves the browser to the folder after the document opens, so wait for it, then check.
        def crumbs():
            return driver.find_element(By.CSS_SELECTOR, ".jp-BreadCrumbs").get_attribute("textContent")

        def listed():
            return [e.get_attribute("textContent") for e in driver.find_elements(By.CSS_SELECTOR, ".jp-DirListing-itemText")]

        try:
            WebDriverWait(driver, 30).until(lambda d: f"{DRIVE}:evaluate" in crumbs() and "Report.ipynb" in listed())
        except TimeoutException:
            pass  # the assertions below say what was shown instead
        assert f"{DRIVE}:evaluate" in crumbs() and "master" in crumbs(), crumbs()
        names = listed()
        assert "Report.ipynb" in names and "evaluation.json" in names, names
