"""Render the README figures (needs the test extra: slicer-core, and Debian's chromium for the report).

    python Utilities/make_readme_figures.py Resources/Screenshots

1. ``scene_tentorium.png``: the tentorium teaching case loaded into a real MRML scene (slicer-core), assessed by the
   module's glue, the scene written and read back, and its outputs rendered offscreen with VTK
   (mrml.bridge.render_scene): isodose lines on a coronal slice, the treated lesion, the focus across the tentorium.
2. ``report_falx.png``: the top of report.html of the falx teaching case, rendered by headless Chromium.
3. ``key_images.png``: the key images of the open-ring teaching case's first finding as the PDF prints them (print
   media, A4 width): labels placed clear of each other and of the finding, markers in their margin.
"""
import os
import sys
import tempfile


def scene_figure(out_png: str) -> None:
    import slicer
    from RNAssessmentLib.mrml import bridge as mb
    from RNAssessmentLib.faces.slicer_case import assess_nodes, load_phantom_into_scene
    scene = slicer.vtkMRMLScene()
    nodes = load_phantom_into_scene(scene, "tentorium_rn")
    res = assess_nodes(scene, nodes["timepoints"], nodes["treated_lesion"], nodes["dose"], 20.0, 1,
                       "20,15,12,10,5", boundaries=nodes["boundaries"], log_callback=print)
    focus = next(f for f in res["assessment"].findings if f.kind == "noncontiguous_across_boundary")
    with tempfile.TemporaryDirectory() as tmp:
        reloaded = mb.load_scene(mb.save_scene(scene, tmp))
        last = reloaded.GetNodesByName(nodes["timepoints"][-1].GetName()).GetItemAsObject(0)
        centre = [focus.centroid_ras[0], focus.centroid_ras[1], focus.centroid_ras[2] + 8.0]
        mb.render_scene(reloaded, out_png, background_volume=last, center_ras=centre, size=(900, 620))


def report_figure(out_png: str) -> None:
    import SimpleITK as sitk
    from RNAssessmentLib.faces.cli import main
    from RNAssessmentLib.output.browser import Headless
    with tempfile.TemporaryDirectory() as tmp:
        main(["demo", "--out", tmp, "--scenario", "falx_cingulate_rn", "--no-pdf"])
        with Headless(width=1100, height=1500) as b:
            b.open(os.path.join(tmp, "falx_cingulate_rn", "assessment", "report.html"))
            b.screenshot(os.path.join(tmp, "full.png"), full_page=False)
        img = sitk.ReadImage(os.path.join(tmp, "full.png"))
        sitk.WriteImage(img[:, :1500], out_png)


def key_images_figure(out_png: str) -> None:
    import base64
    from RNAssessmentLib.faces.cli import main
    from RNAssessmentLib.output.browser import Headless
    with tempfile.TemporaryDirectory() as tmp:
        main(["demo", "--out", tmp, "--scenario", "ventricle_open_ring_rn", "--no-pdf"])
        with Headless(width=720, height=1000) as b:
            b.open(os.path.join(tmp, "ventricle_open_ring_rn", "assessment", "report.html"))
            b.call("Emulation.setEmulatedMedia", {"media": "print"}, session=True)
            x, y, w, h = b.evaluate("(() => { const r = document.getElementById('images-1').getBoundingClientRect();"
                                    " return [r.left, r.top + window.scrollY, r.width, r.height]; })()")
            shot = b.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                     "clip": {"x": x, "y": y, "width": w, "height": h, "scale": 1}},
                          session=True)
        with open(out_png, "wb") as f:
            f.write(base64.b64decode(shot["data"]))


if __name__ == "__main__":
    folder = sys.argv[1] if len(sys.argv) > 1 else "Resources/Screenshots"
    scene_figure(os.path.join(folder, "scene_tentorium.png"))
    report_figure(os.path.join(folder, "report_falx.png"))
    key_images_figure(os.path.join(folder, "key_images.png"))
