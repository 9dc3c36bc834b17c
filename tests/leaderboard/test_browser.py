"""The leaderboard as a visitor meets it: the Space's app, installed the way its Dockerfile does
(no torch), run against the Hub stand-in, opened in headless Chromium, every tab looked at.

The results dataset holds real instrument results (every synthetic task, real tasks skipped), a
random-init network, a distilled student with its Matryoshka dims and its teacher report, and a
failed task. Screenshots of every view are saved in the test's temporary folder.
"""

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import venv
from pathlib import Path

import pandas as pd
import pytest

from tests.support.hub_standin import HubStandIn, Repo
from tests.support.result_files import write_result
from tests.support.hub_cli import TOKEN, harness, hub_env

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
needs_chromium = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)
TABS = ["Leaderboard", "Per task", "Head to head", "Size and speed", "Robustness", "Students", "Queue", "About"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout_s: float = 90) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with {process.returncode}")
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not become healthy")


@pytest.fixture(scope="module")
def space_venv(tmp_path_factory) -> Path:
    """A fresh venv with what the Space's Dockerfile installs: requirements.txt, then the harness
    with --no-deps (from this checkout, where the Space would use its pinned git URL). Without
    byte-compiling every installed module (half the install's time here): the app compiles what
    it imports when it starts."""
    from harness.leaderboard.space import pinned_requirements

    folder = tmp_path_factory.mktemp("space-venv")
    (folder / "requirements.txt").write_text(pinned_requirements())
    venv.create(folder / "venv", with_pip=True)
    python = folder / "venv" / "bin" / "python"
    for command in (["-m", "pip", "install", "-q", "--no-compile", "-r", str(folder / "requirements.txt")],
                    ["-m", "pip", "install", "-q", "--no-compile", "--no-deps", str(ROOT)]):
        done = subprocess.run([str(python), *command], capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    return python


def test_the_space_install_has_no_torch(space_venv, tmp_path):
    # run outside this checkout, as the Space does: from the repository root, `harness` would be the
    # checkout's folder, where harness.leaderboard is not (it installs from leaderboard/)
    for heavy in ("torch", "timm", "openslide", "sksurv"):
        done = subprocess.run([str(space_venv), "-c", f"import {heavy}"], capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr, heavy
    done = subprocess.run([str(space_venv), "-c", "import harness, harness.leaderboard.aggregate, "
                           "harness.leaderboard.charts, harness.hub_queue, harness.submissions; print(harness.__file__)"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert str(space_venv.parents[1]) in done.stdout and str(ROOT) not in done.stdout  # the installed copy


def rich_results(instrument_results: Path, folder: Path, cache: Path) -> Path:
    """Instruments (real), a random-init network (real), a distilled student (hand-made results
    with a teacher report from harness.distillers.scoring), a failed task."""
    shutil.copytree(instrument_results, folder)
    done = subprocess.run([str(Path(sys.executable).parent / "harness"), "run", "--model", "timm:vit_tiny_patch16_224",
                           "--random-init", "--tasks", "synth-tiles,synth-retrieval,synth-invariance", "--output",
                           str(folder), "--cache-dir", str(cache)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    # the student: the random-init network's results scaled, replicates and all (so ranks stay paired)
    network = folder / "timm--vit_tiny_patch16_224-random-init"
    for task in ("synth-tiles", "synth-retrieval"):
        for slug, name, share, dim in (("students--tiny", "students/tiny", 1.05, 192),
                                       ("students--tiny-d16", "students/tiny@16d", 0.8, 16),
                                       ("students--tiny-d64", "students/tiny@64d", 0.95, 64)):
            result = json.loads((network / f"{task}.json").read_text())
            main = result["main_score"]
            main["value"] *= share
            main["replicates"] = [v * share for v in main["replicates"]]
            metric = result["metrics"][main["name"]]
            metric.update(mean=main["value"], ci95=[v * share for v in metric["ci95"]])
            result["model"].update(name=name, weights="checkpoint", n_parameters=5_500_000, embed_dim=dim,
                                   teachers=["timm:vit_tiny_patch16_224"])  # its card's lineage
            if slug == "students--tiny":  # as if distilled from a TCGA-trained teacher and tested on TCGA images
                result["training_overlap"] = ["TCGA"]
            (folder / slug).mkdir(exist_ok=True)
            (folder / slug / f"{task}.json").write_text(json.dumps(result))
    write_result(folder, "students--tiny", "synth-slides", "slide_classification", status="failed",
                 reason="a slide could not be read (disk error)")
    # a CIDEr-D above 10: sorted as text, "12.0" would come before "4.1"
    write_result(folder, "students--tiny", "synth-report", "report_generation", 12.0, main="cider_d",
                 params=5_500_000, dataset=json.loads((folder / "random-noise" / "synth-report.json").read_text())[
                     "dataset"])  # scored on the data the others were: no 'other data' banner
    for task in ("synth-slides", "synth-report"):
        path = folder / "students--tiny" / f"{task}.json"
        path.write_text(path.read_text().replace('"name": "students--tiny"', '"name": "students/tiny"'))
    from harness.distillers.scoring import compare

    compare(folder, "students--tiny", {"timm:vit_tiny_patch16_224": network.name}, ["synth-tiles", "synth-retrieval"],
            {"method": "feature_kd", "student": {"name": "students/tiny"}, "fidelity": {},
             "loss_curve": [{"step": s, "loss": 0.1 + 0.6 / s ** 0.5} for s in range(100, 900, 100)],
             "held_out_curve": [{"step": s, "loss": 0.14 + 0.6 / s ** 0.5} for s in range(100, 900, 100)]})
    return folder


def requests_repo(hub: HubStandIn) -> None:
    """A queue with one finished and one pending request, as `harness submit hf-hub:` writes them."""
    from harness.submissions import Request, request_id

    repo = Repo("dataset", private=False)
    for i, status in enumerate(("FINISHED", "PENDING")):
        request = Request(id=request_id(f"lab/fm{i}", f"{i}" * 40), status=status, model_name=f"lab/fm{i}", hub_id=f"lab/fm{i}",
                          revision="main", commit_sha=f"{i}" * 40, tasks="all", submitted=f"2026-11-2{i}T00:00:00+00:00",
                          updated=f"2026-11-2{i}T00:00:00+00:00")
        repo.files[f"requests/{request.id}.json"] = request.model_dump_json().encode()
    repo.commits.append("a" * 40)
    repo.snapshots["a" * 40] = dict(repo.files)
    # the commit that wrote them, as the Hub dates it (the pending request's `queued` in the Queue tab)
    repo.last_commits["a" * 40] = {name: {"id": "a" * 40, "title": "submit", "date": "2026-11-22T09:30:00.000Z"}
                                   for name in repo.files}
    hub.repos[("dataset", "lab/requests")] = repo


@needs_chromium
def test_every_view_of_the_space_in_chromium(space_venv, instrument_results, suite_cache, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from harness.leaderboard.formatting import LEAD_WIDTHS, TASK_WIDTHS
    from harness.leaderboard.space import write_space

    results = rich_results(instrument_results, tmp_path / "results", suite_cache)
    with HubStandIn(token=TOKEN) as hub:
        env = hub_env(hub, tmp_path)
        pushed = harness(env, "push", "--repo", "lab/results", "--results", str(results), "--private")
        assert pushed.returncode == 0, pushed.stderr
        assert "results/students--tiny/distillation.json" in hub.repos[("dataset", "lab/results")].files
        requests_repo(hub)
        space = write_space(tmp_path / "space", "lab/results", "pathology-harness @ git+https://example.org/x@" + "0" * 40,
                            requests_repo="lab/requests", submissions="on")
        port = free_port()
        # the Dockerfile's CMD, from the torch-free venv; the private dataset is read with HF_TOKEN
        server = subprocess.Popen([str(space_venv.parent / "streamlit"), "run", "app.py", f"--server.port={port}",
                                   "--server.address=127.0.0.1", "--server.headless=true",
                                   "--browser.gatherUsageStats=false"], cwd=space, env=env,
                                  stdout=open(tmp_path / "app.log", "w"), stderr=subprocess.STDOUT)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run",
                     f"--user-data-dir={tempfile.mkdtemp()}", "--window-size=1600,1400"):
            options.add_argument(flag)
        downloads = tmp_path / "downloads"
        downloads.mkdir()
        options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                                  "download.prompt_for_download": False})
        driver = None
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, server)
            driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
            driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
            driver.get(url)
            wait = WebDriverWait(driver, 90)
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, '[data-testid="stApp"]')))
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, '[data-testid="stDataFrame"]')))
            wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "How sure are the ranks?"))
            settle(driver)

            # no banner above the tabs (a distillation report is not a "broken result file")
            banners = [a.text for a in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stAlert"]')
                       if not a.find_elements(By.XPATH, 'ancestor::*[@data-testid="stTabPanel"]')]
            assert banners == []

            overview = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')[0]
            models = [row[2] for row in table_rows(overview)]
            assert models[0] == "synth-oracle" and "students/tiny" in models and "random-noise" in models
            assert "bach" not in overview.get_attribute("textContent")  # no model scored it: no column

            # the page names the results commit it shows; the table downloads as the CSV of what it shows
            commit = hub.repos[("dataset", "lab/results")].commits[-1]
            assert f"at commit {commit[:12]}" in driver.find_element(By.TAG_NAME, "body").text
            shown_means = [float(row[3]) for row in table_rows(overview)]
            active_panel(driver).find_element(By.CSS_SELECTOR, '[data-testid="stDownloadButton"] button').click()
            csv = downloads / "leaderboard.csv"
            WebDriverWait(driver, 30).until(lambda _: csv.exists() and csv.stat().st_size > 0)
            downloaded = pd.read_csv(csv)
            assert list(downloaded["model"]) == models
            assert list(downloaded["mean"]) == pytest.approx(shown_means, abs=5e-4)  # the grid may show 3 decimals
            assert list(downloaded["#"]) == list(range(1, len(models) + 1))

            # a score whose test images the model was trained on is marked; "no overlap only" drops it (and the
            # results whose overlap is unknown), and the ranks are recomputed without it
            # (the grid draws its display text on a canvas: the caption under it lists the marked cells)
            assert "students/tiny on synth-tiles (TCGA)" in active_panel(driver).text
            ranks_before = {row[2]: row[1] for row in table_rows(overview)}
            assert ranks_before["timm:vit_tiny_patch16_224"] == "3"
            sidebar = driver.find_element(By.CSS_SELECTOR, '[data-testid="stSidebar"]')
            next(label for label in sidebar.find_elements(By.TAG_NAME, "label")
                 if "No training-data overlap only" in label.text).click()
            wait.until(lambda d: "students/tiny on synth-tiles (TCGA)" not in active_panel(d).text)
            settle(driver, paint_s=1.0)
            assert driver.save_screenshot(str(tmp_path / "view-no-overlap.png"))
            filtered = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')[0]
            ranks_after = {row[2]: row[1] for row in table_rows(
                filtered, until=lambda rows: rows and all(row[2] != "students/tiny" for row in rows))}
            # the student's every score overlaps (or is unknown): it leaves the board, and the network moves up
            assert "students/tiny" not in ranks_after and ranks_after["timm:vit_tiny_patch16_224"] == "2"
            next(label for label in sidebar.find_elements(By.TAG_NAME, "label")
                 if "No training-data overlap only" in label.text).click()
            wait.until(lambda d: "students/tiny on synth-tiles (TCGA)" in active_panel(d).text)
            settle(driver)
            overview = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')[0]

            # lineage: the student (ranked above its teacher, the network) moves right under it, with its
            # retention (its mean as a % of the teacher's); every model keeps its rank
            next(label for label in sidebar.find_elements(By.TAG_NAME, "label")
                 if "Students under their teachers" in label.text).click()
            wait.until(lambda d: "Rows are grouped by lineage" in active_panel(d).text)
            settle(driver, paint_s=1.0)
            assert driver.save_screenshot(str(tmp_path / "view-lineage.png"))
            lineage = table_rows(driver.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')[0],
                                 until=lambda rows: len(rows) == len(models))
            names = [row[2] for row in lineage]
            assert models.index("students/tiny") < models.index("timm:vit_tiny_patch16_224")
            assert names[names.index("timm:vit_tiny_patch16_224") + 1] == "students/tiny", names
            assert {row[2]: row[1] for row in lineage} == ranks_before
            by_name = {row[2]: row for row in lineage}
            student, teacher = by_name["students/tiny"], by_name["timm:vit_tiny_patch16_224"]
            assert float(student[3]) == pytest.approx(100 * float(student[4]) / float(teacher[4]), abs=0.05)
            others = [row[3] for row in lineage if row[2] != "students/tiny"]
            assert not any(finite_number(cell) for cell in others), others  # no retention: not a student
            next(label for label in sidebar.find_elements(By.TAG_NAME, "label")
                 if "Students under their teachers" in label.text).click()
            wait.until(lambda d: "Rows are grouped by lineage" not in active_panel(d).text)
            settle(driver)
            overview = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')[0]

            # numbers sort as numbers: a click on the `mean` header sorts the rows by it, ascending
            canvas = overview.find_element(By.CSS_SELECTOR, "canvas")
            click_header(driver, canvas, sum(LEAD_WIDTHS[:3]) + LEAD_WIDTHS[3] // 2)
            means = [float(row[3]) for row in table_rows(overview, until=ascending(3))]
            assert means == sorted(means) and len(means) == len(models)
            click_header(driver, canvas, sum(LEAD_WIDTHS[:3]) + LEAD_WIDTHS[3] // 2)

            shots = {}
            for name in TABS:
                tab = next(t for t in driver.find_elements(By.CSS_SELECTOR, '[role="tab"]') if t.text == name)
                tab.click()
                panel = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ACTIVE_PANEL)))
                settle(driver, paint_s=1.0)  # let charts and the grid canvas paint
                shots[name] = tmp_path / f"view-{name.lower().replace(' ', '-')}.png"
                assert driver.save_screenshot(str(shots[name]))
                text = panel.text
                charts = [c for c in panel.find_elements(By.CSS_SELECTOR, '[data-testid="stVegaLiteChart"]')
                          if c.size["height"] > 50]
                if name in ("Leaderboard", "Per task", "Size and speed", "Robustness", "Students"):
                    assert charts, f"no chart drawn in {name}"
                    assert all(c.find_elements(By.CSS_SELECTOR, "canvas, svg") for c in charts), name
                if name == "Leaderboard":
                    assert "Cannot be told apart" in text
                if name == "Per task":  # pick CIDEr-D and sort its scores with a click
                    box = panel.find_element(By.CSS_SELECTOR, '[data-testid="stSelectbox"] input')
                    box.send_keys("synth-report")
                    box.send_keys(Keys.ENTER)
                    wait.until(lambda d: "cider_d" in active_panel(d).text)
                    settle(driver)
                    grid = next(g for g in active_panel(driver).find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]'))
                    click_header(driver, grid.find_element(By.CSS_SELECTOR, "canvas"), sum(TASK_WIDTHS[:2]) + TASK_WIDTHS[2] // 2)
                    scores = [float(row[2]) for row in table_rows(grid, until=ascending(2)) if row[2]]
                    assert 12.0 in scores and scores == sorted(scores), scores
                    assert driver.save_screenshot(str(tmp_path / "view-per-task-cider.png"))
                if name == "Head to head":  # the two best models, task by task, from their paired replicates
                    [versus] = panel.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')
                    rows = table_rows(versus)
                    assert rows[-1][0] == "wins / ties / losses" and "synth-tiles" in [row[0] for row in rows]
                    assert all(row[1].split()[0] in ("win", "tie", "loss", "not") for row in rows[:-1]), rows
                if name == "Robustness":
                    assert "synth-plism" in text and "synth-invariance" in text
                if name == "Students":
                    assert "students/tiny" in text and "Matryoshka" in text and "held-out items" in text  # loss curves
                if name == "Queue":
                    [queue] = panel.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')
                    rows = table_rows(queue)
                    # the backend's order: what waits (by the Hub's date), then what is done
                    assert [(row[0], row[2]) for row in rows] == [("lab/fm1", "PENDING"), ("lab/fm0", "FINISHED")]
                    assert rows[0][3] == "2026-11-22T09:30:00.000Z" and "2026" not in rows[1][3]  # queued: waiting only
                    assert "1 PENDING, 1 FINISHED" in text
                    # the board's own submission form: a model the Hub does not have is refused in one line
                    assert "Branch or tag" in text and "At most 5 requests per organisation or user in 7 days" in text
                    model = panel.find_element(By.CSS_SELECTOR, 'input[aria-label="Model repository"]')
                    model.send_keys("lab/not-there")
                    next(b for b in panel.find_elements(By.CSS_SELECTOR, "button") if b.text == "Submit").click()
                    wait.until(lambda d: "Not filed" in active_panel(d).text)
                    refused = active_panel(driver).text.replace("\u2060", "")  # plain() keeps ':' from making emoji
                    assert "lab/not-there: no such public model repository on the Hub: check the name" in refused
                    settle(driver)
                    assert driver.save_screenshot(str(tmp_path / "view-queue-refused.png"))
                if name == "About":
                    assert "How to cite" in text
            assert all(p.stat().st_size > 10_000 for p in shots.values())
        finally:
            if driver is not None:
                driver.quit()
            server.terminate()
            server.wait(timeout=20)
        log = (tmp_path / "app.log").read_text()
        assert "Traceback" not in log, log[-3000:]  # e.g. no Arrow fallback for a mixed-type column
        # the operator sees each submission in the Space's log, one escaped line
        assert "submission 'lab/not-there' @ 'main': refused: 'lab/not-there: no such public model repository" in log
        assert TOKEN not in log


ACTIVE_PANEL = '[data-testid="stTabPanel"][role="tabpanel"]'  # inactive panels carry no role


def active_panel(driver):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, ACTIVE_PANEL)


def finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def table_rows(grid, until=bool, timeout: float = 30.0) -> list[list[str]]:
    """A Streamlit dataframe's rows as shown (the grid's accessible table follows its sort order).
    The grid fills its rows after the script's run and re-sorts them after a click, later on a busy
    machine: they are read again until `until(rows)` holds (by default: there are rows), for at most
    `timeout` s, and then returned as they are, for the test's assertion to judge."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while True:
        rows = [[cell.get_attribute("textContent") for cell in row.find_elements(By.TAG_NAME, "td")]
                for row in grid.find_elements(By.CSS_SELECTOR, "tbody tr")]
        if until(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def ascending(column: int):
    """Whether a grid's rows show the numbers of `column` (its empty cells left out) sorted up."""
    def holds(rows: list[list[str]]) -> bool:
        values = [float(row[column]) for row in rows if row[column]]
        return bool(values) and values == sorted(values)

    return holds


def settle(driver, paint_s: float = 0.5) -> None:
    """Wait until the app's script has finished its run (Streamlit marks the app root with its state),
    then `paint_s` for charts and the grid's canvas to draw. Without the mark, 2 s."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def state(d) -> str | None:
        return d.find_element(By.CSS_SELECTOR, '[data-testid="stApp"]').get_attribute("data-test-script-state")

    if state(driver) is None:
        time.sleep(2)
        return
    WebDriverWait(driver, 90, poll_frequency=0.1).until(lambda d: state(d) == "notRunning")
    time.sleep(paint_s)


def click_header(driver, canvas, x: int) -> None:
    """Click the grid's header row (drawn on its canvas) x pixels from the left edge, then let it re-sort."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).move_to_element_with_offset(canvas, int(x - canvas.rect["width"] / 2),
                                                     int(17 - canvas.rect["height"] / 2)).click().perform()
    time.sleep(1.0)


def test_sigterm_to_harness_leaderboard_frees_the_port(tmp_path):
    """`harness leaderboard` becomes the Streamlit server: stopping it leaves nothing holding the port."""
    write_result(tmp_path / "results", "m", "t", "tile_classification", 0.5)
    port = free_port()
    process = subprocess.Popen([str(Path(sys.executable).parent / "harness"), "leaderboard", "--results",
                                str(tmp_path / "results"), "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_healthy(f"http://127.0.0.1:{port}", process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) is not None
    with socket.socket() as probe:  # nothing left listening
        assert probe.connect_ex(("127.0.0.1", port)) != 0
