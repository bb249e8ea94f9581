"""``report.html``: the one page a neuroradiologist shows at the tumor board (and ``report.pdf``, the same page
printed by headless Chromium when one is installed).

Self-contained: slice images are embedded PNGs (grey values only, no burnt-in text) under SVG overlays in the
slice's pixel units (isodose lines with their level, treated lesion, finding, boundary); plots are inline SVG. Every
string that comes from an input file is HTML-escaped. No matplotlib, no Qt: it runs the same inside Slicer.

Display convention (radiological): axial and coronal slices are shown with the patient's right on the viewer's
left; axial anterior up, coronal superior up. Slices are resampled in LPS (see geometry.py).
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import itertools
import math
import os
import struct
import zlib

import numpy as np
import SimpleITK as sitk

from .. import DISCLAIMER, __version__
from ..analysis import dose as dosemod
from ..analysis.findings import BOUNDARY_NAMES, FAVOURS, KIND_TITLES, finding_segments, plural
from ..io import geometry as geo
from . import palette

_hex = palette.hex_colour

#: Highlight colours: the one palette (palette.py) every view uses.
COLOURS = {**{k: _hex(c) for k, c in palette.FINDING.items()}, "treated": _hex(palette.TREATED),
           "boundary": _hex(palette.BOUNDARY)}
FOV_MM = 70.0
PIXEL_MM = 0.35


def finding_title(f) -> str:
    """A finding's title with the lesions it concerns ("Regression — L1"): the title names what the numbers are of."""
    title = KIND_TITLES[f.kind]
    if getattr(f, "lesions", None):
        title = f"{title} — {', '.join(f.lesions)}"
    if getattr(f, "timepoints", None):
        title += f" at {', '.join(f.timepoints)}"      # one focus, one finding: every timepoint it holds at
    return title


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


# ---------------------------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------------------------

