"""One review per browser: the front of ``rnassess review``.

A trame server holds one state (case, selection, camera) for every browser connected to it, so two readers on one
server would steer each other's views. The front listens where the user asked (host, port, token: the same guard
as the review itself) and gives each browser its own review server: on a browser's first visit it starts one
(``rnassess review --one-session``, a child process on a free port of the same host) and redirects the browser
there; the browser keeps a session cookie, so a reload or a second visit returns to its own review. This is the
launcher pattern of wslink/ParaView Web (a process per session), kept small: no configuration, loopback by default.

Life cycle: a child stops by itself ``child_idle_s`` after its browser disconnects (wslink's timeout) and when the
front stops (its standard input closes); the front stops after ``idle_timeout`` seconds with no live child and no
request (when given), or on Ctrl-C. At most ``max_sessions`` children run at once (each holds a Slicer scene): a
further browser gets a clear refusal (503), never another reader's session.
"""
from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import sys
import time

from .review_app import _guard, _host_name

SESSION_COOKIE = "rnassess_session"
#: A child stops this long after its browser disconnected (a reader who closed the tab); a reload within it
#: returns to the same review.
CHILD_IDLE_S = 600
#: Each session is a Slicer scene with the case's volumes (about 0.5-1 GB): four fit the 2-core, 24 GiB machines
#: the tests run on alongside the suite.
MAX_SESSIONS = 4
#: A child must print where it serves within this long (Slicer's start and the first case's reading).
CHILD_START_S = 180.0
_SERVING = re.compile(r"serving (\d+) case\(s\) at (http://\S+)")


class Child:
    def __init__(self, proc: asyncio.subprocess.Process, port: int, started: float):
        self.proc, self.port, self.started = proc, port, started

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None


