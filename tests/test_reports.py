"""reports: notebooks laid out for JupyterLab, the static site (checked in headless Chromium), JupyterLab."""

import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
from chromium import ARTIFACTS, chromium, console_errors, full_page_screenshot
from provenance_fixtures import make_run

from conftest import PROJECT
from reproml.inspect import reports
from reproml.inspect.site_index import write_index
from reproml.pfs import Store

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
        assert f'href="runs/{run["evaluate"].id}/index.html"' in index
    assert "<th>model.learning_rate</th>" in index and "<td>0.57</td>" in index and "<td>0.61</td>" in index
    # Headline metrics first, then the parameters that differ, then the rest (hidden until asked for).
    heads = [h.rsplit(">", 1)[1] for h in index.split("</th>")[:-1]]
    assert heads[:6] == ["run", "created", "pixel_accuracy", "mean_iou", "ece", "model.learning_rate"], heads
    assert '<th class="more">dice</th>' in index
    assert f'href="compare/{first["evaluate"].id[:12]}-{second["evaluate"].id[:12]}/index.html">compare</a>' in index
    for metric in ("pixel_accuracy", "mean_iou", "ece"):  # the fixture runs have no pet IoU
        assert f'<img src="trends/{metric}.svg"' in index and (folder / "trends" / f"{metric}.svg").exists()
    report = (folder / "nb" / "evaluate" / first["evaluate"].id / "Report.ipynb.html").read_text()
    assert "data:image/png;base64" in report
    assert "<script src=\"http" not in report and "cdnjs" not in report  # offline: no require.js or MathJax


def test_notebook_pages_are_made_again_when_the_way_they_are_rendered_changes(tmp_path, monkeypatch):
    """A page is kept while its notebook and the renderer are unchanged; a site built by an older renderer
    (one that still loaded require.js from a CDN, say) must not keep its pages."""
    store = Store(tmp_path / "store")
    run = make_run(store, 0.001)
    site = reports.build_site(store, tmp_path / "reports")
    page = site / "nb" / "evaluate" / run["evaluate"].id / "Report.ipynb.html"
    page.write_text("<script src='https://cdnjs.example/require.js'></script> an older renderer's page")
    reports.build_site(store, tmp_path / "reports")
    assert "an older renderer's page" in page.read_text()  # same renderer: the page is reused, not rebuilt
    monkeypatch.setattr(reports, "NOTEBOOK_OFFLINE", reports.NOTEBOOK_OFFLINE + "{# a new template #}")
    reports.build_site(store, tmp_path / "reports")
    assert "an older renderer's page" not in page.read_text() and "cdnjs" not in page.read_text()
    assert "data:image/png;base64" in page.read_text()


def test_a_run_page_has_report_figures_lineage_parameters_and_provenance(site):
    _, _, folder, _, first, _ = site
    page = folder / "runs" / first["evaluate"].id / "index.html"
    html = page.read_text()
    assert f'<iframe class="report" src="../../nb/evaluate/{first["evaluate"].id}/Report.ipynb.html"' in html
    assert html.count('<figure><a href="figure') == 2 and (page.parent / "figure1.png").exists()  # cell + file
    drawing = html[html.index('<svg class="lineage"'):html.index("</svg>")]
    assert drawing.count("<rect") == 7 and drawing.count("marker-end") == 9  # 7 commits, 9 input edges
    assert f'<a href="../../nb/model/{first["model"].id}/model.ipynb.html">' in drawing
    assert "<td>model</td><td>learning_rate</td><td>0.001</td>" in html
    assert "notebooks/train.py" in html and "0123456789ab" in html  # the notebook and git commit of model
    assert "learning_rate=0.001" in html  # the lineage as text, under the drawing


def test_the_compare_page_has_deltas_by_direction_figures_pixel_diffs_and_notebook_diffs(site):
    _, _, folder, _, first, second = site
    page = folder / "compare" / f"{first['evaluate'].id[:12]}-{second['evaluate'].id[:12]}" / "index.html"
    html = page.read_text()
    assert "learning_rate" in html and '<span class="better">+0.04</span>' in html  # mean IoU up: better
    assert '<span class="better">-0.004</span>' in html  # ECE down: better too
    assert html.count('<div class="pair">') == 2 and (page.parent / "a0.png").exists()
    assert html.count('alt="pixel difference"') == 2 and (page.parent / "diff0.png").exists()
    assert "/tmp" not in html and str(folder) not in html  # no local paths on a page
    notebooks = html[html.index("<h2>Notebooks</h2>"):]
    for pipeline in ("model", "calibrate", "evaluate"):  # the pipelines whose commits differ
        assert f"<summary><b>{pipeline}</b>" in notebooks
    assert '<span class="del">-learning_rate: float = 0.001</span>' in notebooks
    assert '<span class="add">+learning_rate: float = 0.003</span>' in notebooks
    assert (page.parent / "nbdiff" / "model" / "cell6-output0.png").exists()
    view = folder / "nbdime" / f"{page.parent.name}-model-model.ipynb.html"
    assert f'<a class="nbdime" href="../../nbdime/{view.name}">' in notebooks
    answer = view.read_text()  # nbdime's answer, in the page: A's notebook and the diff that makes B of it
    assert "learning_rate: float = 0.001" in answer and '"op": "patch"' in answer
    assert (folder / "nbdime" / "static" / "nbdime.js").exists()


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