def png_bytes(grey: np.ndarray) -> bytes:
    """8-bit greyscale PNG of a (rows, cols) uint8 array (zlib only)."""
    grey = np.ascontiguousarray(grey, dtype=np.uint8)
    h, w = grey.shape
    raw = b"".join(b"\0" + grey[r].tobytes() for r in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def _path(lines) -> str:
    parts = []
    for ln in lines:
        pts = np.asarray(ln) + 0.5
        closed = len(pts) > 2 and np.allclose(pts[0], pts[-1], atol=1e-3)
        body = " L".join(f"{x:.1f} {y:.1f}" for x, y in (pts[:-1] if closed else pts))
        parts.append(f"M{body}{' Z' if closed else ''}")
    return " ".join(parts)


def _mask_layer(d: str, colour: str, *, fill: float = 0.0, dash: str | None = None, width: float = 1.6,
                label: str = "") -> str:
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    fill_attr = f'fill="{colour}" fill-opacity="{fill}" fill-rule="evenodd"' if fill else 'fill="none"'
    title = f"<title>{esc(label)}</title>" if label else ""
    return (f'<path d="{d}" {fill_attr} stroke="{colour}" stroke-width="{width}"{dash_attr} '
            f'vector-effect="non-scaling-stroke">{title}</path>')


#: Text metrics used to place labels (SVG user units = image pixels): bold 11-unit DejaVu Sans digits are 7.7 units
#: wide, a line's box 13.3 units high, 10.6 of them above the baseline (measured in Chromium; the report test
#: checks every drawn label against the box reserved for it).
LABEL_CHAR_W = 7.7
LABEL_H = 14.0
LABEL_BASELINE = 11.2
#: Margin (units) around the image reserved for the orientation markers and the scale bar: no label goes there.
MARGIN = 16.0


def _label_size(text: str) -> tuple[float, float]:
    return LABEL_CHAR_W * len(text) + 2.0, LABEL_H


class Panel:
    """One slice plane: its overlays are computed once (``layers``, shared by every timepoint) and drawn over
    each timepoint's image with that timepoint's own layers.

    The SVG is the image plus a reserved margin (:data:`MARGIN`) that holds the orientation markers and the scale
    bar. Isodose labels are placed inside the image beside their own line, where their box meets nothing already
    placed (another label), no structure or finding drawn on the plane and no other level's line (a reader takes a
    label for the line it sits on); a level whose line has no such place is named in the legend only. ``labels`` keeps every placed box (image units, margin included) for the report test."""

    def __init__(self, grid: sitk.Image):
        self.grid = grid
        self.n = grid.GetSize()[0]
        self.layers: list[str] = []
        self.labels: list[tuple[str, tuple]] = []
        self.occupied = np.zeros((self.n, self.n), bool)        # (i, j): structures and findings on the plane

    def image(self, t1: sitk.Image, window) -> str:
        plane = geo.sample_plane(t1, self.grid)
        lo, hi = window
        grey = np.clip((plane - lo) / max(hi - lo, 1e-6) * 255.0, 0, 255).astype(np.uint8)
        return base64.b64encode(png_bytes(grey.T)).decode("ascii")      # rows = j, cols = i

    def plane(self, mask_img: sitk.Image) -> np.ndarray | None:
        plane = geo.sample_plane(mask_img, self.grid)
        return plane if plane.max() >= 0.5 else None

    def contour(self, mask_img: sitk.Image) -> str | None:
        """SVG path of the mask's outline on this plane, None when the plane misses it; the mask's pixels (and 2
        pixels around them) become an obstacle for labels."""
        plane = self.plane(mask_img)
        if plane is None:
            return None
        grown = sitk.BinaryDilate(sitk.GetImageFromArray((plane >= 0.5).astype(np.uint8)), [2, 2], sitk.sitkBox)
        self.occupied |= sitk.GetArrayViewFromImage(grown) > 0
        return _path(dosemod.contour_lines_2d(plane, 0.5))

    def outline(self, mask_img: sitk.Image, colour: str, **style) -> None:
        d = self.contour(mask_img)
        if d:
            self.layers.append(f'<g transform="translate({MARGIN} {MARGIN})">{_mask_layer(d, colour, **style)}</g>')

    def _free(self, box, also=None) -> bool:
        """Whether a label box is inside the image, clear of other labels and of the obstacles (``also``: more
        obstacles, e.g. the other levels' lines)."""
        x, y, w, h = box
        if x < MARGIN + 1 or y < MARGIN + 1 or x + w > MARGIN + self.n - 1 or y + h > MARGIN + self.n - 1:
            return False
        if any(geo.boxes_overlap(box, other) for _, other in self.labels):
            return False
        i0, i1 = int(max(x - MARGIN, 0)), int(min(x + w - MARGIN + 1, self.n))
        j0, j1 = int(max(y - MARGIN, 0)), int(min(y + h - MARGIN + 1, self.n))
        return not self.occupied[i0:i1, j0:j1].any() and (also is None or not also[i0:i1, j0:j1].any())

    def _line_pixels(self, lines) -> np.ndarray:
        """The pixels (i, j) a level's lines pass through, and their neighbours."""
        px = np.zeros((self.n, self.n), bool)
        for ln in lines:
            pts = np.asarray(ln, float) + 0.5
            # Densified to half a pixel, so a segment between far vertices marks every pixel it crosses.
            seg = [np.linspace(a, b, max(2, int(np.ceil(np.abs(b - a).max() * 2)) + 1))
                   for a, b in zip(pts[:-1], pts[1:])]
            dense = np.concatenate(seg) if seg else pts
            ij = np.clip(np.floor(dense).astype(int), 0, self.n - 1)
            px[ij[:, 0], ij[:, 1]] = True
        grown = sitk.BinaryDilate(sitk.GetImageFromArray(px.astype(np.uint8)), [1, 1], sitk.sitkBox)
        return sitk.GetArrayViewFromImage(grown) > 0

    def isodose(self, dose: sitk.Image, levels) -> None:
        """Lines of every (level, colour); each labelled at the first free place next to its own line (see the
        class docstring), candidates taken around the line from its top."""
        plane = geo.sample_plane(dose, self.grid)
        lines_by_level = []
        for level_gy, colour in levels:
            lines = dosemod.contour_lines_2d(plane, level_gy)
            if lines:
                # Lines under every outline drawn before (inserted first), labels on top (appended).
                self.layers.insert(len(lines_by_level), f'<path d="{_path(lines)}" fill="none" stroke="{colour}" stroke-width="1.4" '
                                   f'vector-effect="non-scaling-stroke" transform="translate({MARGIN} {MARGIN})">'
                                   f'<title>{level_gy:g} Gy</title></path>')
                lines_by_level.append((level_gy, colour, lines))
        drawn = {level_gy: self._line_pixels(lines) for level_gy, _, lines in lines_by_level}
        for level_gy, colour, lines in lines_by_level:
            text = f"{level_gy:g} Gy"
            # Not across another level's line: a reader takes a label for the line it sits on.
            others = np.zeros((self.n, self.n), bool)
            for lv, px in drawn.items():
                if lv != level_gy:
                    others |= px
            w, h = _label_size(text)
            pts = np.concatenate([np.asarray(ln) for ln in lines]) + 0.5 + MARGIN
            found = geo.place_label(pts, (w, h), lambda box: self._free(box, others))
            placed = found[0] if found else None
            if placed is None:
                continue                     # named in the legend only
            self.labels.append((text, placed))
            bx, by, w, h = placed
            self.layers.append(f'<text x="{bx + 1:.1f}" y="{by + LABEL_BASELINE:.1f}" class="iso" fill="{colour}" '
                               f'data-box="{bx:.1f} {by:.1f} {w:.1f} {h:.1f}">{text}</text>')

    def svg(self, b64png: str, orientation: str, alt: str, own_layers=()) -> str:
        n, m = self.n, MARGIN
        size = n + 2 * m
        top, left, right = {"axial": ("A", "R", "L"), "coronal": ("S", "R", "L"), "sagittal": ("S", "A", "P")}[
            orientation]
        bar = 10.0 / PIXEL_MM
        marks = (f'<text x="{size / 2:.1f}" y="{m - 4:.1f}" class="ori" text-anchor="middle">{top}</text>'
                 f'<text x="{m / 2:.1f}" y="{size / 2 + 4:.1f}" class="ori" text-anchor="middle">{left}</text>'
                 f'<text x="{size - m / 2:.1f}" y="{size / 2 + 4:.1f}" class="ori" text-anchor="middle">{right}</text>'
                 f'<line x1="{size - m - bar:.1f}" y1="{size - m / 2:.1f}" x2="{size - m:.1f}" y2="{size - m / 2:.1f}" '
                 f'stroke="#fff" stroke-width="2" vector-effect="non-scaling-stroke"/>'
                 f'<text x="{size - m - bar - 4:.1f}" y="{size - m / 2 + 3:.1f}" class="ori small" '
                 f'text-anchor="end">10 mm</text>')
        own = "".join(own_layers)
        return (f'<svg class="slice" viewBox="0 0 {size:.0f} {size:.0f}" xmlns="http://www.w3.org/2000/svg" '
                f'xmlns:xlink="http://www.w3.org/1999/xlink" role="img" aria-label="{esc(alt)}">'
                f'<rect width="{size:.0f}" height="{size:.0f}" fill="#000"/>'
                f'<image x="{m}" y="{m}" width="{n}" height="{n}" preserveAspectRatio="none" '
                f'href="data:image/png;base64,{b64png}"/>'
                f'{"".join(self.layers)}<g transform="translate({m} {m})">{own}</g>{marks}</svg>')


def _window(t1: sitk.Image, center_lps) -> tuple[float, float]:
    """Display window from the percentiles of a 60 mm cube around the finding (robust to hot vessels)."""
    idx = np.round(geo.lps_to_index(t1, np.asarray(center_lps, float)[None])[0]).astype(int)
    half = np.maximum((30.0 / np.array(t1.GetSpacing())).astype(int), 2)
    lo = np.clip(idx - half, 0, np.array(t1.GetSize()) - 1)
    hi = np.clip(idx + half + 1, 1, np.array(t1.GetSize()))
    arr = geo.array_view(t1)[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    arr = arr[arr > 0] if (arr > 0).any() else arr.ravel()
    if arr.size == 0:
        return 0.0, 1.0
    return float(np.percentile(arr, 1.0)), float(np.percentile(arr, 99.7))


# ---------------------------------------------------------------------------------------------------------------
# Plots (inline SVG)
# ---------------------------------------------------------------------------------------------------------------

def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    ticks = [math.floor(lo / step) * step]
    while ticks[-1] < hi - 1e-9 * step:          # the last tick is at or beyond hi: the data fit the axes
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def line_plot(series, *, xlabel: str, ylabel: str, y2label: str | None = None, vlines=(), width=620, height=300,
              ylim0: bool = True, title: str = "") -> str:
    """series: [{"name", "x": [...], "y": [...], "colour", "dash"?, "axis": 1|2, "markers": bool}]."""
    ml, mr, mb = 62, (62 if y2label else 18), 46
    # The legend above the plot, wrapped onto as many rows as it needs (never past the figure's right edge).
    legend, lx, row = [], ml, 0
    for s in series:
        w = (34 if s.get("dash") else 26) + 8 * len(str(s["name"]))
        if lx > ml and lx + w > width:
            lx, row = ml, row + 1
        legend.append((lx, 16 + 18 * row))
        lx += w
    mt = 26 + 18 * row
    pw, ph = width - ml - mr, height - mt - mb
    xs = [x for s in series for x in s["x"]] + [v for v, _ in vlines]
    xt = nice_ticks(min(xs), max(xs)) if xs else [0, 1]
    x0, x1 = xt[0], xt[-1] if xt[-1] > xt[0] else xt[0] + 1

    def yaxis(axis):
        ys = [y for s in series if s.get("axis", 1) == axis for y in s["y"] if y is not None]
        if not ys:
            return None
        lo = 0.0 if ylim0 else min(ys)
        t = nice_ticks(lo, max(ys) if max(ys) > lo else lo + 1)
        return t
    yt = {1: yaxis(1), 2: yaxis(2)}

    def X(x):
        return ml + (x - x0) / (x1 - x0) * pw

    def Y(y, axis=1):
        t = yt[axis]
        return mt + ph - (y - t[0]) / ((t[-1] - t[0]) or 1) * ph
    out = [f'<svg class="plot" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{esc(title)}">',
           f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="#fff" stroke="#888"/>']
    for t in xt:
        out.append(f'<line x1="{X(t):.1f}" y1="{mt}" x2="{X(t):.1f}" y2="{mt + ph}" stroke="#e3e3e3"/>'
                   f'<text x="{X(t):.1f}" y="{mt + ph + 18}" text-anchor="middle">{t:g}</text>')
    for axis, xpos, anchor in ((1, ml - 6, "end"), (2, ml + pw + 6, "start")):
        for t in yt[axis] or []:
            if axis == 1:
                out.append(f'<line x1="{ml}" y1="{Y(t):.1f}" x2="{ml + pw}" y2="{Y(t):.1f}" stroke="#e3e3e3"/>')
            out.append(f'<text x="{xpos}" y="{Y(t, axis) + 5:.1f}" text-anchor="{anchor}">{t:g}</text>')
    out.append(f'<text x="{ml + pw / 2}" y="{height - 8}" text-anchor="middle">{esc(xlabel)}</text>')
    out.append(f'<text transform="translate(16 {mt + ph / 2}) rotate(-90)" text-anchor="middle">{esc(ylabel)}</text>')
    if y2label:
        out.append(f'<text transform="translate({width - 12} {mt + ph / 2}) rotate(90)" '
                   f'text-anchor="middle">{esc(y2label)}</text>')
    for v, label in vlines:
        out.append(f'<line x1="{X(v):.1f}" y1="{mt}" x2="{X(v):.1f}" y2="{mt + ph}" stroke="#c00" '
                   f'stroke-dasharray="6 4" stroke-width="2"/><text x="{X(v) + 4:.1f}" y="{mt + 14}" '
                   f'fill="#c00">{esc(label)}</text>')
    for s, (lx, legend_y) in zip(series, legend):
        axis = s.get("axis", 1)
        if yt[axis] is None:
            continue
        pts = [(X(x), Y(y, axis)) for x, y in zip(s["x"], s["y"]) if y is not None]
        dash = f' stroke-dasharray="{s["dash"]}"' if s.get("dash") else ""
        tag = f' data-lesion="{esc(s["lesion"])}"' if s.get("lesion") else ""
        if len(pts) > 1:
            # A dark casing under every line: light palette colours (white, lavender) stay visible on white.
            coords = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
            out.append(f'<polyline points="{coords}" fill="none" stroke="#333" stroke-width="4.5"{dash}/>'
                       f'<polyline points="{coords}" fill="none" stroke="{s["colour"]}" stroke-width="2.5"'
                       f'{dash}{tag}/>')
        if s.get("markers", True):
            out += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="4" fill="{s["colour"]}"{tag}/>' for a, b in pts]
        if s.get("dash"):
            # a dashed line's swatch is a short stretch of that line, not a solid block
            out.append(f'<line x1="{lx}" y1="{legend_y - 8}" x2="{lx + 22}" y2="{legend_y - 8}" stroke="#333" '
                       f'stroke-width="4.5"{dash}/><line x1="{lx}" y1="{legend_y - 8}" x2="{lx + 22}" '
                       f'y2="{legend_y - 8}" stroke="{s["colour"]}" stroke-width="2.5"{dash}/>'
                       f'<text x="{lx + 26}" y="{legend_y - 4}">{esc(s["name"])}</text>')
        else:
            out.append(f'<rect x="{lx}" y="{legend_y - 11}" width="14" height="6" fill="{s["colour"]}" '
                       f'stroke="#333"/><text x="{lx + 18}" y="{legend_y - 4}">{esc(s["name"])}</text>')
    out.append("</svg>")
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------------------------

CSS = """
:root { --fg:#111; --muted:#555; --rn:#0b6e2e; --pd:#a11; }
body { font-family: "DejaVu Sans", Arial, Helvetica, sans-serif; font-size: 17px; color: var(--fg); margin: 24px;
       max-width: 1180px; line-height: 1.35; }
h1 { font-size: 28px; margin: 0 0 6px 0; } h2 { font-size: 22px; border-bottom: 2px solid #333; margin-top: 28px; }
h3 { font-size: 19px; margin: 16px 0 6px 0; }
table { border-collapse: collapse; margin: 6px 0; } td, th { border: 1px solid #bbb; padding: 3px 8px; text-align: left; }
th { background: #eee; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.disclaimer { border: 2px solid #333; background: #fff8d6; padding: 8px 12px; font-weight: bold; }
.rn h3 { color: var(--rn); } .pd h3 { color: var(--pd); }
ul.findings li { margin: 4px 0; } .tag { font-size: 14px; color: var(--muted); }
svg.slice { display: block; width: 100%; height: auto; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
svg.slice text { font: 11px "DejaVu Sans", Arial, sans-serif; paint-order: stroke; stroke: #000; stroke-width: 2.5px; }
svg.slice text.ori { fill: #fff; font-weight: bold; } svg.slice text.small { font-size: 8px; }
svg.slice text.iso { font-weight: bold; }
.panel-row { display: grid; gap: 6px; margin-bottom: 4px; }
figure.panel { margin: 0; min-width: 0; }
figure.panel figcaption { font-size: 14px; text-align: center; }
.finding-images { break-inside: avoid; page-break-inside: avoid; margin-bottom: 14px; }
.legend span.sw { display: inline-block; width: 14px; height: 14px; margin: 0 4px -2px 10px; border: 1px solid #333; }
svg.plot text { font: 13px "DejaVu Sans", Arial, sans-serif; fill: #222; }
footer { margin-top: 30px; font-size: 13px; color: var(--muted); }
.legend span.entry { white-space: nowrap; display: inline-block; }
.legend span.sw.dashed { background: transparent; border: 2px dashed; width: 12px; height: 12px; }
@page { size: A4; margin: 14mm 12mm; }
@media print { body { margin: 0; font-size: 12px; max-width: none; } h2 { margin-top: 14px; }
  h2, h3, h4 { break-after: avoid; page-break-after: avoid; }
  table, tr, li { break-inside: avoid; page-break-inside: avoid; }
  section > p.tag:first-of-type { break-after: avoid; }
  figure.panel figcaption { font-size: 10px; } .finding-images p { margin: 2px 0; }
  .finding-images h3 { margin: 4px 0 2px 0; } .finding-images { margin-bottom: 6px; }
  .legend { font-size: 11px; } .panel-row { gap: 4px; margin-bottom: 2px; } }
"""


def _fmt(v, nd=1, unit=""):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.{nd}f}{unit}"


def _running_header(case, summary, deid: bool) -> str:
    """What every printed page carries at its top: the case, the patient's id (or that it was de-identified) and
    the SRS (date, or the dose alone when dates were removed)."""
    d = summary.get("dose") or {}
    who = "de-identified" if deid else (f"patient ID {case.patient['PatientID']}" if case.patient.get("PatientID")
                                       else "no patient ID")
    srs = ""
    if d:
        date = d.get("srs_date") if not deid else None
        srs = f" · SRS {date + ', ' if date else ''}{d.get('prescription_gy', 0):g} Gy"
    return f"RNAssessment report · {case.id} · {who}{srs}"


def _header(case, summary, deid: bool) -> str:
    rows = []
    if not deid:
        p = case.patient
        if p.get("PatientName"):
            rows.append(("Patient", p["PatientName"].replace("^", " ").strip()))
        if p.get("PatientID"):
            rows.append(("Patient ID", p["PatientID"]))
        if p.get("PatientBirthDate"):
            rows.append(("Birth date", p["PatientBirthDate"]))
    else:
        rows.append(("De-identified", "names, IDs, birth date and dates removed; days are relative to SRS"))
    d = summary.get("dose") or {}
    if d:
        srs = d.get("srs_date") if not deid else None
        rows.append(("SRS", f"{srs + ', ' if srs else ''}{d.get('prescription_gy', 0):g} Gy in "
                            f"{plural(d.get('fractions', 1), 'fraction')}; dose max {d.get('max_gy', 0):.1f} Gy"))
    tl = summary.get("treated_lesion") or {}
    if tl:
        dd = tl.get("dose") or {}
        rows.append(("Treated lesion", f"{tl.get('volume_mm3', 0) / 1000:.2f} cm³"
                     + (f"; mean {dd.get('mean_gy', 0):.1f} Gy, D95 {dd.get('d95_gy', 0):.1f} Gy" if dd else "")
                     + (f"; brain outside target V10 {tl.get('v10_outside_target_cc', 0):.1f} cm³, "
                        f"V12 {tl.get('v12_outside_target_cc', 0):.1f} cm³" if 'v10_outside_target_cc' in tl else "")))
        c = tl.get("normal_brain_constraint")
        if c and "volume_cc" in c:
            rows.append(("Normal-brain constraint",
                         f"{c['metric']} (brain outside the target receiving ≥ {c['level_gy']:g} Gy) "
                         f"{c['volume_cc']:.1f} cm³; {'within' if c['within_limit'] else 'above'} the "
                         f"{c['limit_cc']:g} cm³ limit for {plural(c['fractions'], 'fraction')}. "
                         f"Source: {c['source']}"))
        elif c:
            rows.append(("Normal-brain constraint", f"{c['note']} ({c['source']})"))
    tps = []
    for t in summary.get("timepoints", []):
        day = t.get("days_since_srs")
        when = f"day {day}" if day is not None else "day unknown"
        if t.get("date") and not deid:
            when = f"{t['date']} ({when})"
        tps.append(f"{t['label']}: {when}")
    rows.append(("Timepoints", "; ".join(tps)))
    meta = case.metadata
    if meta.get("title"):
        rows.append(("Case", meta["title"] + (" (synthetic teaching case)" if meta.get("synthetic") else "")))
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return (f"<header><h1>Post-SRS enhancement review — {esc(case.id)}</h1><table>{body}</table></header>"
            f'<p class="disclaimer">{esc(DISCLAIMER)}</p>')


def _finding_list(findings, n_timepoints: int = 2) -> str:
    groups = [("rn", "Features that favour radiation necrosis", "RN"),
              ("pd", "Features that raise concern for progressive disease", "PD"),
              ("neutral", "Other measurements (no direction on their own)", "neutral")]
    out = ['<section id="findings"><h2>Findings</h2>']
    if n_timepoints < 2:
        # Not "none found": with no follow-up there was nothing to look for.
        out.append('<p class="one-timepoint">One timepoint only: with no follow-up to compare, neither new '
                   "enhancement nor a change in shape can be assessed.</p></section>")
        return "".join(out)
    for cls, title, fav in groups:
        items = [(n, f) for n, f in enumerate(findings, 1) if FAVOURS[f.kind] == fav]
        out.append(f'<div class="{cls}"><h3>{esc(title)}</h3>')
        if not items:
            out.append("<p>None found.</p></div>")
            continue
        out.append('<ul class="findings">')
        for n, f in items:
            out.append(f'<li id="finding-{n}"><b>F{n}</b> <span class="tag">[{esc(finding_title(f))}]</span> '
                       f'{esc(f.description or f.kind)} <a href="#images-{n}">images</a></li>')
        out.append("</ul></div>")
    out.append("</section>")
    return "".join(out)


def _legend(entries) -> str:
    """Each entry whole on its line (swatch and words never split): (text, colour) a filled swatch; (text, colour,
    "dashed") a dashed outline, as the line it names."""
    def swatch(e):
        if len(e) > 2 and e[2] == "dashed":
            return f'<span class="sw dashed" style="border-color:{e[1]}"></span>'
        return f'<span class="sw" style="background:{e[1]}"></span>'
    return '<div class="legend">' + "".join(
        f'<span class="entry">{swatch(e)}{esc(e[0])}</span>' for e in entries) + "</div>"


def _finding_images(n, f, ctx) -> str:
    labels = list(ctx["t1"])
    centre = geo.lps_from_ras(np.asarray(f.centroid_ras, float)[None])[0]
    highlight = []         # (segment name, colour, timepoint where it is filled, legend text)
    if f.at:
        # a focus seen at several timepoints: each one's voxels, filled on its own scan
        for t in f.timepoints or []:
            seg = (f.at.get(t) or {}).get("segment")
            if seg and seg in ctx["masks"]:
                highlight.append((seg, COLOURS[f.kind], t, f"{KIND_TITLES[f.kind]} at {t}"))
    elif f.segment and f.segment in ctx["masks"]:
        highlight.append((f.segment, COLOURS[f.kind], f.timepoint, KIND_TITLES[f.kind]))
    if f.kind in ("mixed_response", "concentric_growth", "eccentric_growth", "regression"):
        for kind in ("grew", "regressed"):
            key = f"{f.from_}-{f.to} {kind}"
            if key in ctx["masks"]:
                highlight.append((key, COLOURS[kind], f.to, f"{kind} {f.from_}→{f.to}"))
    bnd = ctx["boundaries"].get(f.boundary) if f.boundary else None
    rows = []
    legend = [("treated lesion at SRS", COLOURS["treated"], "dashed")] + [(t, c) for _, c, _, t in highlight]
    if bnd is not None:
        legend.append((BOUNDARY_NAMES.get(f.boundary, f.boundary), COLOURS["boundary"]))
    legend += [(f"{lv:g} Gy", c) for lv, c in ctx["levels"]]
    for orientation in ("axial", "coronal"):
        p = Panel(geo.slice_grid(centre, orientation))
        if bnd is not None:
            p.outline(bnd, COLOURS["boundary"], width=1.4, label="boundary")
        p.outline(ctx["treated"], COLOURS["treated"], dash="4 3", width=1.6, label="treated lesion")
        outlines = [(p.contour(ctx["mask_img"](key)), colour, when, text) for key, colour, when, text in highlight]
        if ctx["dose"] is not None:
            p.isodose(ctx["dose"], ctx["levels"])
        cells = []
        for label in labels:
            own = [_mask_layer(d, colour, fill=0.35, width=2.0, label=text) if when == label else
                   _mask_layer(d, colour, dash="2 3", width=1.0, label=text + " (other timepoint)")
                   for d, colour, when, text in outlines if d]
            day = ctx["days"].get(label)
            cap = f"{label} · {'day ' + str(day) if day is not None else ''} · {orientation}"
            b64 = p.image(ctx["t1"][label], ctx["window"](label, centre))
            # The finding's own scan (its timepoint, or a change's later one) is marked: the cohort page's
            # thumbnail is that panel, never a scan the finding predates.
            mark = ' data-own="1"' if label == (f.timepoint or f.to) else ""
            cells.append(f'<figure class="panel"{mark}>{p.svg(b64, orientation, f"F{n} {cap}", own)}'
                         f'<figcaption>{esc(cap)}</figcaption></figure>')
        rows.append(f'<div class="panel-row" style="grid-template-columns: repeat({len(labels)}, 1fr)">'
                    + "".join(cells) + "</div>")
    return (f'<div class="finding-images" id="images-{n}"><h3>F{n}: {esc(finding_title(f))}</h3>'
            f'<p>{esc(f.description or "")}</p>{_legend(legend)}{"".join(rows)}</div>')


def _lesion_colours(lesions) -> dict:
    """Lesion id → chart colour (palette.lesion_colours, as the review shows them)."""
    return {k: palette.hex_colour(c) for k, c in palette.lesion_colours([(x.id, x.treated) for x in lesions]).items()}


def _lesion_table(lesions, summary) -> str:
    """One row per lesion (lesions.py): its role, when first seen, and at each timepoint its volume and longest
    axial diameter; its dose where it was last seen; the findings that name it. Above the findings: a reader goes
    lesion by lesion."""
    if not lesions:
        return ""
    labels = [r["timepoint"] for r in summary.get("time_course") or []] or \
        list(dict.fromkeys(t for les in lesions for t in les.at))
    days = {t["label"]: t.get("days_since_srs") for t in summary.get("timepoints", [])}
    head = "".join(f"<th>{esc(t)}{'' if days.get(t) is None else f' (day {days[t]})'}<br>cm³ · mm</th>"
                   for t in labels)
    rows = []
    for les in lesions:
        cells = []
        for t in labels:
            a = les.at.get(t)
            if a is None:
                cells.append('<td class=num>—</td>')
            else:
                cells.append(f'<td class=num data-lesion="{esc(les.id)}" data-timepoint="{esc(t)}" '
                             f'data-volume-mm3="{a.volume_mm3:.3f}" data-longest-mm="{a.longest_mm:.2f}">'
                             f'{a.volume_mm3 / 1000:.2f} · {a.longest_mm:.1f}</td>')
        last = next((a for a in reversed(list(les.at.values())) if a.present and a.dose), None)
        dose = "—" if last is None else (f"mean {last.dose['mean_gy']:.1f}, max {last.dose['max_gy']:.1f} Gy"
                                        + (f"; inside {last.dose['enclosing_isodose_gy']:g} Gy"
                                           if last.dose.get("enclosing_isodose_gy") is not None else "")
                                        + f" ({esc(last.timepoint)})")
        findings = ", ".join(f'<a href="#images-{f[1:]}">{esc(f)}</a>' for f in les.findings) or "—"
        events = f"<br><span class=tag>{esc('; '.join(les.events))}</span>" if les.events else ""
        where = f"<br>{esc(les.location)} ({esc(les.compartment)})" if les.location else ""
        first = les.at.get(les.first_seen)
        if first is not None and first.pattern:
            where += f"<br>{esc(first.pattern)} enhancement when first seen"
        rows.append(f'<tr data-lesion="{esc(les.id)}"><th>{esc(les.id)}</th><td>{esc(les.role)}{where}{events}</td>'
                    f"<td>{esc(les.first_seen)}</td>{''.join(cells)}<td>{dose}</td><td>{findings}</td></tr>")
    return ('<section id="lesions"><h2>Lesions</h2><table class="lesions"><tr><th>lesion</th><th>what</th>'
            f"<th>first seen</th>{head}<th>dose</th><th>findings</th></tr>" + "".join(rows) +
            "</table><p class=tag>Each enhancing component at every timepoint, registered to the SRS image, is "
            "assigned to a lesion: the treated lesion (L1) and each focus that appeared later, followed by overlap. "
            "Volume in cm³ and longest axial diameter in mm (a dash: before the lesion was first seen; 0: gone). "
            "Dose: highest isodose enclosing 98 % of the lesion.</p></section>")


def rano_pd_with_rn_signs(course, findings) -> str:
    """The sentence a tumour board needs when RANO-BM reads PD and findings favour RN, else ''."""
    pd = [r for r in course if r.get("rano_bm") == "PD"]
    rn = [f"F{n}" for n, f in enumerate(findings, 1) if FAVOURS.get(f.kind) == "RN"]
    if not pd or not rn:
        return ""
    when = ", ".join(r["timepoint"] for r in pd)
    return (f"RANO-BM reads PD at {when}, and {', '.join(rn)} favour{'s' if len(rn) == 1 else ''} radiation "
            "necrosis: RANO-BM measures size and cannot tell RN from PD; this is the case the features above are "
            "for.")


def _time_course(summary, lesions=(), findings=()) -> str:
    course = summary.get("time_course") or []
    if not course:
        return ""
    note = rano_pd_with_rn_signs(course, findings)
    days = [r.get("days_since_srs") for r in course]
    use_days = all(d is not None for d in days)
    xs = days if use_days else list(range(len(course)))
    at = {r["timepoint"]: x for r, x in zip(course, xs)}
    colours = _lesion_colours(lesions)
    series = [{"name": f"{les.id} {les.role} (cm³)", "x": [at[t] for t in les.at if t in at],
               "y": [les.at[t].volume_mm3 / 1000.0 for t in les.at if t in at], "colour": colours[les.id],
               "axis": 1, "lesion": les.id} for les in lesions]
    series.append({"name": "all enhancing (cm³)" if lesions else "lesion volume (cm³)", "x": xs,
                   "y": [r["volume_mm3"] / 1000.0 for r in course],
                   "colour": palette.hex_colour(palette.TOTAL_LINE) if lesions else "#1f4fbf", "axis": 1,
                   "dash": "3 3" if lesions else None})
    series.append({"name": "Σ target diameters (mm)", "x": xs, "y": [r["sum_longest_diameter_mm"] for r in course],
                   "colour": "#c05a00", "dash": "7 4", "axis": 2})
    plot = line_plot(series, xlabel="days since SRS" if use_days else "timepoint (no dates given)",
                     ylabel="volume (cm³)", y2label="diameter (mm)",
                     vlines=[(0, "SRS")] if use_days else [], title="lesion volume over time")
    rows = "".join(
        f"<tr><td>{esc(r['timepoint'])}</td><td class=num>{esc(r.get('days_since_srs'))}</td>"
        f"<td class=num>{r['volume_mm3'] / 1000:.2f}</td><td class=num>{r['sum_longest_diameter_mm']:.1f}</td>"
        f"<td class=num>{r['sum_perpendicular_mm']:.1f}</td>"
        f"<td class=num>{_fmt(r.get('change_from_baseline_pct'), 0, ' %')}</td>"
        f"<td class=num>{_fmt(r.get('change_from_nadir_pct'), 0, ' %')}</td><td>{esc(r.get('rano_bm'))}</td>"
        f"<td>{esc(r.get('rano_bm_reason') or '')}</td></tr>"
        for r in course)
    return ('<section id="time-course"><h2>Lesion over time</h2>' +
            (f'<p class="rano-note"><b>{esc(note)}</b></p>' if note else "") + plot +
            "<table><tr><th>timepoint</th><th>day</th><th>volume cm³</th><th>Σ target longest axial mm</th>"
            "<th>Σ perpendicular mm</th><th>vs baseline</th><th>vs nadir</th><th>RANO-BM</th><th>because</th></tr>"
            + rows +
            "</table><p class=tag>RANO-BM (Lin et al. 2015), imaging criteria only: targets are the measurable "
            "lesions at SRS (≥ 10 mm longest axial diameter, ≥ 5 mm perpendicular, on two or more slices), up to "
            "five; PD: the targets' sum ≥ 20 % above the nadir with one target ≥ 5 mm larger, a new lesion, or a "
            "non-target lesion grown to be measurable; PR: ≥ 30 % below baseline with no new lesion. RANO-BM "
            "cannot tell RN from PD: a RANO-BM PD with the features above that favour RN is the case this "
            "tool is for.</p></section>")


#: DVH lines of regions that are neither the treated lesion nor a finding (a follow-up's lesion): greys and browns,
#: apart from the palette's structure and finding colours.
OTHER_REGION_COLOURS = ("#555555", "#8c6d31", "#999999", "#bd9e39")


#: Dash patterns of DVH curves that share a colour, in turn (solid first).
DVH_DASHES = ("", "8 4", "2 3", "10 3 2 3", "4 4")


def _dose_section(summary, stats, colours=None) -> str:
    """``colours``: region name → colour (the treated lesion and each finding in its own palette colour)."""
    out = ['<section id="dose"><h2>Dose</h2>']
    if stats:
        colours = colours or {}
        series = []
        others = itertools.cycle(OTHER_REGION_COLOURS)
        used: dict = {}
        for st in stats:
            vol = st.dvh_volume_cc
            colour = colours.get(st.name) or next(others)
            # Two findings of one kind share its colour: each later one gets its own dash, so every curve is
            # told apart and named in the legend.
            k = used[colour] = used.get(colour, -1) + 1
            series.append({"name": st.name, "x": list(st.dvh_dose_gy), "colour": colour,
                           "y": list(100.0 * vol / vol[0]) if vol[0] > 0 else [0.0] * len(vol),
                           "markers": False, "dash": DVH_DASHES[k % len(DVH_DASHES)]})
        out.append(line_plot(series, xlabel="dose (Gy)", ylabel="volume (%)", title="cumulative DVH",
                             height=320))
        out.append("<table><tr><th>region</th><th>cm³</th><th>min Gy</th><th>mean Gy</th><th>max Gy</th>"
                   "<th>D95 Gy</th><th>D2 Gy</th><th>V12 cm³</th></tr>" + "".join(
                       f"<tr><td>{esc(s.name)}</td><td class=num>{s.volume_cc:.2f}</td>"
                       f"<td class=num>{s.min_gy:.1f}</td><td class=num>{s.mean_gy:.1f}</td>"
                       f"<td class=num>{s.max_gy:.1f}</td><td class=num>{s.dx_gy.get(95.0, float('nan')):.1f}</td>"
                       f"<td class=num>{s.dx_gy.get(2.0, float('nan')):.1f}</td>"
                       f"<td class=num>{s.vx_cc.get(12.0, float('nan')):.2f}</td></tr>" for s in stats) + "</table>")
    iso = summary.get("isodose") or []
    if iso:
        out.append("<h3>Isodose volumes</h3><table><tr><th>level</th><th>% of prescription</th><th>cm³</th></tr>"
                   + "".join(f"<tr><td>{i['level_gy']:g} Gy</td><td class=num>"
                             f"{_fmt(i.get('percent_of_prescription'), 0, ' %')}</td>"
                             f"<td class=num>{i['volume_cc']:.2f}</td></tr>" for i in iso) + "</table>")
    out.append("</section>")
    return "".join(out) if len(out) > 2 else ""


def _methods(summary, warnings) -> str:
    out = ['<section id="methods"><h2>How this was measured</h2><ul>']
    for k, v in (summary.get("boundaries") or {}).items():
        out.append(f"<li>Boundary <b>{esc(BOUNDARY_NAMES.get(k, k))}</b>: {esc(v)}</li>")
    for label, r in (summary.get("registration") or {}).items():
        out.append(f"<li>Registration of {esc(label)} to the SRS image: {esc(r.get('method', 'rigid'))}; "
                   f"rotation {esc(_fmt(r.get('rotation_deg'), 1))}°, translation "
                   f"{esc(_fmt(float(np.linalg.norm(r['translation_mm'])) if r.get('translation_mm') else None, 1))}"
                   f" mm; quality (NCC in the stable brain) {esc(_fmt(r.get('quality_ncc'), 3))}</li>")
    out.append("<li>Enhancement is compared with normal-appearing white matter of the same image; findings smaller "
               "than the minimum portion size are not reported (a segmentation wobble is not a change).</li>")
    out.append("</ul>")
    for note in summary.get("notes") or []:
        out.append(f"<p class=tag>Note: {esc(note)}</p>")
    if warnings:
        out.append("<h3>Warnings</h3><ul>" + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>")
    out.append("</section>")
    return "".join(out)


def build_report(case, assessment) -> str:
    """The report page as a string (see the module docstring)."""
    deid = bool(case.metadata.get("deidentified"))
    summary = assessment.summary
    maps = assessment.maps
    planning = case.planning.t1c
    t1 = maps.t1_planning or {tp.label: tp.t1c for tp in case.timepoints[:1]}
    days = {t["label"]: t.get("days_since_srs") for t in summary.get("timepoints", [])}
    masks = finding_segments(maps)
    cache: dict = {}

    def mask_img(key):
        if key not in cache:
            cache[key] = geo.image_from_array(masks[key].astype(np.float32), planning)
        return cache[key]
    windows: dict = {}

    def window(label, centre):
        key = (label, tuple(np.round(centre, 0)))
        if key not in windows:
            windows[key] = _window(t1[label], centre)
        return windows[key]
    iso_colours = palette.isodose_colours([i["level_gy"] for i in summary.get("isodose", [])],
                                          (summary.get("dose") or {}).get("prescription_gy"))
    levels = [(i["level_gy"], _hex(iso_colours[float(i["level_gy"])])) for i in summary.get("isodose", [])]
    ctx = {"t1": t1, "days": days, "masks": masks, "mask_img": mask_img,
           "boundaries": maps.boundaries or case.boundaries,
           "treated": sitk.Cast(case.treated_lesion, sitk.sitkFloat32) if case.treated_lesion is not None else None,
           "dose": sitk.Cast(case.dose.image, sitk.sitkFloat32) if case.dose is not None else None,
           "levels": levels, "window": window}
    findings = assessment.findings
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f'<meta name="running-header" content="{esc(_running_header(case, summary, deid))}">',
             f"<title>RNAssessment report — {esc(case.id)}</title><style>{CSS}</style></head><body>",
             _header(case, summary, deid), _lesion_table(assessment.lesions, summary),
             _finding_list(findings, len(summary.get("timepoints") or []))]
    if findings and ctx["treated"] is not None:
        parts.append('<section id="images"><h2>Key images</h2><p class=tag>Each finding at every timepoint (all '
                     "registered to the SRS image), axial and coronal through its centre; patient's right on the "
                     "left. Dashed cyan: treated lesion at SRS; filled: the finding at its timepoint, dotted at the "
                     "others; grey: the boundary; isodose lines in SlicerRT's colours on a fixed scale (the "
                     "prescription red, 25 % of it green); a level without a free place for its label in an image is named in the "
                     "legend only.</p>")
        parts += [_finding_images(n, f, ctx) for n, f in enumerate(findings, 1)]
        parts.append("</section>")
    parts.append(_time_course(summary, assessment.lesions, findings))
    region_colours = {"treated lesion": COLOURS["treated"],
                      **{f"F{n} {f.segment}": COLOURS[f.kind] for n, f in enumerate(findings, 1) if f.segment}}
    parts.append(_dose_section(summary, maps.finding_dose_stats or maps.dose_stats,
                               region_colours))
    parts.append(_methods(summary, assessment.warnings))
    stamp = "" if deid else f" on {_dt.date.today().isoformat()}"
    parts.append(f"<footer>RNAssessment {esc(__version__)}{stamp}. Coordinates in RAS mm. {esc(DISCLAIMER)}"
                 "</footer></body></html>")
    return "\n".join(parts)


def write_report(case, assessment, out_dir: str, *, pdf: bool = True, log=None) -> dict:
    """Write ``report.html`` (and ``report.pdf`` when ``pdf`` and a Chromium is found). Returns the paths; a PDF
    that could not be made is reported in ``assessment.warnings`` and through ``log``, never silently skipped."""
    say = log or (lambda m: None)
    page = build_report(case, assessment)
    path = os.path.join(out_dir, "report.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    paths = {"report": path}
    if pdf:
        from .browser import BrowserError, find_chromium, print_to_pdf
        exe = find_chromium()
        if exe is None:
            msg = "report.pdf not written: no Chromium/Chrome found (open report.html and print it)"
            say(f"warning: {msg}")
            paths["pdf_error"] = msg
        else:
            try:
                print_to_pdf(path, os.path.join(out_dir, "report.pdf"), exe)
                paths["pdf"] = os.path.join(out_dir, "report.pdf")
            except BrowserError as exc:
                msg = f"report.pdf not written: {exc}"
                say(f"warning: {msg}")
                paths["pdf_error"] = msg
    return paths
