"""``dlscratch serve`` in a real headless browser (Debian's chromium, driven by Playwright).

A real server is started as a subprocess on a free 127.0.0.1 port and stopped by its PID
with SIGINT (Ctrl-C). The tests draw digits with mouse events, upload a MNIST test image,
train from the train page and look at the run on the runs page. Screenshots of each page
go to a folder under pytest's temporary path, and also to ``$DLSCRATCH_SCREENSHOTS`` when
that is set (CI keeps them next to the test results).

Skipped, with the reason, where chromium or Playwright is missing.
"""

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from shared_data import BOOK_WEIGHTS, needs_weights

CHROMIUM = Path(os.environ.get("DLSCRATCH_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

pytest.importorskip("fastapi", reason="dlscratch serve needs FastAPI: pip install 'dlscratch[web]'")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
)
pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason=f"no chromium at {CHROMIUM} (apt-get install chromium, or set DLSCRATCH_CHROMIUM)",
    ),
    needs_weights,
]


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("screenshots")
    yield folder
    extra = os.environ.get("DLSCRATCH_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        for shot in folder.glob("*.png"):
            shutil.copy2(shot, Path(extra) / shot.name)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A ``dlscratch serve`` process with the book's weights and an empty runs folder."""
    home = tmp_path_factory.mktemp("serve")
    runs = home / "runs"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlscratch.cli", "serve", "--port", "0"]
        + ["--model", str(BOOK_WEIGHTS), "--runs", str(runs)],
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    output: list[str] = []

    def pump():
        for line in proc.stdout:
            output.append(line)
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    url = None
    deadline = time.monotonic() + 60
    while url is None:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            proc.kill()
            pytest.fail(f"dlscratch serve did not print its address: {''.join(output)}")
        found = re.search(r"running at (http://127\.0\.0\.1:\d+/)", line)
        url = found.group(1) if found else None
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.status == 200
    startup = time.perf_counter() - started
    print(f"\ndlscratch serve answered / {startup:.2f} s after it was started")
    yield {"url": url, "runs": runs, "pid": proc.pid}
    os.kill(proc.pid, signal.SIGINT)  # Ctrl-C: stops cleanly
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("dlscratch serve did not stop on SIGINT within 30 s")
    assert code == 0, "".join(output)
    assert "stopped" in "".join(output)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    # bypass_csp: Playwright evaluates its wait conditions as strings, which the pages'
    # Content-Security-Policy (rightly) forbids to scripts
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    pg = context.new_page()
    errors = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, errors  # no JavaScript errors on any page


def draw(page, points):
    """One stroke through ``points`` (canvas fractions 0-1) with the mouse."""
    box = page.locator("#pad").bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=3)
    page.mouse.up()


def wait_for_label(page, label: str):
    page.wait_for_function(
        "label => document.getElementById('label').textContent === label", arg=label, timeout=10000
    )


def test_draw_a_one_and_a_zero_and_upload_a_test_image(server, page, screenshots, tmp_path):
    page.goto(server["url"])
    page.wait_for_function("document.getElementById('model').textContent.includes('model:')")
    assert page.inner_text("#message") == "draw a digit"

    draw(page, [(0.5, 0.15), (0.5, 0.85)])  # a vertical stroke
    wait_for_label(page, "1")
    assert page.locator("#heat-panel").is_visible()  # the book's network is fully connected
    ink = page.evaluate(
        "() => Array.from(document.getElementById('input28').getContext('2d')"
        ".getImageData(0, 0, 28, 28).data).filter((v, i) => i % 4 === 0 && v > 0).length"
    )
    assert 20 < ink < 300  # the 28x28 input shows a thin vertical digit
    page.screenshot(path=screenshots / "draw-1.png")

    page.click("#clear")
    page.wait_for_function("document.getElementById('message').textContent === 'draw a digit'")
    assert page.inner_text("#label") == ""

    angles = np.linspace(0, 2 * np.pi, 41)
    draw(page, [(0.5 + 0.22 * np.sin(a), 0.5 - 0.32 * np.cos(a)) for a in angles])  # a circle
    wait_for_label(page, "0")
    round_trip = float(page.evaluate("document.body.dataset.roundTripMs"))
    print(f"\nround trip of POST /api/predict in the browser: {round_trip:.1f} ms")
    page.screenshot(path=screenshots / "draw-0.png")

    page.click("#undo")  # undo the only stroke: blank again
    page.wait_for_function("document.getElementById('message').textContent === 'draw a digit'")

    from PIL import Image

    from dlscratch.data import load_mnist

    _, (x, t) = load_mnist(normalize=False)
    path = tmp_path / "mnist-test-0.png"
    Image.fromarray(x[0].reshape(28, 28)).save(path)
    page.set_input_files("#upload", str(path))
    wait_for_label(page, str(t[0]))
    page.screenshot(path=screenshots / "upload.png")

    page.goto(server["url"] + "docs")  # the API documentation, without a CDN
    page.wait_for_selector("text=POST /api/predict")
    assert page.locator(".endpoint").count() >= 10


