"""reports: notebooks laid out for JupyterLab, the static site (checked in headless Chromium), JupyterLab."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest
from provenance_fixtures import make_run

from conftest import PROJECT
from reproml.inspect import reports
from reproml.pfs import Store

ARTIFACTS = PROJECT / "test-artifacts"
LAB = PROJECT / ".venv-lab" / "bin" / "jupyter"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    store = Store(root / "store")
    first = make_run(store, 0.001)
    second = make_run(store, 0.003, base=first)
    folder = root / "reports"
    laid = reports.layout(store, folder)
    return store, folder, reports.build_site(store, folder), laid, first, second


def test_every_executed_notebook_is_laid_out_by_pipeline_and_commit(site):
    store, folder, _, laid, first, _ = site
    assert len(laid) == 10  # 4 shared upstream commits + 3 per run
    report = folder / "evaluate" / first["evaluate"].id / "Report.ipynb"
    assert report.read_bytes() == store.read_file(first["evaluate"], "Report.ipynb")
    assert report.stat().st_ino != store.objects.path(store.file_info(first["evaluate"], "Report.ipynb").sha256).stat().st_ino


def test_the_index_lists_both_runs_with_the_differing_parameter_and_metrics(site):
    _, _, folder, _, first, second = site
    index = (folder / "index.html").read_text()
    for run in (first, second):
        assert f"evaluate@{run['evaluate'].id[:12]}" in index
        assert f"nb/evaluate/{run['evaluate'].id}/Report.ipynb.html" in index
        assert f"lineage/evaluate-{run['evaluate'].id}.html" in index
    assert "<th>model.learning_rate</th>" in index and "<td>0.57</td>" in index and "<td>0.61</td>" in index
    # Headline metrics first, then the parameters that differ, then the rest (hidden until asked for).
    heads = [h.rsplit(">", 1)[1] for h in index.split("</th>")[:-1]]
    assert heads[:6] == ["run", "created", "pixel_accuracy", "mean_iou", "ece", "model.learning_rate"], heads
    assert '<th class="more">dice</th>' in index
    report = (folder / "nb" / "evaluate" / first["evaluate"].id / "Report.ipynb.html").read_text()
    assert "data:image/png;base64" in report
    lineage_page = (folder / "lineage" / f"evaluate-{first['evaluate'].id}.html").read_text()
    assert "learning_rate=0.001" in lineage_page


def test_the_compare_page_has_metric_deltas_and_figures_side_by_side(site):
    _, _, folder, _, first, second = site
    page = folder / "compare" / f"{first['evaluate'].id[:12]}-{second['evaluate'].id[:12]}" / "index.html"
    html = page.read_text()
    assert "learning_rate" in html and '<span class="pos">+0.04</span>' in html
    assert html.count('<div class="pair">') == 2 and (page.parent / "a0.png").exists()


def test_serve_answers_on_loopback(site):
    _, _, folder, _, first, _ = site
    server = reports.serve(folder, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        assert server.server_address[0] == "127.0.0.1"
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10).read().decode()
        assert first["evaluate"].id[:12] in body
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_site_in_headless_chromium(site):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        pytest.fail("Chromium is missing: apt-get install -y chromium chromium-driver")
    _, _, folder, _, first, second = site
    server = reports.serve(folder, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    profile = tempfile.mkdtemp(prefix="reproml-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        driver.get(f"{base}/index.html")
        rows = driver.find_elements(By.CSS_SELECTOR, "table tr")
        text = driver.find_element(By.TAG_NAME, "body").text
        assert len(rows) == 3, text  # header + two runs
        for run in (first, second):
            assert f"evaluate@{run['evaluate'].id[:12]}" in text
        assert "0.57" in text and "0.61" in text
        driver.save_screenshot(str(ARTIFACTS / "reports-index.png"))
        header = driver.find_element(By.XPATH, "//table[@class='runs']//th[text()='mean_iou']")
        column = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "table.runs th")].index("mean_iou")

        def mean_iou() -> list[str]:
            return [r.find_elements(By.TAG_NAME, "td")[column].text
                    for r in driver.find_elements(By.CSS_SELECTOR, "table.runs tbody tr")]

        header.click()
        assert mean_iou() == ["0.61", "0.57"]  # first click: descending
        header.click()
        assert mean_iou() == ["0.57", "0.61"]
        assert not driver.find_element(By.CSS_SELECTOR, "th.more").is_displayed()
        driver.find_element(By.CSS_SELECTOR, "input[type=checkbox]").click()
        assert driver.find_element(By.CSS_SELECTOR, "th.more").is_displayed()  # the other metrics on demand
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        driver.find_element(By.LINK_TEXT, "evaluate").click()  # the newest run's Report notebook
        images = driver.find_elements(By.CSS_SELECTOR, "img")
        assert images and driver.execute_script("return arguments[0].naturalWidth", images[0]) > 0
        driver.save_screenshot(str(ARTIFACTS / "reports-notebook.png"))
        driver.get(f"{base}/index.html")
        driver.find_element(By.ID, "compare").click()
        assert "Metrics" in driver.find_element(By.TAG_NAME, "body").text
        shown = driver.find_elements(By.CSS_SELECTOR, ".pair img")
        assert len(shown) == 4 and all(driver.execute_script("return arguments[0].naturalWidth", i) > 0 for i in shown)
        driver.save_screenshot(str(ARTIFACTS / "reports-compare.png"))
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
        shutil.rmtree(profile, ignore_errors=True)


def test_jupyterlab_opens_jupytext_notebooks_and_report_notebooks(site, tmp_path):
    if not LAB.exists():
        pytest.fail(f"{LAB} is missing: create it with `make lab-setup` (env/requirements-lab.txt)")
    _, folder, _, _, first, _ = site
    root = tmp_path / "lab"
    root.mkdir()
    (root / "notebooks").symlink_to(PROJECT / "notebooks")
    (root / "reports").symlink_to(folder)
    port, token = _free_port(), "reproml-test"
    server = subprocess.Popen(
        [str(LAB), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1", f"--ServerApp.token={token}",
         f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False", "--allow-root"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")})
    try:
        def get(path: str) -> dict:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/contents/{path}",
                                             headers={"Authorization": f"token {token}"})
            return json.loads(urllib.request.urlopen(request, timeout=30).read())

        deadline = time.time() + 60
        while True:
            try:
                listing = get("notebooks?content=1")
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        kinds = {item["name"]: item["type"] for item in listing["content"]}
        stage = "train.py" if "train.py" in kinds else sorted(n for n in kinds if n.endswith(".py"))[0]
        assert kinds[stage] == "notebook", kinds
        opened = get(f"notebooks/{stage}")
        assert opened["type"] == "notebook" and opened["content"]["cells"]
        report = get(f"reports/evaluate/{first['evaluate'].id}/Report.ipynb")
        assert report["type"] == "notebook"
        assert report["content"]["metadata"]["reproml"]["provenance"]["stage"] == "evaluate"
    finally:
        server.terminate()
        server.wait(timeout=30)
