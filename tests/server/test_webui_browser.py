"""Drive the WebUI in headless Debian chromium (CDP over --remote-debugging-pipe, stdlib only)."""

from __future__ import annotations

import json
import time

import pytest

from tts_srv_helpers import debian_tool_or_skip, metric

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium_bin():
    return debian_tool_or_skip("chromium", "chromium")


@pytest.fixture
def browser(chromium_bin, tmp_path):
    from tts_srv_cdp import ChromiumPipe

    b = ChromiumPipe(chromium_bin, str(tmp_path / "profile"), log_path=str(tmp_path / "chromium.log"))
    try:
        yield b
    finally:
        b.close()


PAGE_READY = """(() => {
    const v = document.getElementById('voice');
    return document.readyState === 'complete' && v !== null && v.options.length >= 2;
})()"""


def _wait_for(browser, session, expression, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = browser.evaluate(session, expression)
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last value {last!r}")


def _click(browser, session, element_id):
    rect = browser.evaluate(session, f"""(() => {{
        const r = document.getElementById({json.dumps(element_id)}).getBoundingClientRect();
        return {{x: r.left + r.width / 2, y: r.top + r.height / 2}};
    }})()""")
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        params = {"type": kind, "x": rect["x"], "y": rect["y"], "button": "left", "clickCount": 1}
        if kind == "mouseMoved":
            params = {"type": kind, "x": rect["x"], "y": rect["y"]}
        browser.send("Input.dispatchMouseEvent", params, session)


@pytest.mark.parametrize("voice", ["joe", "espeak"])
def test_webui_type_click_and_play(primary, browser, voice):
    before = metric(primary.metrics(), "tts_http_requests_total", method="POST", path="/tts", status="200")
    session = browser.open_page(primary.base_url + "/")
    browser.send("Runtime.enable", session_id=session)
    _wait_for(browser, session, PAGE_READY, what="the page and its voice list")
    assert browser.evaluate(session, "document.getElementById('instance').textContent") == "tts-primary-test"
    browser.evaluate(session, f"document.getElementById('voice').value = {json.dumps(voice)}")
    browser.evaluate(session, "document.getElementById('text').focus()")
    text = f"Hello from the browser, this is the {voice} voice."
    browser.send("Input.insertText", {"text": text}, session)
    assert browser.evaluate(session, "document.getElementById('text').value") == text

    _click(browser, session, "speak")
    state = _wait_for(browser, session, """(() => {
        const a = document.getElementById('player');
        const ok = a.src.startsWith('blob:') && a.readyState >= 1 && isFinite(a.duration) && a.duration > 0;
        return ok ? {src: a.src, readyState: a.readyState, duration: a.duration,
                     status: document.getElementById('status').textContent,
                     error: a.error ? a.error.code : null} : null;
    })()""", timeout=60, what="the <audio> element to load the synthesized speech")
    assert state["error"] is None
    assert state["readyState"] >= 1
    assert state["duration"] > 1.0, state
    assert state["status"].startswith("Done"), state
    after = metric(primary.metrics(), "tts_http_requests_total", method="POST", path="/tts", status="200")
    assert after >= before + 1


def test_webui_shows_error_for_server_rejection(primary, browser):
    session = browser.open_page(primary.base_url + "/")
    _wait_for(browser, session, PAGE_READY, what="the page and its voice list")
    browser.evaluate(session, "document.getElementById('text').removeAttribute('maxlength')")
    browser.evaluate(session, "document.getElementById('text').value = 'x'.repeat(2500)")
    _click(browser, session, "speak")
    msg = _wait_for(browser, session, """(() => {
        const s = document.getElementById('status');
        return s.className === 'error' ? s.textContent : null;
    })()""", what="an error message")
    assert "2000" in msg