class Sessions:
    """The front: each browser (session cookie) its own review child."""

    def __init__(self, folder: str, *, host: str, token: str | None, loopback_only: bool, n_cases: int,
                 max_sessions: int = MAX_SESSIONS, idle_timeout: int | None = None, child_idle_s: int = CHILD_IDLE_S,
                 log=print):
        if max_sessions < 1:
            raise ValueError(f"--max-sessions {max_sessions}: give at least 1")
        self.folder, self.host, self.token = os.path.abspath(folder), host, token
        self.loopback_only, self.n_cases = loopback_only, n_cases
        self.max_sessions, self.idle_timeout = max_sessions, idle_timeout
        self.child_idle_s = min(child_idle_s, idle_timeout) if idle_timeout else child_idle_s
        self.log = log
        self.children: dict[str, Child] = {}
        self._starting: dict[str, asyncio.Future] = {}
        self._last_activity = time.monotonic()
        self._stop = None

    # -- children ------------------------------------------------------------------------------------------------
    def live(self) -> dict[str, Child]:
        for sid in [s for s, c in self.children.items() if not c.alive]:
            self.log(f"[review] session {sid[:6]}… ended (port {self.children[sid].port})")
            del self.children[sid]
        return self.children

    async def _spawn(self) -> Child:
        env = dict(os.environ)
        env.pop("RNASSESS_REVIEW_TOKEN", None)
        if self.token:
            env["RNASSESS_REVIEW_TOKEN"] = self.token        # never on a command line (the process list)
        lib = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join([lib] + [p for p in [env.get("PYTHONPATH")] if p])
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "RNAssessmentLib.faces.cli", "review", self.folder, "--host", self.host,
            "--port", "0", "--one-session", "--idle-timeout", str(self.child_idle_s),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env)
        t0 = time.monotonic()
        try:
            while True:
                line = await asyncio.wait_for(proc.stdout.readline(), CHILD_START_S - (time.monotonic() - t0))
                if not line:
                    raise RuntimeError(f"the review session stopped while starting (exit code {await proc.wait()})")
                m = _SERVING.search(line.decode("utf-8", "replace"))
                if m:
                    port = int(m.group(2).split("?")[0].rstrip("/").rsplit(":", 1)[1])
                    break
        except (asyncio.TimeoutError, RuntimeError):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        asyncio.ensure_future(self._drain(proc))
        return Child(proc, port, time.time())

    @staticmethod
    async def _drain(proc):
        """Keep reading what a child prints, so its pipe never fills."""
        while await proc.stdout.readline():
            pass

    async def session_for(self, sid: str | None) -> tuple[str, Child]:
        live = self.live()
        if sid and sid in live:
            return sid, live[sid]
        if sid and sid in self._starting:
            return sid, await self._starting[sid]
        if len(live) + len(self._starting) >= self.max_sessions:
            raise SessionsFull(f"rnassess review: {len(live) + len(self._starting)} readers already have a review "
                               f"session (--max-sessions {self.max_sessions}); close one of them (a session ends "
                               f"{self.child_idle_s} s after its browser disconnects) or restart with a higher "
                               "--max-sessions")
        sid = secrets.token_urlsafe(18)
        fut = asyncio.ensure_future(self._spawn())
        self._starting[sid] = fut
        try:
            child = await fut
        finally:
            self._starting.pop(sid, None)
        self.children[sid] = child
        self.log(f"[review] session {sid[:6]}… started on port {child.port} ({len(self.children)} running)")
        return sid, child

    async def stop_children(self):
        for child in list(self.children.values()):
            if child.alive:
                child.proc.stdin.close()          # the child stops when its standard input closes
                try:
                    await asyncio.wait_for(child.proc.wait(), 10)
                except asyncio.TimeoutError:
                    child.proc.kill()
                    await child.proc.wait()
        self.children.clear()

    # -- web ------------------------------------------------------------------------------------------------------
    def app(self):
        from aiohttp import web

        @web.middleware
        async def activity(request, handler):
            self._last_activity = time.monotonic()
            return await handler(request)

        async def enter(request):
            try:
                sid, child = await self.session_for(request.cookies.get(SESSION_COOKIE))
            except SessionsFull as exc:
                return web.Response(status=503, text=str(exc), headers={"Retry-After": "60"})
            except (RuntimeError, asyncio.TimeoutError, OSError) as exc:
                self.log(f"[review] a session could not start: {exc}")
                return web.Response(status=500, text=f"rnassess review: the review session could not start "
                                                      f"({exc or 'no answer in time'}); see the server's log")
            # The child on the same host name the browser used, its own port; the token cookie (host-wide) and
            # this session cookie come along.
            resp = web.HTTPSeeOther(f"{request.scheme}://{_host_name(request.host)}:{child.port}/")
            resp.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="Strict")
            return resp

        async def sessions(_request):
            return web.json_response({"sessions": [{"port": c.port, "started": c.started}
                                                   for c in self.live().values()],
                                      "max_sessions": self.max_sessions})

        app = web.Application(middlewares=[activity, _guard(self.token, self.loopback_only)])
        app.router.add_get("/", enter)
        app.router.add_get("/index.html", enter)
        app.router.add_get("/rnassess/sessions", sessions)
        return app

    async def run(self, port: int):
        from aiohttp import web
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, port)
        await site.start()
        real = site._server.sockets[0].getsockname()[1]
        url_host = f"[{self.host}]" if ":" in self.host else self.host
        q = f"?token={self.token}" if self.token else ""
        print(f"[review] serving {self.n_cases} case(s) at http://{url_host}:{real}/{q}", flush=True)
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        try:
            while not self._stop.is_set():
                try:
                    await asyncio.wait_for(self._stop.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
                if (self.idle_timeout and not self.live() and not self._starting
                        and time.monotonic() - self._last_activity > self.idle_timeout):
                    self.log(f"[review] no session and no request for {self.idle_timeout} s: stopping")
                    break
        finally:
            await self.stop_children()
            await runner.cleanup()


class SessionsFull(Exception):
    pass


def serve_sessions(folder: str, *, host: str, port: int, token: str | None, loopback_only: bool, n_cases: int,
                   max_sessions: int = MAX_SESSIONS, idle_timeout: int | None = None, log=print) -> int:
    front = Sessions(folder, host=host, token=token, loopback_only=loopback_only, n_cases=n_cases,
                     max_sessions=max_sessions, idle_timeout=idle_timeout, log=log)
    asyncio.run(front.run(port))
    return 0
