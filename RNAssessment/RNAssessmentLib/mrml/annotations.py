"""Reading aids in a slice view: the timepoint caption, orientation letters at the edges, a scale bar and a
label on each isodose line (what a radiologist expects on every film; the report's key images carry the same).

Coordinates: the slice node's XYToRAS maps the view's pixels (x right, y up, origin bottom-left) to RAS; letters
name RAS directions (R = +x, A = +y, S = +z). Labels are placed from the isodose model's own intersection with the
slice plane, on the view's pixel grid, so a label always sits on the line of its own level.
"""
from __future__ import annotations

import numpy as np
import vtk

from ..io import geometry as geo

#: The patient direction named by each RAS axis, negative then positive.
LETTERS = (("L", "R"), ("P", "A"), ("I", "S"))
FONT_PX = 15
#: A label's box is placed this many pixels from its line, on the side away from the line's middle.
LABEL_GAP_PX = 3.0
#: No label within this many pixels of the view's edge (where the letters and the caption are) ...
EDGE_PX = 28.0
#: ... nor of its foot, where the page's slice slider lies; the scale bar and the bottom letter stand above it.
FOOT_PX = 64.0
BOTTOM_LETTER_Y_PX = 40


def direction_letter(v) -> str:
    """The patient direction (R, L, A, P, S, I) a RAS vector points to most."""
    v = np.asarray(v, float)
    axis = int(np.argmax(np.abs(v)))
    return LETTERS[axis][int(v[axis] > 0)]


def edge_letters(xy_to_ras: np.ndarray) -> dict:
    """Letters at the view's edges: the direction the screen's right / up axis points to, and their opposites."""
    right, up = xy_to_ras[:3, 0], xy_to_ras[:3, 1]
    return {"left": direction_letter(-right), "right": direction_letter(right), "top": direction_letter(up),
            "bottom": direction_letter(-up)}


def _matrix(vtk_matrix) -> np.ndarray:
    return np.array([[vtk_matrix.GetElement(i, j) for j in range(4)] for i in range(4)])


