"""Headless Chromium through the DevTools protocol over a pipe (standard library only).

Used to print ``report.html`` to ``report.pdf`` (the same page, laid out by a browser) and, in the tests, to check
that the report renders: console errors, failed loads, images, a screenshot. Chromium is not bundled with Slicer;
when none is found, callers get ``None`` from :func:`find_chromium` and say so.

Protocol: Chromium started with ``--remote-debugging-pipe`` reads commands on fd 3 and writes replies and events on
fd 4, each a JSON object terminated by NUL.
"""
from __future__ import annotations

import base64
import html
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "msedge")
#: Flags for a quiet, offline, root-safe headless run (no network chatter on a closed machine).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--mute-audio", "--hide-scrollbars")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable: ``$RNASSESS_CHROMIUM`` or the first of CANDIDATES on PATH."""
    env = os.environ.get("RNASSESS_CHROMIUM")
    if env:
        return env if os.path.exists(env) else shutil.which(env)
    for name in CANDIDATES:
        p = shutil.which(name)
        if p:
            return p
    return None


class BrowserError(RuntimeError):
    pass


def _above(fd: int, minimum: int) -> int:
    """A close-on-exec duplicate of ``fd`` numbered ≥ ``minimum``; closes ``fd``."""
    import fcntl
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, minimum)
    os.close(fd)
    return new


