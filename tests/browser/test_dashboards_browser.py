"""stemnb's widgets in a real chromium: JupyterLab with a live kernel, Voila, static HTML export."""

from __future__ import annotations

import pytest

from .conftest import ARTIFACTS
from .notebooks import GATES

ROWS = ".stemnb-pool-dashboard .stemnb-isolate-row"
TITLE = ".stemnb-pool-dashboard .widget-html >> nth=0"
BAR = ".stemnb-progress .progress-bar"

pytestmark = pytest.mark.timeout(300)


def assert_no_widget_errors(page):
    assert page.get_by_text("Error displaying widget").count() == 0
    assert page.get_by_text("Loading widget...").count() == 0


def assert_pool_dashboard_rendered(page):
    page.wait_for_selector(ROWS, timeout=90_000)
    page.wait_for_function(f"document.querySelectorAll('{ROWS}').length === 2", timeout=60_000)
    title = page.locator(".stemnb-pool-dashboard").first.inner_text()
    assert "IsolatePool lab" in title
    assert "completed 3" in " ".join(title.split())
    assert_no_widget_errors(page)


def click_pause_and_see_it(page):
    page.locator(".stemnb-pool-dashboard").get_by_role("button", name="pause").click()
    page.wait_for_function(
        "[...document.querySelectorAll('.stemnb-pool-dashboard .stemnb-state')]"
        ".some(e => e.textContent === 'paused')", timeout=30_000)
    page.locator(".stemnb-pool-dashboard").get_by_role("button", name="resume").wait_for(timeout=30_000)


def test_lab_pool_dashboard_renders_and_its_pause_button_pauses_the_pool(run_notebook_in_lab):
    page = run_notebook_in_lab("pool_dashboard.ipynb")
    assert_pool_dashboard_rendered(page)
    click_pause_and_see_it(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator(".stemnb-pool-dashboard").first.screenshot(path=str(ARTIFACTS / "pool_dashboard.png"))
    assert not page.console_errors, page.console_errors


def test_lab_pool_dashboard_pause_acts_while_another_cell_blocks_on_a_run(run_notebook_in_lab,
                                                                          notebook_dir):
    gate = notebook_dir / GATES / "busy"
    page = run_notebook_in_lab("pool_dashboard_busy.ipynb", wait=False)
    try:
        assert page.evaluate("window.jupyterapp.serviceManager.kernels.commsOverSubshells") == "perCommTarget"
        blocking_cell = page.locator(".jp-Notebook .jp-Cell").nth(1)
        blocking_cell.locator(".jp-OutputArea-output").get_by_text("cell blocks").wait_for(timeout=120_000)
        page.wait_for_function(f"document.querySelectorAll('{ROWS}').length === 2", timeout=90_000)
        click_pause_and_see_it(page)  # the click is handled while the cell waits on .result()
        assert "*" in blocking_cell.locator(".jp-InputArea-prompt").inner_text()
        assert "released" not in blocking_cell.inner_text()
    finally:
        gate.touch()  # releases the blocked call (also when the test failed)
    blocking_cell.locator(".jp-OutputArea-output").get_by_text("released with pool paused").wait_for(
        timeout=60_000)
    assert_no_widget_errors(page)
    assert not page.console_errors, page.console_errors


def test_lab_worker_dashboard_queue_pause_button_pauses_the_queue(run_notebook_in_lab):
    page = run_notebook_in_lab("worker_dashboard.ipynb")
    queue_row = page.locator(".stemnb-worker-dashboard .stemnb-queue-row")
    queue_row.wait_for(timeout=90_000)
    page.wait_for_function(
        "(document.querySelector('.stemnb-worker-dashboard .stemnb-events') || {}).textContent"
        "?.split('completed').length === 4", timeout=60_000)  # three completed tasks listed
    assert "default" in queue_row.inner_text()
    queue_row.get_by_role("button", name="pause").click()
    page.wait_for_function(
        "document.querySelector('.stemnb-worker-dashboard .stemnb-queue-row').textContent"
        ".includes('paused')", timeout=30_000)
    queue_row.get_by_role("button", name="resume").wait_for(timeout=30_000)
    assert_no_widget_errors(page)
    assert not page.console_errors, page.console_errors
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator(".stemnb-worker-dashboard").first.screenshot(path=str(ARTIFACTS / "worker_dashboard.png"))


def test_lab_progress_bar_advances_while_tasks_run(run_notebook_in_lab, notebook_dir):
    page = run_notebook_in_lab("progress.ipynb")
    page.wait_for_selector(BAR, state="attached", timeout=90_000)
    assert page.locator(BAR).evaluate("e => e.style.width") == "0%", page.locator(".stemnb-progress").inner_text()
    for i, width in enumerate(("25%", "50%", "75%", "100%")):
        (notebook_dir / GATES / f"gate{i}").touch()  # releases task i in its isolate
        page.wait_for_function(f"document.querySelector('{BAR}').style.width === '{width}'",
                               timeout=60_000)
    page.wait_for_function("document.querySelector('.stemnb-progress').textContent"
                           ".includes('4 / 4 done')", timeout=30_000)
    assert "progress-bar-success" in page.locator(BAR).get_attribute("class")
    assert_no_widget_errors(page)


def test_voila_pool_dashboard_renders_and_pause_works(voila_server, page):
    page.goto(voila_server.url("voila/render/pool_dashboard.ipynb"))
    assert_pool_dashboard_rendered(page)
    click_pause_and_see_it(page)


def test_static_html_export_shows_the_saved_dashboard(page, widget_js, notebook_dir, tmp_path):
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook_dir / "pool_dashboard.ipynb", as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(notebook_dir)}}).execute()
    assert "application/vnd.jupyter.widget-state+json" in nb.metadata["widgets"]
    html, _ = HTMLExporter(template_name="lab",
                           require_js_url=(widget_js / "requirejs/require.js").as_uri(),
                           widget_renderer_url=(widget_js / "html-manager/dist/embed-amd.js").as_uri(),
                           mathjax_url="").from_notebook_node(nb)
    out = tmp_path / "dashboard.html"
    out.write_text(html)
    page.goto(out.as_uri())
    page.wait_for_selector(ROWS, timeout=60_000)
    assert "IsolatePool lab" in page.locator(".stemnb-pool-dashboard").first.inner_text()
    assert_no_widget_errors(page)


def test_voila_worker_dashboard_shows_events_and_pauses_a_queue(voila_server, page):
    page.goto(voila_server.url("voila/render/worker_dashboard.ipynb"))
    queue_row = page.locator(".stemnb-worker-dashboard .stemnb-queue-row")
    queue_row.wait_for(timeout=90_000)
    page.wait_for_function(
        "(document.querySelector('.stemnb-worker-dashboard .stemnb-events') || {}).textContent"
        "?.split('completed').length === 4", timeout=60_000)
    queue_row.get_by_role("button", name="pause").click()
    page.wait_for_function(
        "document.querySelector('.stemnb-worker-dashboard .stemnb-queue-row').textContent"
        ".includes('paused')", timeout=30_000)
    assert_no_widget_errors(page)