class SliceAnnotations:
    """The aids of one slice view; they follow the slice node (offset, zoom, size) and the isodose models' display
    (a hidden level loses its label). ``isodose``: [(level Gy, model node, rgb 0-1)]; ``covered``: see below."""

    def __init__(self, slice_node, renderer, caption: str, isodose, request_render=None, covered=None):
        import slicer
        self.slice_node, self.renderer, self.caption = slice_node, renderer, caption
        self.isodose = list(isodose)
        self.request_render = request_render or (lambda: None)
        # covered(ras (N, 3)) -> bool (N): where a fill drawn over the lines hides them (translucent fills render
        # after opaque lines): no label is anchored there, on a line the reader cannot see.
        self.covered = covered
        self.corner = vtk.vtkCornerAnnotation()
        self.corner.SetMaximumFontSize(FONT_PX + 2)
        self.corner.SetMinimumFontSize(FONT_PX - 2)
        self.corner.SetLinearFontScaleFactor(2.0)
        self.corner.SetNonlinearFontScaleFactor(1.0)
        tp = self.corner.GetTextProperty()
        tp.SetColor(1.0, 1.0, 1.0)
        tp.ShadowOn()
        tp.BoldOn()
        renderer.AddViewProp(self.corner)
        self.bottom = vtk.vtkTextActor()            # above the scale bar, not on it (the corner's lower edge is)
        bp = self.bottom.GetTextProperty()
        bp.ShallowCopy(tp)
        bp.SetFontSize(FONT_PX + 2)
        bp.SetJustificationToCentered()
        renderer.AddActor2D(self.bottom)
        self.labels = {}
        for level, _node, rgb in self.isodose:
            actor = vtk.vtkTextActor()
            actor.SetInput(f"{level:g} Gy")
            p = actor.GetTextProperty()
            p.SetFontSize(FONT_PX)
            p.BoldOn()
            p.SetColor(*rgb)
            p.SetBackgroundColor(0.0, 0.0, 0.0)      # a dark box behind the text: readable on bright enhancement
            p.SetBackgroundOpacity(0.65)
            p.SetJustificationToLeft()
            p.SetVerticalJustificationToBottom()
            actor.SetVisibility(False)
            renderer.AddActor2D(actor)
            self.labels[level] = actor
        # A scale bar of our own at the lower right, above the page's slice slider (Slicer's ruler sits at the foot
        # of the view, under that slider, and cannot be moved).
        slice_node.SetRulerType(slicer.vtkMRMLAbstractViewNode.RulerTypeNone)
        self.bar_points = vtk.vtkPoints()
        self.bar_points.SetNumberOfPoints(4)
        bar = vtk.vtkPolyData()
        bar.SetPoints(self.bar_points)
        lines = vtk.vtkCellArray()
        for a, b in ((0, 1), (0, 2), (1, 3)):                 # the bar and its two end ticks
            lines.InsertNextCell(2)
            lines.InsertCellPoint(a)
            lines.InsertCellPoint(b)
        bar.SetLines(lines)
        mapper = vtk.vtkPolyDataMapper2D()
        mapper.SetInputData(bar)
        self.bar = vtk.vtkActor2D()
        self.bar.SetMapper(mapper)
        self.bar.GetProperty().SetColor(1.0, 1.0, 1.0)
        self.bar.GetProperty().SetLineWidth(2.0)
        renderer.AddActor2D(self.bar)
        self.bar_text = vtk.vtkTextActor()
        btp = self.bar_text.GetTextProperty()
        btp.ShallowCopy(tp)
        btp.SetFontSize(FONT_PX - 1)
        btp.SetJustificationToRight()
        renderer.AddActor2D(self.bar_text)
        self.scale_bar: dict = {}
        self.placed: list[dict] = []
        self.letters: dict = {}
        self._observed = [(slice_node, slice_node.AddObserver(vtk.vtkCommand.ModifiedEvent, self._changed))]
        for _level, node, _rgb in self.isodose:
            disp = node.GetDisplayNode()
            if disp is not None:
                self._observed.append((disp, disp.AddObserver(vtk.vtkCommand.ModifiedEvent, self._changed)))
        self.update()

    def _changed(self, *_):
        self.update()
        self.request_render()

    def remove(self):
        for obj, tag in self._observed:
            obj.RemoveObserver(tag)
        self._observed = []
        self.renderer.RemoveViewProp(self.corner)
        for actor in (self.bottom, self.bar, self.bar_text):
            self.renderer.RemoveActor2D(actor)
        for actor in self.labels.values():
            self.renderer.RemoveActor2D(actor)
        self.labels = {}

    @staticmethod
    def _text_size(actor) -> tuple[float, float]:
        """The label's box in pixels, from the font alone (FreeType: no render window involved, so it is safe to
        ask while the view is being updated), with the background's margin."""
        bbox = [0, 0, 0, 0]
        if vtk.vtkTextRenderer().GetBoundingBox(actor.GetTextProperty(), actor.GetInput(), bbox, 72):
            return float(bbox[1] - bbox[0] + 1 + 4), float(bbox[3] - bbox[2] + 1 + 3)
        return 0.62 * FONT_PX * len(actor.GetInput()) + 4, 1.25 * FONT_PX + 3

    def update(self):
        xy_to_ras = _matrix(self.slice_node.GetXYToRAS())
        ras_to_xy = np.linalg.inv(xy_to_ras)
        self.letters = edge_letters(xy_to_ras)
        # Upper right: the page puts the view's own buttons at the upper left.
        self.corner.SetText(3, self.caption)
        self.corner.SetText(6, self.letters["left"])                              # left edge
        self.corner.SetText(5, self.letters["right"])                             # right edge
        self.corner.SetText(7, self.letters["top"])                               # upper edge
        dims = self.slice_node.GetDimensions()
        width, height = float(dims[0]), float(dims[1])
        self.bottom.SetInput(self.letters["bottom"])
        self.bottom.SetDisplayPosition(int(width / 2), BOTTOM_LETTER_Y_PX)
        self._scale_bar(xy_to_ras, width)
        slice_to_ras = _matrix(self.slice_node.GetSliceToRAS())
        plane = vtk.vtkPlane()
        plane.SetOrigin(*slice_to_ras[:3, 3])
        plane.SetNormal(*slice_to_ras[:3, 2])
        taken: list = []
        self.placed = []
        for level, node, _rgb in sorted(self.isodose, key=lambda x: -x[0]):
            actor = self.labels.get(level)
            if actor is None:
                continue
            actor.SetVisibility(False)
            disp = node.GetDisplayNode()
            if disp is None or not (disp.GetVisibility() and disp.GetVisibility2D()) or node.GetPolyData() is None:
                continue
            cut = vtk.vtkCutter()
            cut.SetCutFunction(plane)
            cut.SetInputData(node.GetPolyData())
            cut.Update()
            pts = cut.GetOutput().GetPoints()
            if pts is None or pts.GetNumberOfPoints() == 0:
                continue
            ras = np.array([pts.GetPoint(i) for i in range(pts.GetNumberOfPoints())])
            xy = (ras_to_xy @ np.c_[ras, np.ones(len(ras))].T).T[:, :2]
            inside = (xy[:, 0] > EDGE_PX) & (xy[:, 0] < width - EDGE_PX) & (xy[:, 1] > FOOT_PX) & \
                (xy[:, 1] < height - EDGE_PX)
            if self.covered is not None and inside.any():
                inside &= ~np.asarray(self.covered(ras), bool)
            if not inside.any():
                continue
            w, h = self._text_size(actor)

            def free(box):
                bx, by, bw, bh = box
                return (bx >= EDGE_PX and by >= FOOT_PX and bx + bw <= width - EDGE_PX
                        and by + bh <= height - EDGE_PX and not any(geo.boxes_overlap(box, t) for t in taken))
            placed = geo.place_label(xy[inside], (w, h), free, gap=(LABEL_GAP_PX, LABEL_GAP_PX), y_up=True,
                                     tries=150)
            if placed is None:
                continue                    # named in the legend only
            box, anchor = placed
            taken.append(box)
            actor.SetDisplayPosition(int(round(box[0])), int(round(box[1])))
            actor.SetVisibility(True)
            self.placed.append({"level": float(level), "box": [float(v) for v in box], "anchor": list(anchor)})

    def _scale_bar(self, xy_to_ras: np.ndarray, width: float) -> None:
        """A bar of a round length (1, 2, 5 x 10^n mm) about a fifth of the view wide, at its lower right."""
        mm_per_px = float(np.linalg.norm(xy_to_ras[:3, 0]))
        if mm_per_px <= 0 or width <= 0:
            self.bar.SetVisibility(False)
            self.bar_text.SetVisibility(False)
            return
        want = 0.2 * width * mm_per_px
        exp = 10.0 ** np.floor(np.log10(want))
        mm = max(m * exp for m in (1.0, 2.0, 5.0) if m * exp <= want)
        px = mm / mm_per_px
        x1 = width - EDGE_PX
        x0, y = x1 - px, float(BOTTOM_LETTER_Y_PX)
        for i, (x, yy) in enumerate(((x0, y), (x1, y), (x0, y + 6.0), (x1, y + 6.0))):
            self.bar_points.SetPoint(i, x, yy, 0.0)
        self.bar_points.Modified()
        self.bar.SetVisibility(True)
        self.bar_text.SetInput(f"{mm:g} mm")
        self.bar_text.SetDisplayPosition(int(x1), int(y + 8))
        self.bar_text.SetVisibility(True)
        self.scale_bar = {"mm": float(mm), "px": float(px), "from_px": [x0, y], "to_px": [x1, y]}

    def state(self) -> dict:
        """What the view shows besides the images (pixels: origin bottom-left, y up)."""
        dims = self.slice_node.GetDimensions()
        return {"caption": self.caption, "letters": dict(self.letters), "size": [int(dims[0]), int(dims[1])],
                "scale_bar": dict(self.scale_bar), "isodose_labels": [dict(x) for x in self.placed]}
