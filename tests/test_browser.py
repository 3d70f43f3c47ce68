"""The course in a real browser: JupyterLab + headless Chromium, driven by Playwright.

For each notebook that has an explorer, this test opens it in JupyterLab (and one of them in
Notebook 7, the classic-looking interface that ``jupyter notebook`` opens), runs every cell,
checks that no cell shows an error and no widget shows "Error displaying widget", moves a
slider and checks that the explorer's figure changed. Screenshots of failures are saved in
``tests/_artifacts/``. It needs Debian's ``chromium`` and the ``playwright`` package (no
browser download): ``.ci/run`` installs both; elsewhere the test is skipped with the reason.
"""

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from helpers.paths import NOTEBOOKS_DIR, REPO_ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip(
    "playwright.sync_api",
    reason="the real-browser test needs the playwright package (pip install playwright); .ci/run installs it")
if CHROMIUM is None:
    pytest.skip("the real-browser test needs Chromium (Debian: apt-get install chromium); .ci/run installs it",
                allow_module_level=True)

ARTIFACTS = REPO_ROOT / "tests" / "_artifacts"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
# Notebooks whose first explorer control the test moves: name -> value to type into its first
# slider (None: "2"), or "select:OPTION" to choose OPTION in its first drop-down list.
DRIVEN = {
    "00_start_here.ipynb": "3",
    "01_neurons_and_layers.ipynb": None,
    "02_learning_from_data.ipynb": None,
    "03_backpropagation.ipynb": None,
    "04_training_networks.ipynb": None,
    "05_text_to_numbers.ipynb": "256",
    "06_next_token_prediction.ipynb": "3",
    "07_attention.ipynb": "5",
    "08_the_transformer.ipynb": "8",
    "09_pretraining.ipynb": "1.5",
    "10_evaluation_and_data.ipynb": "select:model size",
    "11_fine_tuning.ipynb": "select:lora",
    "12_model_families.ipynb": "select:bidirectional (BERT)",
    "13_base_model_to_assistant.ipynb": "select:shout: So all hail, Macbeth and Banquo!",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on loopback, with a token, serving a scratch copy of the notebooks."""
    root = tmp_path_factory.mktemp("lab")
    for path in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"):
        shutil.copy(path, root)
    port, token = _free_port(), secrets.token_hex(16)
    log = open(root / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
         f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True", "--JupyterNotebookApp.expose_app_in_browser=True", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start; see {root / 'jupyterlab.log'}")
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}", token
    finally:
        proc.terminate()  # stop JupyterLab by its process id
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


ERROR_PATTERN = "/Traceback|Cell In\\[\\d+\\]|Error displaying widget/"

# Finished when no cell is running and either every code cell has run or one shows an error
# (after an error JupyterLab stops running the rest).
ALL_DONE = """() => {
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent);
  if (prompts.length === 0 || prompts.some(p => p.includes('*'))) return false;
  const failed = [...document.querySelectorAll('.jp-OutputArea-output')].some(e => %s.test(e.textContent));
  return failed || prompts.every(p => /\\[\\d+\\]/.test(p));
}""" % ERROR_PATTERN

# The notebook's own kernel, asked through the application (the same in JupyterLab and Notebook 7).
KERNEL_IDLE = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = panel && panel.sessionContext && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return Boolean(kernel) && kernel.status === 'idle';
}"""

ERRORS = """() => [...document.querySelectorAll('.jp-OutputArea-output')]
  .filter(e => %s.test(e.textContent)).map(e => e.textContent.slice(0, 300))""" % ERROR_PATTERN


def driven(parity: int) -> list[str]:
    """The notebooks of DRIVEN that exist, even-numbered (``parity`` 0) or odd-numbered (1). The
    two halves are tested by two modules (this one and ``test_browser_odd.py``), each with its
    own JupyterLab, so that the suite's two workers share them."""
    return [n for n in DRIVEN if (NOTEBOOKS_DIR / n).exists() and int(n[:2]) % 2 == parity]


@pytest.mark.parametrize("name", driven(0))
def test_notebook_runs_in_jupyterlab_and_its_explorer_responds(lab, browser, name):
    check_in_jupyterlab(lab, browser, name)


def check_in_jupyterlab(lab, browser, name, interface="lab"):
    """Open ``name`` in JupyterLab (``interface="lab"``) or Notebook 7 (``"notebook"``), run every
    cell, check for errors, move its first control."""
    url, token = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        if interface == "lab":
            # A workspace of its own (reset) so that only this notebook is open and active.
            page.goto(f"{url}/lab/workspaces/test-{name[:2]}/tree/{name}?token={token}&reset")
        else:
            page.goto(f"{url}/notebooks/{name}?token={token}")
        page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')",
                               timeout=60_000)
        page.wait_for_function(KERNEL_IDLE, timeout=90_000, polling=250)
        page.evaluate("async () => await window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
        # Fire and forget: the wait below has a timeout, an awaited command would not.
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        page.wait_for_function(ALL_DONE, timeout=180_000, polling=500)
        errors = page.evaluate(ERRORS)
        assert not errors, f"{name} shows an error in the browser: {errors}"
        assert page.locator("text=Error displaying widget").count() == 0

        value = DRIVEN[name] or "2"
        image = page.locator(".widget-output img").first
        if value.startswith("select:"):
            dropdown = page.locator(".widget-dropdown select").first
            dropdown.scroll_into_view_if_needed()
            before = image.get_attribute("src")
            dropdown.select_option(label=value.removeprefix("select:"))
        else:
            slider = page.locator(".widget-slider").first
            slider.scroll_into_view_if_needed()
            before = image.get_attribute("src")
            slider.locator(".widget-readout").click()
            page.keyboard.press("Control+A")
            page.keyboard.type(value)
            page.keyboard.press("Enter")
        page.wait_for_function("([before]) => { const img = document.querySelector('.widget-output img');"
                               " return img && img.getAttribute('src') !== before; }", arg=[before], timeout=30_000)
        assert image.get_attribute("src") != before
    except Exception:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{interface}-{name}.png"), full_page=True)
        raise
    finally:
        page.close()
