"""Writing the teaching scenarios to disk as ordinary cases (manifest + images) with their ground truth.

Layout of one case folder::

    case.json                       manifest (see case.py)
    t0_t1c.nrrd, t0_lesion.nrrd …   images and lesion masks, each in its own scanner frame (NIfTI for PD cases)
    treated_lesion.nrrd             on the SRS (t0) grid
    boundaries.seg.nrrd             falx / tentorium / ventricles / csf segments on the SRS grid
    dose.nrrd or rtdose.dcm         dose in Gy on its own 2 mm grid (one case writes DICOM RTDOSE)
    truth/truth.json                expected findings, per-timepoint components, change volumes, transforms
    truth/components_<tp>.nrrd      component labels in the planning frame
    truth/change_<a>_<b>.nrrd       1 = grew, 2 = regressed between two timepoints (planning frame)
    truth/transform_<tp>.tfm        planning-frame point → that timepoint's image frame
    truth/anatomy_labels.nrrd       tissue labels in the planning frame
"""
from __future__ import annotations

import json
import os

import numpy as np
import SimpleITK as sitk

from ..io import geometry as geo
from ..io.case import Case, Dose, Timepoint, save_case
from ..io.rtdose import write_rtdose
from ..io.structures import write_seg_nrrd
from . import phantom
from .scenarios import Scenario, scenario_list

#: The case written with a DICOM RTDOSE instead of an image.
RTDOSE_CASE = "tentorium_rn"


def case_from_render(scn: Scenario, rendered: dict) -> Case:
    tps = [Timepoint(label=t.label, date=t.date, t1c=t.t1c, lesion=t.lesion) for t in rendered["timepoints"]]
    registered = all(np.allclose(np.array(t.transform_to_planning.GetMatrix()), np.eye(3).ravel())
                     and np.allclose(t.transform_to_planning.GetTranslation(), 0) for t in rendered["timepoints"])
    return Case(id=scn.name, timepoints=tps, treated_lesion=rendered["treated_lesion"],
                boundaries=dict(rendered["boundaries"]),
                dose=Dose(image=rendered["dose"], prescription_gy=scn.prescription_gy, fractions=scn.fractions,
                          date=phantom.SRS_DATE),
                registered=registered,
                metadata={"title": scn.title, "paper_scenario": scn.paper, "counterpart": scn.counterpart,
                          "description": scn.description, "synthetic": True,
                          # an RN case and its PD twin are two patients: one name and one id each
                          "patient_name": f"DEMO^{scn.name.upper()}",
                          "patient_id": f"RNA-{scn.paper:02d}-{scn.counterpart}"})


def change_map(before: sitk.Image, after: sitk.Image) -> sitk.Image:
    """1 where ``after`` has lesion and ``before`` not (grew), 2 where the reverse (regressed); same grid."""
    a = geo.array_view(before) > 0
    b = geo.array_view(after) > 0
    out = np.zeros(a.shape, np.uint8)
    out[b & ~a] = 1
    out[a & ~b] = 2
    return geo.image_from_array(out, before)