class _Links(HTMLParser):
    """Every href and src of one page."""

    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.found += [(name, value) for name, value in attrs if name in ("href", "src") and value]


def _broken_links(site: Path) -> tuple[int, list[str]]:
    """(links checked, the broken ones) over every page of the site; a resource from the network is broken."""
    checked, broken = 0, []
    for page in site.rglob("*.html"):
        parser = _Links()
        parser.feed(page.read_text())
        for attribute, value in parser.found:
            if value.startswith(("data:", "#")) or (attribute == "href" and value.startswith(("http:", "https:"))):
                continue  # inline data, anchors, and links out that a reader may follow
            target = (page.parent / urllib.parse.unquote(value.split("#")[0])).resolve()
            checked += 1
            if value.startswith(("http:", "https:", "//")) or not target.is_file() or site.resolve() not in target.parents:
                broken.append(f"{page.relative_to(site)}: {attribute}={value}")
    return checked, broken


def test_every_link_of_the_site_resolves_and_nothing_loads_from_the_network(site):
    _, _, folder, _, _, _ = site
    checked, broken = _broken_links(folder)
    assert checked > 50 and not broken, broken


def test_the_site_in_headless_chromium(site):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, _, folder, _, first, second = site
    server = reports.serve(folder, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with chromium(1280, 900) as driver:
            base = f"http://127.0.0.1:{server.server_address[1]}"
            driver.get(f"{base}/index.html")
            rows = driver.find_elements(By.CSS_SELECTOR, "table.runs tr")
            text = driver.find_element(By.TAG_NAME, "body").text
            assert len(rows) == 3, text  # header + two runs
            for run in (first, second):
                assert f"evaluate@{run['evaluate'].id[:12]}" in text
            assert "0.57" in text and "0.61" in text
            trends = driver.find_elements(By.CSS_SELECTOR, ".trends img")
            assert len(trends) == 3 and all(driver.execute_script("return arguments[0].naturalWidth", i) > 0
                                            for i in trends)
            full_page_screenshot(driver, "reports-index")
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
            assert not console_errors(driver)

            driver.find_element(By.LINK_TEXT, f"evaluate@{second['evaluate'].id[:12]}").click()  # the run's page
            assert driver.title == f"run evaluate@{second['evaluate'].id[:12]}"
            images = driver.find_elements(By.CSS_SELECTOR, ".gallery img")
            assert len(images) == 2 and all(driver.execute_script("return arguments[0].naturalWidth", i) > 0
                                            for i in images)
            assert driver.find_element(By.CSS_SELECTOR, "svg.lineage").size["width"] > 600
            driver.switch_to.frame(driver.find_element(By.CSS_SELECTOR, "iframe.report"))
            shown = driver.find_elements(By.CSS_SELECTOR, "img")  # the report's own figure, inside the frame
            assert shown and driver.execute_script("return arguments[0].naturalWidth", shown[0]) > 0
            driver.switch_to.default_content()
            assert driver.execute_script("return document.documentElement.scrollWidth") <= 1280
            assert not console_errors(driver)
            full_page_screenshot(driver, "reports-run")
            driver.find_element(By.CSS_SELECTOR, "svg.lineage a").click()  # a box of the drawing: its notebook
            assert driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook") and not console_errors(driver)

            driver.get(f"{base}/index.html")
            driver.find_element(By.ID, "compare").click()
            assert "Metrics" in driver.find_element(By.TAG_NAME, "body").text
            shown = driver.find_elements(By.CSS_SELECTOR, ".pair img")
            assert len(shown) == 6 and all(driver.execute_script("return arguments[0].naturalWidth", i) > 0
                                           for i in shown)  # A, B and their difference, twice
            colour = driver.find_element(By.CSS_SELECTOR, "table.metrics .better").value_of_css_property("color")
            assert colour == "rgba(7, 112, 28, 1)", colour
            assert driver.execute_script("return document.documentElement.scrollWidth") <= 1280
            assert not console_errors(driver)
            full_page_screenshot(driver, "reports-compare")
            driver.find_element(By.CSS_SELECTOR, "a.nbdime").click()  # the model notebook's diff, by nbdime
            WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook-diff .jp-Diff-added"))
            shown = driver.find_element(By.ID, "nbdime-root").text
            assert "learning_rate: float = 0.003" in shown
            assert "undefined" not in shown  # every cell has an id for nbdime to show and pair by
            assert not console_errors(driver)
            driver.save_screenshot(str(ARTIFACTS / "reports-nbdime.png"))
    finally:
        server.shutdown()
        server.server_close()


def many_runs(count: int = 50, metrics: int = 30) -> dict:
    """`compare_all`'s result for `count` made-up runs with `metrics` metrics (the headline ones with
    95 % intervals) and three parameters that differ: the landing page's input, without a store."""
    names = ["pixel_accuracy", "mean_iou", "iou.pet", "ece", "nll", "dice", "iou.background", "iou.border"]
    names += [f"confusion_matrix.counts[{i // 3}][{i % 3}]" for i in range(metrics - len(names))]
    rows = []
    for index in range(count):
        values = {name: round(0.5 + 0.4 * ((index * 37 + position * 11) % 50) / 50, 4)
                  for position, name in enumerate(names)}
        values["ece"] = round(0.02 + 0.03 * (index % 7) / 7, 4)
        rows.append({"run": f"evaluate@{index:04d}{'ab' * 14}", "finished": 1_780_000_000 + 3600 * index,
                     "metrics": values, "intervals": {m: [values[m] - 0.02, values[m] + 0.015] for m in names[:4]},
                     "parameters": {"model.learning_rate": 0.0005 * (1 + index % 4), "model.epochs": 10 + index % 3,
                                    "stream.source": f"oxford-pets:{1000 + index}"}})
    return {"parameters": ["model.epochs", "model.learning_rate", "stream.source"], "metrics": sorted(names),
            "rows": rows[::-1]}


def test_fifty_runs_and_thirty_metrics_stay_readable_at_1280_pixels(tmp_path):
    from selenium.webdriver.common.by import By

    runs = many_runs()
    links = {r["run"]: {"page": "#", "previous": "#", "notebooks": [
        {"href": "#", "repo": repo, "more": ""} for repo in ("stream", "transform", "model", "evaluate")]}
        for r in runs["rows"]}
    page = write_index(tmp_path, runs, links, "runs of evaluate")
    trends = sorted(p.name for p in (tmp_path / "trends").iterdir())
    assert trends == ["ece.svg", "iou.pet.svg", "mean_iou.svg", "pixel_accuracy.svg"]
    assert (tmp_path / "trends" / "iou.pet.svg").read_text().count('id="LineCollection') == 1  # interval bars
    with chromium(1280, 900) as driver:
        driver.get(page.as_uri())
        assert len(driver.find_elements(By.CSS_SELECTOR, "table.runs tbody tr")) == 50
        assert all(driver.execute_script("return arguments[0].naturalWidth", i) > 0
                   for i in driver.find_elements(By.CSS_SELECTOR, ".trends img"))

        def layout() -> dict:
            return driver.execute_script("""const box = e => e.getBoundingClientRect();
              const scroll = document.querySelector('.scroll');
              return {page: document.documentElement.scrollWidth, view: window.innerWidth,
                      height: window.innerHeight, table: scroll.scrollWidth, box: scroll.clientWidth,
                      heads: [...document.querySelectorAll('table.runs th.head, table.runs th.run')].map(
                        th => [th.innerText, box(th).left, box(th).right, box(th).top])};""")

        for everything in (False, True):  # the default columns, then all 30 metrics
            if everything:
                driver.find_element(By.CSS_SELECTOR, "input[type=checkbox]").click()
            shown = layout()
            assert shown["page"] <= shown["view"] == 1280, shown  # only the table's box scrolls sideways
            assert [h[0] for h in shown["heads"]] == ["run", "pixel_accuracy", "mean_iou", "iou.pet", "ece"]
            assert all(0 <= left and right <= 1280 and top < shown["height"] for _, left, right, top in shown["heads"])
        assert shown["table"] > shown["box"]  # thirty metric columns do not fit: they scroll inside the box
        assert not console_errors(driver)
        full_page_screenshot(driver, "reports-index-50-runs", most=2400)


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
