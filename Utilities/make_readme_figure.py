"""Render the README figure from a demo case: follow-up MRI with isodose lines, treated lesion and the focus.

    python Utilities/make_readme_figure.py demo/tentorium_rn Resources/Screenshots/demo_tentorium.png
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from RNAssessmentLib import geometry as geo  # noqa: E402
from RNAssessmentLib.case import load_manifest  # noqa: E402
from RNAssessmentLib.dose import contour_lines_on_slice, default_levels, level_colour  # noqa: E402


def main(case_dir, out_png):
    case = load_manifest(os.path.join(case_dir, "case.json"))
    last = case.timepoints[-1]
    comp = sitk.ReadImage(os.path.join(case_dir, "truth", f"components_{last.label}.nrrd"))
    new = geo.array_view(last.lesion) > 0
    treated = geo.array_view(case.treated_lesion) > 0
    focus = new & ~treated
    idx = np.argwhere(focus if focus.any() else new).mean(0).round().astype(int)
    t1 = geo.array_view(last.t1c).astype(float)
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2), facecolor="black")
    rx = case.dose.prescription_gy
    for ax, (axis, title) in zip(axes, [(2, "axial"), (0, "sagittal")]):
        sl = [slice(None)] * 3
        sl[axis] = idx[axis]
        img = t1[tuple(sl)]
        keep = [a for a in range(3) if a != axis]
        size = [last.t1c.GetSize()[a] if a in keep else 1 for a in range(3)]
        start = [0 if a in keep else int(idx[a]) for a in range(3)]
        plane = sitk.RegionOfInterest(last.t1c, size, start)
        if axis == 0:
            plane = sitk.PermuteAxes(plane, [1, 2, 0])
        ax.imshow(img.T, cmap="gray", origin="lower", vmin=0, vmax=np.percentile(t1, 99.7))
        for lv in default_levels(rx):
            for line in contour_lines_on_slice(case.dose.image, lv, plane):
                ax.plot(line[:, 0], line[:, 1], color=level_colour(lv, rx), lw=1.3)
            ax.plot([], [], color=level_colour(lv, rx), label=f"{lv:g} Gy")
        ax.contour(treated[tuple(sl)].T, levels=[0.5], colors="white", linewidths=1.0, linestyles="dashed")
        ax.contour(focus[tuple(sl)].T, levels=[0.5], colors="yellow", linewidths=1.5)
        c = idx[keep]
        ax.set_xlim(c[0] - 45, c[0] + 45)
        ax.set_ylim(c[1] - 45, c[1] + 45)
        if axis == 2:
            ax.invert_yaxis()          # radiological axial view: anterior (low LPS y) at the top
        ax.set_title(f"{case.id}, {last.label} ({case.days_since_srs(last)} days after SRS), {title}", color="w")
        ax.axis("off")
    axes[0].legend(loc="lower left", fontsize=8, facecolor="black", labelcolor="white", framealpha=0.6)
    fig.text(0.5, 0.02, "dashed white: treated lesion at SRS; yellow: new enhancement across the tentorium",
             color="w", ha="center", fontsize=9)
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    fig.savefig(out_png, dpi=80, facecolor="black")


if __name__ == "__main__":
    main(*sys.argv[1:3])
