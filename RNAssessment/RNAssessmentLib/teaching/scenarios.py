"""The eight teaching scenarios of the case series (mission.md) and their PD counterparts, as phantom specs.

Coordinates are atlas-frame LPS mm (+x = patient Left). Each scenario lists its expected findings (ground truth):

* ``noncontiguous_across_boundary`` — timepoint, boundary kind, component name;
* ``contiguous_extension`` — a component that is new but connected to the treated lesion;
* ``boundary_enhancement`` — timepoint, boundary kind (enhancing falx/tentorium/pia/ependyma: a PD warning); the
  enhancement of the boundary reaches 7 mm along it beyond the lesion's margin, as meningeal spread does;
* ``open_ring`` — timepoint, boundary kind the non-enhancing side of the rim faces;
* ``mixed_response`` — interval (from, to) where one portion grew ≥ the minimum while another regressed.

The lists are exhaustive for these kinds: a kind not listed for a timepoint/interval must not be found there.
"""
from __future__ import annotations

from .phantom import Blob, Scenario, TimepointSpec, cc_top_z

Z_CING = cc_top_z(0.0) + 5.5          # mid-height of the cingulate gyrus at y = 0


def _tp(label, days, comps, enh=(), pose=(0, 0, 0, 0, 0, 0)):
    return TimepointSpec(label=label, days=days, components=comps, enhancing_boundaries=tuple(enh), pose=pose)


def _b(c, r, ring=0.0, within=("parenchyma",), spare=(), seed=1):
    if isinstance(r, (int, float)):
        r = (r, r, r)
    return Blob(centre=tuple(c), radii=tuple(r), ring=ring, within=tuple(within), spare=tuple(spare), seed=seed)


