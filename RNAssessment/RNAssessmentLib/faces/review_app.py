"""The ``rnassess review`` web app: an assessed case in Slicer's own slice and 3D views (trame-slicer), read only.

The scene is built by :func:`slicer_case.review_node_steps` through the MRML bridge (the nodes the Slicer panel
adds); views are Slicer's displayable managers rendered offscreen (EGL) and streamed as images. Page state the
tests read: ``loaded``, ``iso_levels`` (level, colour, shown), ``findings``, ``case_title``; what the views show
(slice offsets and centres from the MRML slice nodes, model visibility) comes from ``GET /rnassess/state``.
Guard: a token (query ``?token=`` once, then an HttpOnly cookie) on every HTTP and websocket request when one is
set, wrong tokens locked out after a few (:data:`WRONG_TOKENS_ALLOWED`), redirects only to a path of this server; on
loopback the Host header must be a loopback name (DNS rebinding).

Needs the ``review`` extra (trame-slicer with its slicer-core). Coordinates: finding centroids are RAS (MRML).
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import secrets
import sys
import time

import numpy as np

from .. import DISCLAIMER
from ..output import palette
from .review import find_assessments, load_review_case, load_timepoint_labels

TOKEN_COOKIE = "rnassess_review"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
VIEW_PREFIX = "RNA"         # compare views RNA1..RNAn, as the Slicer panel's compare layout names them
STREAM_ENCODER = "png"      # lossless frames (see ReviewApp.__init__)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_serving(host: str, token: str | None, *, generate: bool = False) -> str | None:
    """The token to require for serving on ``host``: loopback needs none (unless given); any other address needs
    one (``generate`` makes one, else refuse with what to do)."""
    if token is not None and len(token) < 16:
        raise ValueError("--token must be at least 16 characters (or use --generate-token)")
    if token is None and generate:
        token = secrets.token_urlsafe(24)
    if token is None and not is_loopback(host):
        raise ValueError(f"--host {host} serves the case to the network: give --token (16+ characters) or "
                         "--generate-token, or keep the default --host 127.0.0.1")
    return token


def _host_name(host_header: str) -> str:
    """The name part of a Host header: 'localhost:8080' → 'localhost', '[::1]:8080' → '[::1]'."""
    if host_header.startswith("["):
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


#: After this many wrong tokens from one address, it is locked out for a while (doubling, up to LOCKOUT_MAX_S):
#: without it a local process could try about 1,800 tokens a second.
WRONG_TOKENS_ALLOWED = 5
LOCKOUT_MAX_S = 300.0


def _guard(token: str | None, loopback_only: bool):
    from aiohttp import web
    wrong: dict = {}        # remote address -> [wrong tokens so far, locked until (monotonic s)]

    @web.middleware
    async def guard(request, handler):
        try:
            host = request.headers.get("Host", "")
        except Exception:               # a malformed request: no traceback, a plain refusal
            host = ""
        if loopback_only and _host_name(host) not in LOOPBACK_NAMES:
            return web.Response(status=403 if host else 400,
                                text="rnassess review: this server answers on loopback names only"
                                if host else "rnassess review: a request needs a Host header")
        given = request.query.get("token")
        if token is not None:
            who = request.remote or "?"
            count, until = wrong.get(who, (0, 0.0))
            now = time.monotonic()
            if now < until:
                return web.Response(status=429, headers={"Retry-After": str(int(until - now) + 1)},
                                    text=f"rnassess review: too many wrong tokens; wait {int(until - now) + 1} s")
            sent = given if given is not None else request.cookies.get(TOKEN_COOKIE, "")
            if not hmac.compare_digest(sent.encode(), token.encode()):
                count += 1
                if count >= WRONG_TOKENS_ALLOWED:
                    until = now + min(LOCKOUT_MAX_S, 2.0 ** (count - WRONG_TOKENS_ALLOWED))
                wrong[who] = (count, until)
                return web.Response(status=403, text="rnassess review: wrong or missing token (open the URL the "
                                                     "server printed, with its ?token=)")
            wrong.pop(who, None)
        if token is not None and given is not None and request.method == "GET":
            # The token goes into an HttpOnly cookie and out of the address bar (and the browser's history). The
            # redirect stays on this server: a path, never '//other.host/' (a protocol-relative address).
            rest = {k: v for k, v in request.query.items() if k != "token"}
            path = "/" + request.path.lstrip("/")
            resp = web.HTTPSeeOther(str(request.rel_url.with_path(path).with_query(rest)) if rest else path)
            resp.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
            return resp
        return await handler(request)
    return guard


def token_from(args_token: str | None, token_file: str | None) -> str | None:
    """The review token from --token, --token-file or the environment variable RNASSESS_REVIEW_TOKEN (a token on
    the command line is visible to every local user in the process list; a file or the environment is not)."""
    given = [t for t in (args_token, token_file, os.environ.get("RNASSESS_REVIEW_TOKEN")) if t]
    if args_token and token_file:
        raise ValueError("give the token either with --token or with --token-file, not both")
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as f:
                text = f.read().strip()
        except OSError as exc:
            raise ValueError(f"--token-file '{token_file}': cannot be read ({exc.strerror or exc})") from None
        if not text:
            raise ValueError(f"--token-file '{token_file}' is empty: write the token (16+ characters) in it")
        return text
    return given[0] if given else None


class ReviewApp:
    """One trame server showing the assessments found under ``path`` (one at a time, with a picker)."""

    def __init__(self, path: str, *, token: str | None = None, loopback_only: bool = True, log=print):
        from trame.app import get_server
        from trame_slicer import module as trame_slicer_module
        from trame_slicer.core import SlicerApp
        from trame_slicer.rca_view import register_rca_factories
        self.log = log
        self.cases = find_assessments(path)          # NotAnAssessment before any server starts
        self.server = get_server(f"rnassess-review-{id(self)}", client_type="vue3")
        from trame_rca import module as trame_rca_module
        self.server.enable_module(trame_slicer_module)
        # Views are created when a case loads (after the server started): its streaming protocol must be set up
        # now, at start, not when the first view's widget would enable it.
        self.server.enable_module(trame_rca_module)
        self.token = token
        self.state, self.ctrl = self.server.state, self.server.controller
        self.slicer = SlicerApp()
        self.scene = self.slicer.scene
        # Lossless frames: a reading viewer must not add JPEG artefacts to MR images (nor blur the colour of a
        # one-pixel isodose line); on loopback or a LAN the larger PNG frames cost little.
        register_rca_factories(self.slicer.view_manager, self.server, rca_encoder=STREAM_ENCODER)
        from trame_slicer.core import LayoutManager
        self.layouts = LayoutManager(self.scene, self.slicer.view_manager, self.server)
        self.nodes: dict = {}
        self.annotations: dict = {}          # slice view tag -> mrml.annotations.SliceAnnotations
        self._covering: list = []            # (mask, dilated voxels) the isodose labels keep clear of
        self.ctrl.on_server_bind.add(self._bind)
        self.ctrl.on_server_ready.add(self._ready)
        self.state.update({
            "trame__title": "RNAssessment review",
            "case_names": [n for n, _ in self.cases], "case_name": self.cases[0][0],
            "progress": 0.0, "progress_text": "starting", "loaded": False, "error": "",
            "iso_levels": [], "findings": [], "lesions": [], "active_lesion": "", "timepoints": [],
            "active_finding": 0,
            "show_boundaries": True, "show_treated": True, "show_findings": True, "orientation": "Axial",
            "case_title": "", "disclaimer": DISCLAIMER, "boundaries_source": "",
        })
        self.state.change("iso_levels")(self._on_levels)
        self.state.change("show_boundaries", "show_treated", "show_findings")(self._on_toggles)
        self.state.change("orientation")(self._on_orientation)
        self.state.change("case_name")(self._on_case_name)
        self.ctrl.trigger("jump_to_finding")(self.jump_to_finding)
        self.ctrl.trigger("jump_to_lesion")(self.jump_to_lesion)
        self.ctrl.trigger("show_level")(self.show_level)
        self._loopback_only = loopback_only
        self._build_ui()
        first = load_timepoint_labels(self.cases[0][1])
        self._set_layout(len(first))
        self._loading = None
        self._loaded_name = None

    # -- server ---------------------------------------------------------------------------------------------------
    def _bind(self, wslink_server):
        from aiohttp import web
        app = wslink_server.app
        app.middlewares.append(_guard(self.token, self._loopback_only))

        async def state_json(_request):
            return web.json_response(self.server_state())

        async def session(request):
            # The page first asks a launcher where its session is; answering here (this server, same host and
            # cookie) saves a failed request and the console error it leaves.
            scheme = "wss" if request.secure else "ws"
            return web.json_response({"sessionURL": f"{scheme}://{request.host}/ws"})
        app.router.add_get("/rnassess/state", state_json)
        app.router.add_post("/paraview/", session)

    def _ready(self, **_):
        self._loading = asyncio.ensure_future(self._load(self.state.case_name))

    def server_state(self) -> dict:
        """What the views show, read from the MRML scene (slice offsets and centres) and the page state."""
        from ..mrml import bridge as mb
        tags = [f"{VIEW_PREFIX}{i + 1}" for i in range(len(self.state.timepoints or []))]
        return {"case": self._loaded_name, "loaded": bool(self.state.loaded), "error": self.state.error,
                "progress": self.state.progress, "slice_offsets": mb.slice_offsets(self.scene, tags),
                "slice_centres_ras": {t: mb.slice_centre_ras(self.scene, t) for t in tags
                                      if self.scene.GetSingletonNode(t, "vtkMRMLSliceNode") is not None},
                "slice_fov_mm": {t: mb.slice_fov_mm(self.scene, t) for t in tags
                                 if self.scene.GetSingletonNode(t, "vtkMRMLSliceNode") is not None},
                "iso_levels": self.state.iso_levels, "active_finding": self.state.active_finding,
                "active_lesion": self.state.active_lesion,
                "filled": mb.filled_by_view(self.nodes.get("findings")),
                "orientation": self.state.orientation,
                "shown": {k: mb.is_shown(n) for k, n in self.nodes.items()
                          if k in ("boundaries", "treated_lesion", "findings") and n is not None},
                "isodose_shown": {f"{lv:g}": mb.is_shown(n) for lv, n in (self.nodes.get("isodose") or {}).items()},
                "annotations": {t: a.state() for t, a in self.annotations.items()}}

    # -- loading --------------------------------------------------------------------------------------------------
    def _progress(self, fraction: float, text: str):
        with self.state:
            self.state.progress = round(100.0 * fraction, 1)
            self.state.progress_text = text

    async def _load(self, name: str):
        from .slicer_case import review_node_steps
        folder = dict(self.cases)[name]
        t0 = time.time()
        self.state.loaded = False
        self.state.error = ""
        self._progress(0.02, f"reading {name}")
        await asyncio.sleep(0)
        try:
            loop = asyncio.get_running_loop()
            rc = await loop.run_in_executor(None, lambda: load_review_case(folder, log=self.log))
        except (ValueError, OSError) as exc:          # NotAnAssessment is a ValueError
            with self.state:
                self.state.error = str(exc)
                self.state.progress_text = "could not load"
            self.log(f"[review] {name}: {exc}")
            return
        self._clear_case()
        self._set_layout(len(rc.labels))
        out: dict = {}
        for fraction, text in review_node_steps(self.scene, rc, out):
            self._progress(0.4 + 0.55 * fraction, text)
            await asyncio.sleep(0)
        self.nodes, self._loaded_name = out, name
        self._show_case(rc)
        self.log(f"[review] {name}: {len(out['nodes'])} nodes in {time.time() - t0:.1f} s")
        with self.state:
            self.state.loaded = True
            self.state.progress = 100.0
            self.state.progress_text = "ready"

    def _clear_case(self):
        from ..mrml import bridge as mb
        for ann in self.annotations.values():
            ann.remove()
        self.annotations, self._covering = {}, []
        if self.nodes:
            if self.nodes.get("findings") is not None:
                mb.remove_view_displays(self.scene, self.nodes["findings"])   # not subject-hierarchy items
            mb.remove_folder(self.scene, self.nodes["folder"])       # every node of the case is under it
        self.nodes = {}

    def _set_layout(self, n: int):
        from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition
        lid = f"compare{n}"
        if not self.layouts.has_layout(lid):
            slices = [ViewLayoutDefinition.slice_view(self.state.orientation, label=f"{VIEW_PREFIX}{i + 1}")
                      for i in range(n)]
            threed = ViewLayoutDefinition.threed_view()
            self.layouts.register_layout(lid, Layout(LayoutDirection.Vertical, [
                Layout(LayoutDirection.Horizontal, slices), Layout(LayoutDirection.Horizontal, [threed])],
                flex_sizes=["3", "1"]))      # the slice views are what is read; 3D a quarter of the height
        self.layouts.set_layout(lid)

    def _show_case(self, rc):
        from ..mrml import bridge as mb
        s = rc.findings["summary"]
        self.state.timepoints = [{"label": t["label"], "days": t.get("days_since_srs"),
                                  "tag": f"{VIEW_PREFIX}{i + 1}"} for i, t in enumerate(s["timepoints"])]
        self.state.iso_levels = [{"level": lv, "label": f"{lv:g} Gy", "colour": palette.hex_colour(c), "shown": True}
                                 for lv, c, _ in rc.isodose]
        self.state.findings = rc.finding_items()
        self.state.lesions = rc.lesion_items()
        dose = s.get("dose") or {}
        self.state.case_title = rc.case.id + (f" · {dose['prescription_gy']:g} Gy × {dose.get('fractions', 1)}"
                                              if dose.get("prescription_gy") else "")
        self.state.boundaries_source = rc.boundaries_source
        self._apply_compare()
        self._on_toggles()
        centre = None
        if rc.case.treated_lesion is not None:
            from ..io import geometry as geo
            centre = geo.ras_from_lps(geo.centroid_lps(rc.case.treated_lesion))
        for view in self._slice_views():
            view.fit_view_to_content()
        if centre is not None:
            mb.jump_slices(self.scene, centre)
        self._annotate(rc)
        self._frame_3d()

    def _annotate(self, rc):
        """Caption (timepoint, day), orientation letters, scale bar and isodose labels in each slice view."""
        from ..mrml.annotations import SliceAnnotations
        models = self.nodes.get("isodose") or {}
        isodose = [(float(lv), models[float(lv)], tuple(c)) for lv, c, _ in rc.isodose if float(lv) in models]
        captions = {t["tag"]: t["label"] + (f" · day {t['days']}" if t.get("days") is not None else "")
                    for t in self.state.timepoints}
        for view in self._slice_views():
            tag = view.get_singleton_tag()
            self.annotations[tag] = SliceAnnotations(view.get_view_node(), view.first_renderer(), captions[tag],
                                                     isodose, request_render=view.schedule_render,
                                                     covered=self._covered(rc))
            view.schedule_render()

    def _covered(self, rc):
        """Whether RAS points lie on or next to (2 voxels) a finding or the treated lesion: their fills and outlines
        are drawn over the isodose lines (translucent fills after opaque lines; the treated lesion's outline on the
        prescription line), so a label anchored there would point at a line the reader cannot see."""
        import SimpleITK as sitk

        from ..io import geometry as geo
        masks = list(rc.finding_masks.values()) + ([rc.case.treated_lesion] if rc.case.treated_lesion is not None
                                                   else [])
        if not self._covering:          # once per case, shared by the views
            self._covering = [(m, geo.array_view(sitk.BinaryDilate(sitk.Cast(m > 0, sitk.sitkUInt8), [2] * 3)) > 0)
                              for m in masks]

        def covered(ras):
            hit = np.zeros(len(ras), bool)
            for mask, arr in self._covering:
                idx = np.round(geo.lps_to_index(mask, geo.lps_from_ras(ras))).astype(int)
                ok = np.all((idx >= 0) & (idx < np.array(mask.GetSize())), axis=1)
                hit[ok] |= arr[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
            return hit
        return covered

    def _frame_3d(self):
        """3D view: no box or axis labels (they would set the framing), no depth peeling (Mesa's offscreen EGL
        drops translucent surfaces with it), camera on the isodose surfaces (else the treated lesion) from the
        front, slightly from the patient's left and above."""
        from ..mrml import bridge as mb
        box = mb.bounds_ras(list((self.nodes.get("isodose") or {}).values()))
        for view in self.slicer.view_manager.get_threed_views():
            view.renderer().SetUseDepthPeeling(False)
            vn = view.get_view_node()
            vn.SetBoxVisible(False)
            vn.SetAxisLabelsVisible(False)
            view.reset_view()
            if box is not None:
                cam = view.renderer().GetActiveCamera()
                cam.SetFocalPoint((box[0] + box[1]) / 2, (box[2] + box[3]) / 2, (box[4] + box[5]) / 2)
                cam.SetPosition((box[0] + box[1]) / 2, (box[2] + box[3]) / 2 + 500.0, (box[4] + box[5]) / 2)
                cam.SetViewUp(0.0, 0.0, 1.0)
                cam.Azimuth(30.0)
                cam.Elevation(20.0)
                view.renderer().ResetCamera(box)
                view.renderer().ResetCameraClippingRange()
            view.schedule_render()

    def _slice_views(self):
        tags = {t["tag"] for t in self.state.timepoints}
        return [v for v in self.slicer.view_manager.get_slice_views() if v.get_singleton_tag() in tags]

    def _apply_compare(self):
        from ..mrml import bridge as mb
        from .slicer_case import fill_findings_by_timepoint
        slices = mb.compare_layout(self.scene, self.nodes["volumes"], orientation=self.state.orientation,
                                   prefix=VIEW_PREFIX)
        if self.nodes.get("findings") is not None:
            fill_findings_by_timepoint(self.scene, self.nodes["findings"],
                                       [t["label"] for t in self.state.timepoints], slices)

    # -- interaction ----------------------------------------------------------------------------------------------
    def _on_levels(self, iso_levels, **_):
        from ..mrml import bridge as mb
        models = self.nodes.get("isodose") or {}
        for item in iso_levels or []:
            node = models.get(float(item["level"]))
            if node is not None and mb.is_shown(node) != bool(item["shown"]):
                mb.set_shown(node, bool(item["shown"]))

    def show_level(self, index, shown):
        """Show or hide one isodose level (index in the legend)."""
        levels = [dict(x) for x in self.state.iso_levels or []]
        if 0 <= int(index) < len(levels):
            levels[int(index)]["shown"] = bool(shown)
            self.state.iso_levels = levels

    def _on_toggles(self, **_):
        from ..mrml import bridge as mb
        for key, flag in (("boundaries", "show_boundaries"), ("treated_lesion", "show_treated"),
                          ("findings", "show_findings"), ("markers", "show_findings")):
            node = self.nodes.get(key)
            if node is not None:
                mb.set_shown(node, bool(self.state[flag]), view_3d=key != "boundaries")

    def _on_orientation(self, orientation, **_):
        if not self.nodes:
            return
        self._apply_compare()
        for view in self._slice_views():
            view.fit_view_to_content()
        if self.state.active_finding:
            self.jump_to_finding(self.state.active_finding)

    def _on_case_name(self, case_name, **_):
        if case_name and self._loaded_name and case_name != self._loaded_name:
            self._loading = asyncio.ensure_future(self._load(case_name))

    def jump_to_finding(self, number):
        """Centre every slice view on finding ``number`` (1-based, as listed)."""
        from ..mrml import bridge as mb
        items = self.state.findings or []
        number = int(number)
        if not 1 <= number <= len(items):
            return
        mb.focus_slices(self.scene, items[number - 1]["centroid_ras"], items[number - 1]["fov_mm"])
        self.state.active_finding = number

    def jump_to_lesion(self, lesion_id):
        """Centre every slice view on lesion ``lesion_id`` (L1, L2 ...) where it was last seen."""
        from ..mrml import bridge as mb
        item = next((x for x in self.state.lesions or [] if x["id"] == lesion_id), None)
        if item is None:
            return
        mb.focus_slices(self.scene, item["centroid_ras"], item["fov_mm"])
        self.state.active_lesion = lesion_id

    # -- page -----------------------------------------------------------------------------------------------------
    def _build_ui(self):
        from trame.ui.vuetify3 import VAppLayout
        from trame.widgets import html
        from trame.widgets import vuetify3 as v3
        with VAppLayout(self.server, full_height=True) as self.ui:
            self.ui.root.theme = "dark"
            with v3.VAppBar(density="compact"):
                v3.VAppBarTitle("RNAssessment review · {{ case_title }}")
                v3.VSelect(v_if="case_names.length > 1", v_model=("case_name",), items=("case_names",),
                           density="compact", hide_details=True, style="max-width: 320px", label="case",
                           classes="case-picker mr-2")
                with v3.VBtnToggle(v_model=("orientation",), density="compact", mandatory=True, classes="mr-2"):
                    for o in ("Axial", "Coronal", "Sagittal"):
                        v3.VBtn(o, value=o, size="small")
            with v3.VNavigationDrawer(permanent=True, width=360, location="left"):
                with html.Div(classes="pa-3"):
                    v3.VProgressLinear(v_if="!loaded && !error", model_value=("progress",), height=18,
                                       color="teal", classes="load-progress",
                                       children=["{{ progress_text }} {{ Math.round(progress) }} %"])
                    v3.VAlert(v_if="error", type="error", text=("error",), classes="load-error", density="compact")
                    html.Div("Timepoints (left to right): "
                             "<span v-for='t in timepoints' :key='t.tag' class='mr-2'>{{ t.label }}"
                             "<span v-if='t.days !== null'> (day {{ t.days }})</span></span>",
                             classes="text-caption mb-2")
                    html.Div("Isodose lines", classes="text-subtitle-2")
                    with html.Div(classes="iso-legend"):
                        with html.Div(v_for="(lv, i) in iso_levels", key="lv.label", classes="d-flex align-center"):
                            v3.VCheckbox(model_value=("lv.shown",), density="compact", hide_details=True,
                                         classes="iso-toggle flex-grow-0",
                                         update_modelValue="trigger('show_level', [i, $event])")
                            html.Span(style=("`display:inline-block;width:28px;height:4px;margin:0 8px;"
                                             "background:${lv.colour}`",))
                            html.Span("{{ lv.label }}", classes="iso-label")
                        html.Div("no dose in this case", v_if="loaded && !iso_levels.length", classes="text-caption")
                    html.Div("Show", classes="text-subtitle-2 mt-2")
                    v3.VCheckbox(v_model=("show_findings",), label="findings (segments and markers)",
                                 density="compact", hide_details=True)
                    v3.VCheckbox(v_model=("show_treated",), label="treated lesion (outline)", density="compact",
                                 hide_details=True)
                    v3.VCheckbox(v_model=("show_boundaries",), label=("`boundaries (${boundaries_source})`",),
                                 density="compact", hide_details=True, classes="boundaries-toggle")
                    html.Div("Lesions", classes="text-subtitle-2 mt-2", v_if="lesions.length")
                    with v3.VList(density="compact", classes="lesions-list", bg_color="transparent",
                                  v_if="lesions.length"):
                        with v3.VListItem(v_for="l in lesions", key="l.id",
                                          click="trigger('jump_to_lesion', [l.id])",
                                          active=("active_lesion === l.id",), classes="lesion-item"):
                            with html.Div(classes="d-flex align-center"):
                                html.Span(style=("`display:inline-block;width:12px;height:12px;border-radius:2px;"
                                                 "margin-right:8px;background:${l.colour}`",))
                                html.Span("{{ l.title }}", classes="text-body-2 font-weight-medium")
                            html.Div("{{ l.course }}<span v-if='l.findings'> · {{ l.findings }}</span>",
                                     classes="text-caption")
                    html.Div("Findings", classes="text-subtitle-2 mt-2")
                    html.Div("none", v_if="loaded && !findings.length", classes="text-caption")
                    with v3.VList(density="compact", classes="findings-list", bg_color="transparent"):
                        with v3.VListItem(v_for="f in findings", key="f.number",
                                          click="trigger('jump_to_finding', [f.number])",
                                          active=("active_finding === f.number",),
                                          classes="finding-item"):
                            with html.Div(classes="d-flex align-center"):
                                html.Span(style=("`display:inline-block;width:12px;height:12px;border-radius:6px;"
                                                 "margin-right:8px;background:${f.colour}`",))
                                html.Span("{{ f.title }}", classes="text-body-2 font-weight-medium")
                            html.Div("{{ f.description }}", classes="text-caption")
                            html.Div("favours {{ f.favours }}", v_if="f.favours", classes="text-caption")
                    html.Div("{{ disclaimer }}", classes="text-caption mt-4 text-medium-emphasis")
            with v3.VMain(), html.Div(style="height: calc(100vh - 48px); display: flex;", classes="review-views"):
                self.layouts.initialize_layout_grid(self.ui)

    def start(self, host: str, port: int, *, timeout: int | None = None):
        url_host = f"[{host}]" if ":" in host else host

        def announce(**_):
            real_port = self.server.port
            q = f"?token={self.token}" if self.token else ""
            print(f"[review] serving {len(self.cases)} case(s) at http://{url_host}:{real_port}/{q}", flush=True)
        self.ctrl.on_server_ready.add(announce)
        sys.argv = sys.argv[:1]          # trame would read our command line as its own options
        self.server.start(host=host, port=port, open_browser=False, show_connection_info=False,
                          disable_logging=True, timeout=timeout or 0)


def stop_with_stdin():
    """Stop this process when its standard input closes: a browser's review (``--one-session``) ends with the front
    that started it, even when that front was killed and could not stop it."""
    import threading

    def watch():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        os._exit(0)
    threading.Thread(target=watch, name="stop-with-stdin", daemon=True).start()


def serve(path: str, *, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
          generate_token: bool = False, timeout: int | None = None, log=None) -> int:
    """Check, then serve ``path`` until stopped (Ctrl-C)."""
    token = check_serving(host, token, generate=generate_token)
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    app = ReviewApp(path, token=token, loopback_only=is_loopback(host),
                    log=log or (lambda m: print(m, file=sys.stderr, flush=True)))
    app.start(host, port, timeout=timeout)
    return 0