def test_train_live_stop_and_see_the_run(server, page, screenshots):
    page.goto(server["url"] + "train")
    page.wait_for_function("document.getElementById('f-optimizer').options.length > 0")
    from dlscratch.optim import OPTIMIZERS

    options = page.eval_on_selector_all("#f-optimizer option", "os => os.map(o => o.value)")
    assert options == list(OPTIMIZERS)

    # a short run to the end
    page.fill("#f-hidden", "50")
    page.fill("#f-epochs", "2")
    page.fill("#f-limit", "2000")
    page.click("#start")
    page.wait_for_function(
        "document.getElementById('status').textContent === 'finished'", timeout=60000
    )
    assert int(page.get_attribute("#acc-chart", "data-points")) >= 4  # 2 epochs x train, val

    # bad options: the train command's own message in the page
    page.fill("#f-hidden", "50,x")
    page.click("#start")
    page.wait_for_function("document.getElementById('error').textContent.includes('--hidden')")

    # a one-epoch run long enough to watch: its curve gains points, then Stop
    page.fill("#f-hidden", "1000,1000")
    page.fill("#f-epochs", "1")
    page.fill("#f-limit", "30000")
    page.click("#start")
    page.wait_for_function(
        "Number(document.getElementById('loss-chart').dataset.points) >= 2", timeout=60000
    )
    first = int(page.get_attribute("#loss-chart", "data-points"))
    page.wait_for_function(
        f"Number(document.getElementById('loss-chart').dataset.points) > {first}", timeout=30000
    )
    assert page.inner_text("#status") == "running"
    page.screenshot(path=screenshots / "train.png")
    page.click("#stop")
    page.wait_for_function(
        "document.getElementById('status').textContent === 'stopped'", timeout=30000
    )
    assert "resume" in page.inner_text("#log")  # "resume with: dlscratch train --resume ..."

    page.goto(server["url"] + "runs")
    page.wait_for_selector("table.runs tbody tr")
    rows = page.eval_on_selector_all(
        "table.runs tbody tr", "rs => rs.map(r => [r.dataset.run, r.cells[2].textContent])"
    )
    statuses = sorted(status for _, status in rows)
    assert statuses == ["finished", "interrupted"], rows
    finished = next(name for name, status in rows if status == "finished")

    page.click("th[data-key=test_acc]")  # sortable
    assert "sorted" in page.get_attribute("th[data-key=test_acc]", "class")
    page.check(f"tr[data-run='{finished}'] input[type=checkbox]")
    page.click("#compare")
    page.wait_for_function("Number(document.getElementById('acc-chart').dataset.points) === 2")
    page.click(f"tr[data-run='{finished}'] a")
    page.wait_for_function(
        "[...document.querySelectorAll('#detail img')].some(i => i.complete && i.naturalWidth > 0)"
    )
    page.screenshot(path=screenshots / "runs.png", full_page=True)