def scenario_list(misalign: bool = True) -> list[Scenario]:
    """All scenarios. ``misalign`` gives two RN cases rigidly misaligned follow-ups (as if from other scanners)."""
    mis1 = (3.0, -2.0, 4.0, 5.0, -4.0, 3.0) if misalign else (0,) * 6
    mis8 = (-4.0, 3.0, -5.0, -6.0, 8.0, -4.0) if misalign else (0,) * 6
    L = ("parenchyma", "left")
    R = ("parenchyma", "right")
    LC = L + ("below_cingulate_sulcus",)     # a cingulate metastasis respects the cingulate sulcus
    RC = R + ("below_cingulate_sulcus",)
    out = []

    # 1. Left cingulate metastasis; focus across the falx in the right cingulate; later left regresses, right grows.
    t = _b((7, 0, Z_CING), (5.5, 6, 4.5), ring=2, within=LC, seed=11)
    t_open = _b((7, 0, Z_CING), (5.5, 6, 4.5), ring=2, within=LC, spare=(("falx", 2.5),), seed=11)
    out.append(Scenario(
        name="falx_cingulate_rn", title="Cingulate metastasis, new focus across the falx", paper=1,
        counterpart="RN", prescription_gy=20, fractions=1,
        timepoints=[_tp("t0", 0, {"treated": t}),
                    _tp("t1", 200, {"treated": t_open, "across_falx": _b((-4, 2, Z_CING), (3, 3.5, 3), within=RC,
                                                                         seed=12)}, pose=mis1),
                    _tp("t2", 290, {"treated": _b((7, 0, Z_CING), (2.5, 3, 2), ring=1, within=LC,
                                                  spare=(("falx", 2.5),), seed=11),
                                    "across_falx": _b((-5, 2, Z_CING), (6, 7, 5), within=RC, seed=12)},
                        pose=tuple(v * 0.7 for v in mis1))],
        expected=[{"kind": "noncontiguous_across_boundary", "timepoint": "t1", "boundary": "falx",
                   "component": "across_falx"},
                  {"kind": "noncontiguous_across_boundary", "timepoint": "t2", "boundary": "falx",
                   "component": "across_falx"},
                  {"kind": "mixed_response", "from": "t1", "to": "t2"}],
        description="Left cingulate gyrus metastasis, 20 Gy x 1. A small focus appears in the right cingulate "
                    "gyrus across the falx, discontinuous, without falx enhancement; later the left part regresses "
                    "while the right part grows."))
    out.append(Scenario(
        name="falx_cingulate_pd", title="Cingulate metastasis growing through an enhancing falx", paper=1,
        counterpart="PD", prescription_gy=20, fractions=1,
        timepoints=[_tp("t0", 0, {"treated": t}),
                    _tp("t1", 200, {"treated": _b((7, 0, Z_CING), (8.5, 9, 7.5), ring=2, within=LC, seed=11)},
                        enh=[("falx", "treated", 7.0)]),
                    _tp("t2", 290, {"treated": _b((7, 0, Z_CING), (10, 10.5, 9), ring=2, within=LC, seed=11),
                                    "across": _b((-5, 2, Z_CING), (3.5, 4, 3.5), within=RC, seed=12)},
                        enh=[("falx", "treated", 7.0), ("falx", "across", 7.0)])],
        expected=[{"kind": "boundary_enhancement", "timepoint": "t1", "boundary": "falx"},
                  {"kind": "boundary_enhancement", "timepoint": "t2", "boundary": "falx"},
                  {"kind": "contiguous_extension", "timepoint": "t2", "component": "across"}],
        description="Concentric growth of the cingulate metastasis with enhancement of the falx and contiguous "
                    "extension to the other side through the enhancing meninges."))

    # 2. Posterior cingulate; new splenial ring and subtle right cingulate focus; later splenium resolves.
    y2 = 18.0
    z2 = cc_top_z(y2) + 5.5
    t2 = _b((6, y2, z2), (4.5, 6, 4), ring=2, within=LC, seed=21)
    t2s = _b((6, y2, z2), (2, 2.5, 1.5), ring=1, within=LC, seed=21)
    spl = _b((2.5, 27, 12.5), (4.5, 4, 4), ring=1.5, within=("corpus_callosum",), seed=22)
    rc = _b((-5, 16, z2 - 0.5), (2.5, 3, 2.5), within=RC + ("not_cc",), seed=23)
    out.append(Scenario(
        name="splenium_rn", title="Cingulate metastasis shrinks; splenial and contralateral foci", paper=2,
        counterpart="RN", prescription_gy=20, fractions=1,
        timepoints=[_tp("t0", 0, {"treated": t2}),
                    _tp("t1", 210, {"treated": t2s, "splenium": spl, "right_cingulate": rc}),
                    _tp("t2", 300, {"treated": t2s, "right_cingulate": _b((-6, 16, z2 - 0.5), (5.5, 6, 4.5),
                                                                          within=RC + ("not_cc",), seed=23)})],
        expected=[{"kind": "noncontiguous_across_boundary", "timepoint": "t1", "boundary": "falx",
                   "component": "right_cingulate"},
                  {"kind": "noncontiguous_across_boundary", "timepoint": "t1", "boundary": "csf",
                   "component": "splenium"},
                  {"kind": "noncontiguous_across_boundary", "timepoint": "t2", "boundary": "falx",
                   "component": "right_cingulate"},
                  {"kind": "mixed_response", "from": "t1", "to": "t2"}],
        description="Left posterior cingulate metastasis shrinks; a new peripherally enhancing lesion in the "
                    "splenium and subtle enhancement in the right cingulate; later the splenial part resolves while "
                    "the right part grows."))
    out.append(Scenario(
        name="splenium_pd", title="Cingulate metastasis growing as a whole", paper=2, counterpart="PD",
        prescription_gy=20, fractions=1,
        timepoints=[_tp("t0", 0, {"treated": t2}),
                    _tp("t1", 210, {"treated": _b((6, y2, z2), (7.5, 9, 7), ring=2, within=LC, seed=21)}),
                    _tp("t2", 300, {"treated": _b((6, y2, z2), (8.5, 10, 8), ring=2.5, within=LC, seed=21)})],
        expected=[], description="Concentric growth of the whole nodule, confined by the falx and sulci."))

    # 3. Right occipital metastasis responds; years later linear cerebellar enhancement across the tentorium.
    occ = (-20, 52, -8)
    t3 = _b(occ, (6, 6, 5.5), ring=2, within=R + ("supratentorial",), seed=31)
    t3s = _b(occ, (3.5, 3.5, 3), ring=1.5, within=R + ("supratentorial",), seed=31)
    out.append(Scenario(
        name="tentorium_rn", title="Occipital metastasis; linear cerebellar enhancement across the tentorium",
        paper=3, counterpart="RN", prescription_gy=20, fractions=1,
        timepoints=[_tp("t0", 0, {"treated": t3}), _tp("t1", 180, {"treated": t3s}),
                    _tp("t2", 900, {"treated": t3s, "cerebellar": _b((-20, 52, -19.0), (7, 5, 1.5),
                                                                     within=("cerebellum",), seed=32,)})],
        expected=[{"kind": "noncontiguous_across_boundary", "timepoint": "t2", "boundary": "tentorium",
                   "component": "cerebellar"}],
        description="Right occipital melanoma metastasis, 20 Gy x 1, responds; years later linear enhancement in "
                    "the adjacent right cerebellar hemisphere across the tentorium, inside the 10-20 Gy isodose "
                    "lines, without tentorial enhancement."))
    out.append(Scenario(
        name="tentorium_pd", title="Occipital metastasis growing along an enhancing tentorium", paper=3,
        counterpart="PD", prescription_gy=20, fractions=1,
        timepoints=[_tp("t0", 0, {"treated": t3}),
                    _tp("t1", 180, {"treated": _b(occ, (9, 9, 8.5), ring=2, within=R + ("supratentorial",),
                                                  seed=31)}, enh=[("tentorium", "treated", 7.0)]),
                    _tp("t2", 300, {"treated": _b(occ, (12, 12, 11), ring=2, within=R + ("supratentorial",),
                                                  seed=31),
                                    "cerebellar": _b((-20, 52, -21), (6, 5, 3), within=("cerebellum",), seed=32)},
                        enh=[("tentorium", "treated", 7.0), ("tentorium", "cerebellar", 7.0)])],
        expected=[{"kind": "boundary_enhancement", "timepoint": "t1", "boundary": "tentorium"},
                  {"kind": "boundary_enhancement", "timepoint": "t2", "boundary": "tentorium"},
                  {"kind": "contiguous_extension", "timepoint": "t2", "component": "cerebellar"}],
        description="Growth of the occipital metastasis with tentorial enhancement and contiguous extension into "
                    "the cerebellum through the enhancing tentorium."))

    # 4. Pre-central metastasis resolves; ring lesion in the post-central gyrus across the central sulcus.
    pre = (32, -9, 40)
    t4 = _b(pre, 7, ring=2, within=L + ("anterior_to_central",), seed=41)
    post = (32, 5.5, 40)
    out.append(Scenario(
        name="central_sulcus_rn", title="Pre-central metastasis resolves; post-central ring lesion", paper=4,
        counterpart="RN", prescription_gy=20, fractions=1,
        timepoints=[_tp("t0", 0, {"treated": t4}),
                    _tp("t1", 240, {"treated": _b(pre, 4, ring=1.5, within=L + ("anterior_to_central",), seed=41),
                                    "postcentral": _b(post, (4, 3.5, 4), ring=1.5,
                                                      within=L + ("posterior_to_central",), seed=42)}),
                    _tp("t2", 330, {"postcentral": _b(post, (7.5, 7, 7.5), ring=1.5,
                                                      within=L + ("posterior_to_central",), seed=42)})],
        expected=[{"kind": "noncontiguous_across_boundary", "timepoint": "t1", "boundary": "csf",
                   "component": "postcentral"},
                  {"kind": "noncontiguous_across_boundary", "timepoint": "t2", "boundary": "csf",
                   "component": "postcentral"},
                  {"kind": "mixed_response", "from": "t1", "to": "t2"}],
        description="Pre-central gyrus metastasis resolves; a new ring-enhancing lesion appears in the post-central "
                    "gyrus, across the central sulcus."))
    out.append(Scenario(
        name="central_sulcus_pd", title="Pre-central metastasis growing with pial enhancement", paper=4,
        counterpart="PD", prescription_gy=20, fractions=1,
        timepoints=[_tp("t0", 0, {"treated": t4}),
                    _tp("t1", 240, {"treated": _b(pre, 9, ring=2, within=L + ("anterior_to_central",),
                                                  seed=41)}),
                    _tp("t2", 330, {"treated": _b(pre, (12, 11, 12), ring=2, within=L + ("anterior_to_central",),
                                                  seed=41)}, enh=[("csf", "treated", 7.0)])],
        expected=[{"kind": "boundary_enhancement", "timepoint": "t2", "boundary": "csf"}],
        description="Concentric growth of the pre-central metastasis, then enhancement of the pia lining the "
                    "central sulcus."))

    # 5. Resection cavity of a temporal metastasis; foci across the Sylvian fissure inside the RT field.
    cav = ((36, -2, -14), 7.0)
    # The lesion is the parenchyma between the cavity (r 7 mm) and 10 mm, its inner 2 mm enhancing.
    rim = Blob(centre=(36, -2, -14), radii=(10, 10, 10), ring=2.0, within=L, seed=51, irregularity=0.04)
    out.append(Scenario(
        name="sylvian_cavity_rn", title="Resection cavity; foci across the Sylvian fissure", paper=5,
        counterpart="RN", prescription_gy=20, fractions=5, cavity=cav,
        timepoints=[_tp("t0", 0, {"treated": rim}),
                    _tp("t1", 270, {"treated": rim, "opercular": _b((36, 0, 5), (3.5, 4, 3),
                                                                    within=L + ("above_sylvian",), seed=52)}),
                    _tp("t2", 360, {"treated": rim, "opercular": _b((36, 0, 5), (6.5, 7, 5),
                                                                    within=L + ("above_sylvian",), seed=52)})],
        expected=[{"kind": "noncontiguous_across_boundary", "timepoint": "t1", "boundary": "csf",
                   "component": "opercular"},
                  {"kind": "noncontiguous_across_boundary", "timepoint": "t2", "boundary": "csf",
                   "component": "opercular"}],
        description="Resected left temporal metastasis, cavity SRS 20 Gy in 5 fractions: a separate focus in the "
                    "frontal operculum across the Sylvian fissure, conforming to the RT field."))
    out.append(Scenario(
        name="sylvian_cavity_pd", title="Nodular growth at the cavity margin", paper=5, counterpart="PD",
        prescription_gy=20, fractions=5, cavity=cav,
        timepoints=[_tp("t0", 0, {"treated": rim}),
                    _tp("t1", 270, {"treated": rim, "nodule": _b((43, -2, -20), 4.5, within=L, seed=53)}),
                    _tp("t2", 360, {"treated": rim, "nodule": _b((43, -2, -20), 8, within=L, seed=53)})],
        expected=[{"kind": "contiguous_extension", "timepoint": "t1", "component": "nodule"},
                  {"kind": "contiguous_extension", "timepoint": "t2", "component": "nodule"}],
        description="Nodular enhancement growing at one margin of the cavity, contiguous with it, no regression."))

    # 6. Caudate metastasis: enhancement wraps around the ventricle, ependyma spared (open ring).
    cau = (18, -12, 9)
    t6 = _b(cau, 5, ring=2, within=L, seed=61)
    spare_v = (("ventricles", 1.5),)
    out.append(Scenario(
        name="ventricle_open_ring_rn", title="Caudate metastasis; enhancement wraps the ventricle, open ring",
        paper=6, counterpart="RN", prescription_gy=24, fractions=3,
        timepoints=[_tp("t0", 0, {"treated": t6}),
                    _tp("t1", 240, {"treated": _b(cau, 5, ring=2, within=L, spare=spare_v, seed=61),
                                    "periventricular": _b((10, -12, 17), (10, 8, 5), within=L, spare=spare_v,
                                                          seed=62)}),
                    _tp("t2", 330, {"treated": _b(cau, 5, ring=2, within=L, spare=spare_v, seed=61),
                                    "periventricular": _b((10, -12, 17), (12, 10, 6), within=L, spare=spare_v,
                                                          seed=62)})],
        expected=[{"kind": "open_ring", "timepoint": "t1", "boundary": "ventricles"},
                  {"kind": "open_ring", "timepoint": "t2", "boundary": "ventricles"},
                  {"kind": "contiguous_extension", "timepoint": "t1", "component": "periventricular"},
                  {"kind": "contiguous_extension", "timepoint": "t2", "component": "periventricular"}],
        description="Caudate nucleus metastasis, 24 Gy in 3: enlargement wraps around the lateral ventricle into "
                    "the corpus callosum, eccentric to the original lesion, without ependymal enhancement."))
    out.append(Scenario(
        name="ventricle_open_ring_pd", title="Caudate metastasis with ependymal enhancement", paper=6,
        counterpart="PD", prescription_gy=24, fractions=3,
        timepoints=[_tp("t0", 0, {"treated": t6}),
                    _tp("t1", 240, {"treated": _b(cau, 8, ring=2, within=L, seed=61)},
                        enh=[("ventricles", "treated", 7.0)]),
                    _tp("t2", 330, {"treated": _b(cau, 11, ring=2, within=L, seed=61)},
                        enh=[("ventricles", "treated", 7.0)])],
        expected=[{"kind": "boundary_enhancement", "timepoint": "t1", "boundary": "ventricles"},
                  {"kind": "boundary_enhancement", "timepoint": "t2", "boundary": "ventricles"}],
        description="Growth of the caudate metastasis along the ventricle with enhancement of the ependyma."))

    # 7. Caudate metastasis: callosal enhancement across the ventricle, later recedes while lateral part appears.
    cau7 = (19, -12, 8)
    t7 = _b(cau7, 4.5, ring=1.5, within=L, seed=71)
    call = _b((5, -12, 16), (3.5, 4.5, 3), within=("corpus_callosum", "left"), spare=(("ventricles", 1.5),),
              seed=72)
    out.append(Scenario(
        name="callosal_rn", title="Caudate metastasis; callosal focus recedes as a lateral one appears", paper=7,
        counterpart="RN", prescription_gy=27, fractions=3,
        timepoints=[_tp("t0", 0, {"treated": t7}), _tp("t1", 200, {"treated": t7, "callosal": call}),
                    _tp("t2", 300, {"treated": t7, "lateral": _b((27, -12, 8), 4, within=L + ("not_cc",),
                                                                 seed=73)})],
        expected=[{"kind": "noncontiguous_across_boundary", "timepoint": "t1", "boundary": "ventricles",
                   "component": "callosal"},
                  {"kind": "open_ring", "timepoint": "t1", "boundary": "ventricles"},
                  {"kind": "contiguous_extension", "timepoint": "t2", "component": "lateral"},
                  {"kind": "mixed_response", "from": "t1", "to": "t2"}],
        description="Caudate metastasis, 27 Gy in 3: new callosal enhancement without ventricular-surface "
                    "enhancement; later the callosal part recedes while new enhancement appears laterally."))
    out.append(Scenario(
        name="callosal_pd", title="Caudate metastasis growing as a whole", paper=7, counterpart="PD",
        prescription_gy=27, fractions=3,
        timepoints=[_tp("t0", 0, {"treated": t7}),
                    _tp("t1", 200, {"treated": _b(cau7, 7.5, ring=2, within=L, seed=71)}),
                    _tp("t2", 300, {"treated": _b(cau7, 10.5, ring=2, within=L, seed=71)})],
        expected=[], description="Concentric growth of the whole caudate nodule."))

    # 8. Temporal lesion after 60 Gy/30: medial part grows, lateral part recedes, across a spared sulcus.
    med, lat = (34, -22, -16), (47, -22, -16)
    wm, wl = L + ("medial_temporal",), L + ("lateral_temporal",)
    out.append(Scenario(
        name="temporal_mixed_rn", title="Temporal lesion: medial part grows, lateral part recedes", paper=8,
        counterpart="RN", prescription_gy=60, fractions=30, dose_falloff_mm=(10.0, 30.0),
        timepoints=[_tp("t0", 0, {"medial": _b(med, 5, ring=1.5, within=wm, seed=81),
                                  "lateral": _b(lat, 6, ring=1.5, within=wl, seed=82)}),
                    _tp("t1", 150, {"medial": _b(med, 8, ring=1.5, within=wm, seed=81),
                                    "lateral": _b(lat, 3, ring=1.5, within=wl, seed=82)}, pose=mis8),
                    _tp("t2", 270, {"medial": _b(med, 11, ring=1.5, within=wm, seed=81)},
                        pose=tuple(-v for v in mis8))],
        expected=[{"kind": "mixed_response", "from": "t0", "to": "t1"},
                  {"kind": "mixed_response", "from": "t1", "to": "t2"}],
        description="Temporal lobe lesion after 60 Gy in 30: total size similar, but the medial component grew "
                    "and the lateral one receded, divided by a spared sulcus."))
    out.append(Scenario(
        name="temporal_mixed_pd", title="Temporal lesion growing in all parts", paper=8, counterpart="PD",
        prescription_gy=60, fractions=30, dose_falloff_mm=(10.0, 30.0),
        timepoints=[_tp("t0", 0, {"medial": _b(med, 5, ring=1.5, within=wm, seed=81),
                                  "lateral": _b(lat, 5, ring=1.5, within=wl, seed=82)}),
                    _tp("t1", 150, {"medial": _b(med, 8, ring=1.5, within=wm, seed=81),
                                    "lateral": _b(lat, 8, ring=1.5, within=wl, seed=82)}),
                    _tp("t2", 270, {"medial": _b(med, 11, ring=1.5, within=wm, seed=81),
                                    "lateral": _b(lat, 11, ring=1.5, within=wl, seed=82)})],
        expected=[], description="Both components of the temporal lesion grow."))
    return out


def get_scenario(name: str, misalign: bool = True) -> Scenario:
    for s in scenario_list(misalign):
        if s.name == name:
            return s
    raise KeyError(f"unknown scenario '{name}'; known: {', '.join(s.name for s in scenario_list())}")