def write_scenario(scn: Scenario, out_dir: str, seed: int = 0) -> str:
    """Render and write one scenario; returns the manifest path."""
    rendered = phantom.render_scenario(scn, seed=seed)
    case = case_from_render(scn, rendered)
    case_dir = os.path.join(out_dir, scn.name)
    os.makedirs(os.path.join(case_dir, "truth"), exist_ok=True)
    ext = ".nrrd" if scn.counterpart == "RN" else ".nii.gz"
    dose_name = None
    if scn.name == RTDOSE_CASE:
        dose_name = "rtdose.dcm"
        write_rtdose(case.dose.image, os.path.join(case_dir, dose_name),
                     patient_name=case.metadata["patient_name"], patient_id=case.metadata["patient_id"],
                     study_date=phantom.SRS_DATE.strftime("%Y%m%d"), description="synthetic SRS dose")
    boundaries = case.boundaries
    case.boundaries = {}
    manifest = save_case(case, case_dir, ext=ext, dose_path=dose_name)
    write_seg_nrrd(os.path.join(case_dir, "boundaries.seg.nrrd"), boundaries,
                   colors={"falx": (1.0, 0.85, 0.0), "tentorium": (1.0, 0.55, 0.0), "ventricles": (0.3, 0.6, 1.0),
                           "csf": (0.55, 0.8, 1.0)})
    with open(manifest, encoding="utf-8") as f:
        spec = json.load(f)
    spec["boundaries"] = "boundaries.seg.nrrd"
    with open(manifest, "w", encoding="utf-8") as f:
        json.dump(spec, f, indent=2)

    truth_dir = os.path.join(case_dir, "truth")
    tps = rendered["timepoints"]
    truth = {"scenario": scn.name, "title": scn.title, "paper_scenario": scn.paper,
             "counterpart": scn.counterpart, "expected": rendered["expected"], "design": rendered["design"],
             "midsagittal_plane_lps": rendered["midsagittal_plane_lps"], "timepoints": {}, "intervals": []}
    for t in tps:
        sitk.WriteImage(t.components_planning, os.path.join(truth_dir, f"components_{t.label}.nrrd"), True)
        sitk.WriteTransform(t.transform_to_planning, os.path.join(truth_dir, f"transform_{t.label}.tfm"))
        comp = geo.array_view(t.components_planning)
        vox = geo.voxel_volume_mm3(t.components_planning)
        truth["timepoints"][t.label] = {
            "date": t.date.isoformat(), "days_since_srs": (t.date - phantom.SRS_DATE).days,
            "components": {name: {"label": lab, "volume_mm3": float((comp == lab).sum() * vox)}
                           for lab, name in t.component_names.items() if (comp == lab).any()},
            "boundary_enhancing": t.boundary_enhancing,
            "transform_to_planning": {"matrix": list(t.transform_to_planning.GetMatrix()),
                                      "translation": list(t.transform_to_planning.GetTranslation())}}
    for a, b in zip(tps[:-1], tps[1:]):
        cm = change_map(a.components_planning, b.components_planning)
        sitk.WriteImage(cm, os.path.join(truth_dir, f"change_{a.label}_{b.label}.nrrd"), True)
        arr = geo.array_view(cm)
        vox = geo.voxel_volume_mm3(cm)
        truth["intervals"].append({"from": a.label, "to": b.label, "grew_mm3": float((arr == 1).sum() * vox),
                                   "regressed_mm3": float((arr == 2).sum() * vox)})
    sitk.WriteImage(rendered["labels_planning"], os.path.join(truth_dir, "anatomy_labels.nrrd"), True)
    with open(os.path.join(truth_dir, "truth.json"), "w", encoding="utf-8") as f:
        json.dump(truth, f, indent=2)
    return manifest


def write_demo(out_dir: str, names: list[str] | None = None, log=print, real_mri: str | None = None) -> list[str]:
    """Write the scenarios (all, or those named) under ``out_dir``; returns manifest paths.

    ``real_mri``: the folder of the real brain MRIs (``Testing/Data/real-mri``): the real-MRI teaching cases
    (:data:`realmri.DEMO_CASES`, or those named) are written too, after the phantoms."""
    scns = scenario_list()
    known = {s.name for s in scns}
    real_known: list = []
    if real_mri:
        from . import realmri
        real_known = list(realmri.DEMO_CASES)
    for n in names or []:
        if n not in known | set(real_known):
            more = f"; with --real-mri also: {', '.join(real_known)}" if real_known else ""
            raise ValueError(f"unknown scenario '{n}'; known: {', '.join(sorted(known))}{more}")
    wanted = [n for n in real_known if not names or n in names]
    if wanted:
        realmri.check_data_dir(real_mri, list(dict.fromkeys(n.split("_", 1)[0] for n in wanted)))
    manifests = []
    # Each scenario keeps the seed of its place in the full list, so a case written alone (``--scenario``) is
    # the same case, noise and all, as in the full demo.
    for i, scn in enumerate(scns):
        if names and scn.name not in names:
            continue
        log(f"[demo] writing {scn.name} ({scn.counterpart}, paper scenario {scn.paper})")
        manifests.append(write_scenario(scn, out_dir, seed=i))
    if wanted:
        manifests += realmri.write_real_cases(real_mri, out_dir, names=wanted,
                                              log=lambda m: log(m.replace("[real-mri]", "[demo]")))
    return manifests