class Headless:
    """One headless browser with one page. Use as a context manager."""

    def __init__(self, executable: str | None = None, *, width: int = 1280, height: int = 900,
                 timeout_s: float = 60.0):
        self.executable = executable or find_chromium()
        if not self.executable:
            raise BrowserError("no Chromium or Chrome found (install Debian's 'chromium' or set RNASSESS_CHROMIUM)")
        self.timeout_s = timeout_s
        self.width, self.height = width, height
        self.events: list[dict] = []
        self._left: list[int] = []          # where in events each open() asked to leave the page shown
        self._replies: dict[int, dict] = {}
        self._next_id = 0
        self._cond = threading.Condition()
        self._profile = tempfile.mkdtemp(prefix="rnassess-chromium-")
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()
        # Child-side ends above fd 4, so placing them on 3 and 4 cannot overwrite one with the other.
        to_r, from_w = (_above(fd, 10) for fd in (to_r, from_w))

        def wire():      # in the child, before exec: the protocol's fds 3 and 4
            os.dup2(to_r, 3)
            os.dup2(from_w, 4)

        self.proc = subprocess.Popen(
            [self.executable, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self._profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=wire, close_fds=False)
        os.close(to_r)
        os.close(from_w)
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": False}, session=True)

    # -- plumbing ------------------------------------------------------------------------------------------------
    def _drain_stderr(self):
        for line in self.proc.stderr:
            self._stderr.append(line)

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_r, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._replies[-1] = {"error": {"message": "browser closed the pipe"}}
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self._cond:
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                    self._cond.notify_all()

    def call(self, method: str, params: dict | None = None, *, session: bool = False) -> dict:
        with self._cond:
            self._next_id += 1
            mid = self._next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        with self._cond:
            while mid not in self._replies and -1 not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrowserError(f"{method}: no answer from the browser in {self.timeout_s:g} s")
                self._cond.wait(left)
            reply = self._replies.pop(mid, None) or self._replies[-1]
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def wait_event(self, method: str, since: int = 0) -> dict:
        deadline = time.monotonic() + self.timeout_s
        with self._cond:
            while True:
                for ev in self.events[since:]:
                    if ev.get("method") == method:
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or -1 in self._replies:
                    raise BrowserError(f"no {method} from the browser")
                self._cond.wait(left)

    # -- what callers use ----------------------------------------------------------------------------------------
    def open(self, path_or_url: str) -> None:
        """Load a page (file path or URL) and wait for its load event."""
        url = path_or_url if "://" in path_or_url else "file://" + os.path.abspath(path_or_url)
        since = len(self.events)
        self._left.append(since)
        res = self.call("Page.navigate", {"url": url}, session=True)
        if res.get("errorText"):
            self._left.remove(since)
            raise BrowserError(f"cannot open {url}: {res['errorText']}")
        self.wait_event("Page.loadEventFired", since)

    def evaluate(self, expression: str):
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                             "awaitPromise": True}, session=True)
        if "exceptionDetails" in res:
            raise BrowserError(f"evaluate failed: {res['exceptionDetails'].get('text')}")
        return res["result"].get("value")

    def errors(self, *, leaving: bool = False) -> list[str]:
        """Console errors, uncaught exceptions, error log entries and failed loads seen so far.

        An exception thrown by a page after :meth:`open` was asked to leave it (in a script context of that page:
        a request still in flight when its connection closed, say) is not the page's error; ``leaving=True``
        lists those too."""
        out = []
        events = list(self.events)
        created: dict[int, list[int]] = {}      # context id -> where it was created (ids of another process recur)
        for i, ev in enumerate(events):
            if ev.get("method") == "Runtime.executionContextCreated":
                created.setdefault(ev["params"]["context"]["id"], []).append(i)
        for i, ev in enumerate(events):
            m, p = ev.get("method"), ev.get("params", {})
            if m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                left = max((n for n in self._left if n <= i), default=None)
                ctx = max((n for n in created.get(d.get("executionContextId"), []) if n <= i), default=None)
                if not leaving and left is not None and ctx is not None and ctx < left:
                    continue
                what = (d.get("exception") or {}).get("description")
                where = f" ({d.get('url')}:{d.get('lineNumber')})" if d.get("url") else ""
                out.append("exception: " + str(d.get("text")) + (f" {what}" if what else "") + where)
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append("log: " + str(p["entry"].get("text")))
            elif m == "Network.loadingFailed":
                out.append("load failed: " + str(p.get("errorText")))
        return out

    def screenshot(self, path: str, full_page: bool = True) -> None:
        params = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            w, h = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": max(w, 1), "height": max(h, 1), "scale": 1}
        data = self.call("Page.captureScreenshot", params, session=True)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def element_screenshots(self, selector: str) -> list[bytes]:
        """PNG bytes of every element matching ``selector``, each clipped to its own box (in page order)."""
        boxes = self.evaluate(
            f"Array.from(document.querySelectorAll({json.dumps(selector)})).map(e => {{"
            "const r = e.getBoundingClientRect(); return [r.left + window.scrollX, r.top + window.scrollY, "
            "r.width, r.height]; })")
        out = []
        for x, y, w, h in boxes or []:
            if w < 1 or h < 1:
                continue
            data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                        "clip": {"x": x, "y": y, "width": w, "height": h,
                                                                 "scale": 1}}, session=True)["data"]
            out.append(base64.b64decode(data))
        return out

    def pdf(self, path: str) -> None:
        """Print the page to ``path``. A page with a ``<meta name="running-header">`` gets it at the top of every
        page and "Page n of N" at the foot (Chromium's header and footer templates, in the page margins)."""
        header = self.evaluate("(document.querySelector('meta[name=running-header]') || {}).content || ''")
        opts = {"printBackground": True, "preferCSSPageSize": True}
        if header:
            style = "font: 8px sans-serif; color: #444; width: 100%; margin: 0 12mm;"
            opts.update({"displayHeaderFooter": True,
                         "headerTemplate": f'<div style="{style}">{html.escape(header)}</div>',
                         "footerTemplate": f'<div style="{style} text-align: right;">Page <span class="pageNumber">'
                                           '</span> of <span class="totalPages"></span></div>'})
        data = self.call("Page.printToPDF", opts, session=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data["data"]))

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.call("Browser.close")
                except BrowserError:
                    pass
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            for fd in (self._to_w, self._from_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def print_to_pdf(html_path: str, pdf_path: str, executable: str | None = None) -> None:
    """``report.html`` → ``report.pdf`` with headless Chromium (raises BrowserError when it cannot)."""
    with Headless(executable) as b:
        b.open(html_path)
        b.pdf(pdf_path)
