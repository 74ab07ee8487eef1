"""The rich-repr renderers in stemnb._html: escaping, theme variables, text twins."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from html.parser import HTMLParser

from stemnb import _html


@dataclass(frozen=True)
class Stats:
    state: str = "running"
    size: int = 2
    starting: int = 0
    idle: int = 1
    busy: int = 1
    queued: int = 3
    submitted: int = 10
    completed: int = 6
    failed: int = 1
    cancelled: int = 0
    recycled: int = 0


@dataclass(frozen=True)
class Iso:
    pid: int
    debug_name: str | None
    state: str
    tasks_done: int = 0
    rss_bytes: int | None = None
    current_call: str | None = None
    call_started: float | None = None


class _Checker(HTMLParser):
    """Parses HTML and records tag nesting errors and the visible text."""

    VOID = {"br", "hr", "img", "input", "meta", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unbalanced </{tag}>")

    def handle_data(self, data):
        self.text.append(data)


def parse(markup: str) -> _Checker:
    checker = _Checker()
    checker.feed(markup)
    checker.close()
    assert not checker.errors and not checker.stack, (checker.errors, checker.stack)
    return checker


def test_render_pool_escapes_isolate_names_and_calls():
    isolates = [Iso(11, "<script>alert(1)</script>", "busy", 3, 50 * 2**20, "f&g", 100.0)]
    markup = _html.render_pool(Stats(), isolates, name="a<b", now=101.5)
    assert "<script>" not in markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
    text = "".join(parse(markup).text)
    assert "<script>alert(1)</script>" in text  # the browser shows the literal name
    assert "f&g (1.5 s)" in text
    assert "50.0 MiB" in text


def test_render_pool_uses_jupyterlab_css_variables_with_fallbacks():
    markup = _html.render_pool(Stats(), [Iso(1, None, "idle")])
    assert "var(--jp-ui-font-color1, black)" in markup
    assert "var(--jp-border-color2, #e0e0e0)" in markup
    assert "var(--jp-ui-font-color2, gray)" in markup  # idle is muted


def test_pool_text_lists_counters_and_one_line_per_isolate():
    isolates = [Iso(11, "w1", "busy", 2, 2048, "square", 10.0), Iso(12, None, "idle", 5)]
    text = _html.pool_text(Stats(), isolates, now=12.0)
    lines = text.splitlines()
    assert lines[0] == ("<IsolatePool state=running size=2 starting=0 idle=1 busy=1 queued=3 submitted=10 "
                        "completed=6 failed=1 cancelled=0 recycled=0>")
    assert lines[1].split() == ["name", "pid", "state", "tasks", "RSS", "current", "call"]
    assert lines[2].split() == ["w1", "11", "busy", "2", "2.0", "KiB", "square", "(2.0", "s)"]
    assert lines[3].split() == ["-", "12", "idle", "5", "-", "-"]


def test_pool_text_without_isolates_is_one_line():
    assert "\n" not in _html.pool_text(Stats(state="closed", size=0), [])


def test_render_pool_shows_empty_table_message():
    text = "".join(parse(_html.render_pool(Stats(), [])).text)
    assert "no isolates" in text


def test_enum_states_render_as_lower_case_names():
    class State(enum.Enum):
        PAUSED = "p"

    assert ">paused<" in _html.state_badge(State.PAUSED)
    assert "var(--jp-warn-color1, #f57c00)" in _html.state_badge(State.PAUSED)
    assert _html.future_text(State.PAUSED) == "<Future state=paused>"

    class StrState(str, enum.Enum):
        RUNNING = "running"

    assert _html.future_text(StrState.RUNNING) == "<Future state=running>"


def test_future_reprs_show_error_type_and_message_escaped():
    err = ValueError("bad <input>")
    markup = _html.render_future("finished", name="job", error=err)
    assert "ValueError: bad &lt;input&gt;" in markup
    parse(markup)
    assert _html.future_text("finished", name="job", error=err) == (
        "<Future 'job' state=finished error='ValueError: bad <input>'>")
    assert _html.future_text("finished", result_type="int") == "<Future state=finished result=int>"


def test_worker_reprs_show_queues_counters_and_inflight_tasks():
    kwargs = dict(queues={"default": 4, "emails": "0 (paused)"}, counters={"completed": 7},
                  inflight=[("t-1", "resize", 0.25, 1.5), ("t-2", "noop", None, None)])
    markup = _html.render_worker("w<1>", "running", **kwargs)
    text = "".join(parse(markup).text)
    assert "Worker w<1>" in text and "0 (paused)" in text and "25%" in text
    plain = _html.worker_text("w1", "running", **kwargs)
    assert plain.splitlines()[0] == "<Worker 'w1' state=running completed=7>"
    assert "emails   0 (paused)" in plain
    assert "t-2      noop    -         -" in plain


def test_format_bytes_and_duration_pick_readable_units():
    assert [_html.format_bytes(n) for n in (None, 0, 1023, 1536, 3 * 2**30)] == [
        "-", "0 B", "1023 B", "1.5 KiB", "3.0 GiB"]
    assert [_html.format_duration(s) for s in (None, 0.25, 12.46, 185, 7260)] == [
        "-", "250 ms", "12.5 s", "3m 05s", "2h 01m"]


def test_sparkline_scales_to_the_largest_value():
    assert _html.sparkline([]) == ""
    assert _html.sparkline([0, 0]) == "▁▁"
    assert _html.sparkline([0, 1, 2, 4]) == "▁▂▄█"


def test_progress_text_draws_a_bar_and_counts():
    assert _html.progress_text(3, 10, failed=1, label="run", width=10) == (
        "run: [###.......] 3 / 10 done, 1 failed")
    assert _html.progress_text(0, 0, width=4) == "[####] 0 / 0 done"
    assert "3 / 10 done" in _html.progress_html(3, 10)


def test_future_reprs_read_a_concurrent_future_without_blocking():
    import concurrent.futures

    pending = concurrent.futures.Future()
    assert _html.future_text(pending) == "<Future state=pending>"
    done = concurrent.futures.Future()
    done.set_result([1, 2])
    assert _html.future_text(done) == "<Future state=finished result=list>"
    failed = concurrent.futures.Future()
    failed.set_exception(KeyError("k"))
    assert "KeyError: &#x27;k&#x27;" in _html.render_future(failed)
    cancelled = concurrent.futures.Future()
    cancelled.cancel()
    assert ">cancelled<" in _html.render_future(cancelled)
