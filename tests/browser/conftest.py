"""Fixtures for the real-browser widget tests: Debian's chromium driven by Python playwright.

Adapted from the verified recipe in shared/reference/browser-testing/. ``playwright install`` is
never used: ``setup_browser.sh`` installs ``chromium`` with apt-get and vendors the widget JS.

  browser          session: one headless chromium
  page             per test: a fresh page; non-localhost requests are answered from the vendored
                   widget JS or aborted (fully offline); a screenshot is kept under
                   ``artifacts/browser/`` when the test fails
  notebook_dir     session: the test notebooks (built by ``notebooks.py``) in a temp folder
  jupyter_lab      session: JupyterLab on 127.0.0.1 with a token and isolated config
  run_notebook_in_lab  open a notebook in Lab, run all cells, wait until the kernel is idle
  voila_server     session: Voila serving ``notebook_dir``
  widget_js        session: the vendored html-manager and require.js
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .notebooks import write_notebooks

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ARTIFACTS = Path(os.environ.get("WIDGET_TEST_ARTIFACTS", ROOT / "artifacts" / "browser"))
WIDGET_JS = Path(os.environ.get("WIDGET_JS_DIR", HERE / ".widget-js"))
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_TIMEOUT = 90  # seconds; 2-core machines start JupyterLab slowly


def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url, proc, log_path, timeout=START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                response.read()
            return
        except Exception:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited rc={proc.returncode}:\n"
                                   f"{Path(log_path).read_text()[-4000:]}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not up after {timeout}s:\n"
                                   f"{Path(log_path).read_text()[-4000:]}") from None
            time.sleep(0.25)  # polling a server we started, with a deadline


def _stop(proc, shutdown_url=None, token=None):
    """Stop a server this session started, by its pid only (its kernels stop with it)."""
    if proc.poll() is None and shutdown_url:
        try:
            req = urllib.request.Request(shutdown_url, method="POST",
                                         headers={"Authorization": f"token {token}"})
            urllib.request.urlopen(req, timeout=10).read()
        except Exception:
            pass
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _isolated_env(root: Path) -> dict[str, str]:
    return dict(os.environ,
                JUPYTER_CONFIG_DIR=str(root / ".jupyter-config"),
                JUPYTER_RUNTIME_DIR=str(root / ".jupyter-runtime"),
                JUPYTERLAB_SETTINGS_DIR=str(root / ".lab-settings"),
                JUPYTERLAB_WORKSPACES_DIR=str(root / ".lab-workspaces"),
                JUPYTER_PLATFORM_DIRS="1",
                PYTHONWARNINGS="ignore::DeprecationWarning")


# ---------------------------------------------------------------- browser
@pytest.fixture(scope="package")  # playwright's loop must be gone before any other test runs
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM}: run tests/browser/setup_browser.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def widget_js():
    """Widget-manager JS for static HTML (the CDN is unreachable offline); vendored by setup_browser.sh."""
    want = [WIDGET_JS / "html-manager/dist/embed-amd.js", WIDGET_JS / "html-manager/dist/embed.js",
            WIDGET_JS / "requirejs/require.js"]
    if not all(f.exists() for f in want):
        subprocess.run(["bash", str(HERE / "setup_browser.sh")], check=True,
                       env=dict(os.environ, WIDGET_JS_DIR=str(WIDGET_JS)), stdout=subprocess.DEVNULL)
    return WIDGET_JS


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    rep = (yield).get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def page(browser, widget_js, request):
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})

    def offline(route):  # answer CDN requests from the vendored files, refuse everything else
        url = route.request.url
        m = re.search(r"/html-manager@[^/]*/dist/([^?#]+)", url)
        if m and (widget_js / "html-manager/dist" / m.group(1)).exists():
            return route.fulfill(path=str(widget_js / "html-manager/dist" / m.group(1)))
        if re.search(r"/require(\.min)?\.js", url):
            return route.fulfill(path=str(widget_js / "requirejs/require.js"))
        return route.abort()

    ctx.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/]|localhost[:/])"), offline)
    pg = ctx.new_page()
    pg.console_errors = []
    pg.on("console", lambda m: m.type == "error" and pg.console_errors.append(m.text))
    pg.on("pageerror", lambda e: pg.console_errors.append(f"pageerror: {e}"))
    yield pg
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        try:
            pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        except Exception:
            pass
    ctx.close()


# ---------------------------------------------------------------- servers
class Server:
    def __init__(self, base: str, token: str, root: Path) -> None:
        self.base, self.token, self.root = base, token, root

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path.lstrip('/')}{sep}token={self.token}"

    def api(self, method: str, path: str):
        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None


@pytest.fixture(scope="session")
def notebook_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("nbroot")
    write_notebooks(root)
    return root


@pytest.fixture(scope="package")
def jupyter_lab(notebook_dir, tmp_path_factory):
    state = tmp_path_factory.mktemp("labstate")
    env = _isolated_env(state)
    (state / ".jupyter-config/labconfig").mkdir(parents=True)
    (state / ".jupyter-config/labconfig/page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    # widget messages go to a kernel subshell (Lab's default, stated so a changed default shows up)
    kernels_settings = state / ".lab-settings/@jupyterlab/apputils-extension/kernels.jupyterlab-settings"
    kernels_settings.parent.mkdir(parents=True)
    kernels_settings.write_text(json.dumps({"commsOverSubshells": "perCommTarget"}))
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={notebook_dir}", "--LabApp.expose_app_in_browser=True",
           "--allow-root"]
    log = state / "lab.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=notebook_dir, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/api/status?token={token}", proc, log)
        yield Server(base, token, notebook_dir)
    finally:
        _stop(proc, f"{base}/api/shutdown", token)


KERNEL_IDLE = """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
    return !!k && k.status === 'idle'; }"""


@pytest.fixture
def run_notebook_in_lab(jupyter_lab, page):
    """Open ``name`` in JupyterLab, run all cells, wait until the kernel is idle; returns the page.

    With ``wait=False`` it returns once the run has started (for notebooks whose last cell blocks).
    """
    def run(name: str, timeout_ms: int = 120_000, wait: bool = True):
        page.goto(jupyter_lab.url(f"lab/tree/{name}?reset"))
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=timeout_ms)
        page.wait_for_function(KERNEL_IDLE, timeout=timeout_ms)
        # not awaited in the page: the command's promise settles only when every cell has run
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        if not wait:
            return page
        page.wait_for_function(f"""() => ({KERNEL_IDLE})() &&
            ![...document.querySelectorAll('.jp-InputArea-prompt')].some(p => p.textContent.includes('*'))""",
                               timeout=timeout_ms)
        return page
    yield run
    for s in jupyter_lab.api("GET", "/api/sessions"):  # stop this test's kernels
        jupyter_lab.api("DELETE", f"/api/sessions/{s['id']}")


@pytest.fixture(scope="package")
def voila_server(notebook_dir, tmp_path_factory):
    state = tmp_path_factory.mktemp("voilastate")
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "voila", str(notebook_dir), "--no-browser", "--Voila.ip=127.0.0.1",
           f"--port={port}", "--Voila.port_retries=0", f"--token={token}", "--show_tracebacks=True"]
    log = state / "voila.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=notebook_dir, env=_isolated_env(state), stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/?token={token}", proc, log)
        yield Server(base, token, notebook_dir)
    finally:
        _stop(proc)
