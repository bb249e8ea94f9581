"""The headless browser the report and review tests read pages with (output/browser.py): which errors are a page's.

A review test once failed in CI with ``Uncaught (in promise)`` and nothing more, after reloading the review: the
message said neither what was rejected nor where. Errors now say where they came from, and an exception thrown by a
page after the browser was asked to leave it (a request still in flight when the next page arrives, rejected with no
value) is not counted against the page that replaces it, nor against the page as it was shown.
"""
import http.server
import threading
import time

import pytest
from conftest import need_browser
from RNAssessmentLib.output.browser import Headless

PAGE_A = (b"<html><body>A<script>setTimeout(() => { throw new Error('A while shown'); }, 0);"
          # A long poll answered only once the next page is asked for, then rejected with no value (no message).
          b"fetch('/hold').then(r => r.text()).then(() => Promise.reject(undefined));</script></body></html>")
PAGE_B = b"<html><body>B<script>setTimeout(() => { throw new Error('B while shown'); }, 0);</script></body></html>"


@pytest.fixture
def site():
    """Pages A and B on loopback; asking for B first answers A's long poll, then serves B a second later (A is
    still the page shown, already being left). The server stops with the test."""
    released = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path == "/hold":
                released.wait(30)
                body = b"bye"
            elif self.path == "/b":
                released.set()
                time.sleep(1.0)
                body = PAGE_B
            else:
                body = PAGE_A
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        released.set()
        server.shutdown()
        server.server_close()


def _settled(b, n, timeout=10.0):
    t0 = time.time()
    while len(b.errors(leaving=True)) < n and time.time() - t0 < timeout:
        time.sleep(0.1)


def test_errors_of_a_page_being_left_are_not_the_next_pages(site):
    need_browser()
    with Headless(width=800, height=600) as b:
        b.open(site + "/a")
        _settled(b, 1)
        shown = b.errors()
        assert len(shown) == 1 and "A while shown" in shown[0] and "/a" in shown[0], shown
        b.open(site + "/b")
        _settled(b, 3)
        every = b.errors(leaving=True)
        # A's rejection arrived while B was on its way: thrown by A, after it was being left.
        assert any(e.startswith("exception: Uncaught (in promise)") and "/a" in e for e in every), every
        errors = b.errors()
        assert len(errors) == 2, errors
        assert "A while shown" in errors[0] and "B while shown" in errors[1], errors
        assert not any("in promise" in e for e in errors), errors
