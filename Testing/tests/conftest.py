"""Shared fixtures: paths to the reference data in Testing/Data (kept in the repository, licences beside each set)
and rendered phantom scenarios.

Every costly fixture in the test modules is session-scoped, even where one module alone uses it, so that a worker
builds it once whatever order its tests come in. Each of them was still built twice in one CI run (the cohort
source and run, 170 s): not by scope but because pytest 9.2 keeps pytest-xdist from honouring the xdist_group marks
(pytest-xdist issue 1386), so a group's tests ran on both workers. The test extra pins pytest below 9.2 and
test_module_structure.test_xdist_groups_are_honoured fails if the grouping stops taking again."""
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "Testing", "Data")
PROSTATE = os.path.join(DATA, "slicerrt-eclipse-prostate")
DICOMPYLER = os.path.join(DATA, "dicompyler-example")


def refdata(*parts):
    """A file or folder of the reference data (Testing/Data); a clear failure when the checkout lacks it."""
    path = os.path.join(DATA, *parts)
    if not os.path.exists(path):
        pytest.fail(f"reference data missing: {path} (Testing/Data is part of the repository: a partial checkout?)")
    return path


def need_browser():
    """Skip without Chromium, or fail when RNASSESS_REQUIRE_BROWSER says it must be there (CI)."""
    from RNAssessmentLib.output.browser import find_chromium
    if find_chromium() is None:
        if os.environ.get("RNASSESS_REQUIRE_BROWSER"):
            pytest.fail("RNASSESS_REQUIRE_BROWSER is set but no Chromium was found")
        pytest.skip("no Chromium on this machine (CI installs Debian's chromium and requires it)")


@pytest.fixture(scope="session")
def rendered():
    """Rendered scenarios, cached per session (rendering one costs a few seconds). Only two scenarios misalign
    their follow-ups; the others are the same scenario either way and are rendered once for both."""
    from RNAssessmentLib.teaching import phantom, scenarios
    cache = {}

    def get(name, misalign=True):
        scn = scenarios.get_scenario(name, misalign)
        other = (name, not misalign)
        if (name, misalign) not in cache:
            same = other in cache and scenarios.get_scenario(name, not misalign) == scn
            cache[(name, misalign)] = cache[other] if same else phantom.render_scenario(scn)
        return cache[(name, misalign)]
    return get


@pytest.fixture(scope="session")
def demo_assessment(rendered):
    """Each teaching case assessed end to end as `rnassess demo` assesses it (given boundaries, misaligned
    follow-ups registered here): (assessment, atlas fit), once per session; the boundary tests reuse the fit. The
    rest of the assessment's images are let go (a few hundred MB per case)."""
    from RNAssessmentLib.pipeline.assess import assess_case
    from RNAssessmentLib.teaching.demo import case_from_render
    from RNAssessmentLib.teaching.scenarios import get_scenario
    cache = {}

    def get(name):
        if name not in cache:
            assessment = assess_case(case_from_render(get_scenario(name), rendered(name)),
                                     log_callback=lambda m: None)
            cache[name] = (assessment, assessment.maps.atlas_fit)
        return cache[name]
    return get


def pytest_configure(config):
    """Under pytest-xdist with as many workers as cores, each worker's ITK filters get their share of the cores
    (one each on CI's two): two workers each running ITK on both cores contend for them (measured: four real-MRI
    cases 98 s on two threads per worker, 91 s on one). Registrations are single-threaded anyway
    (geometry.registration_method), so no result depends on this."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if workers:
        import SimpleITK as sitk
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, (os.cpu_count() or 1) // workers))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Tests parametrized by a teaching scenario (``name``) that render it (the session's ``rendered`` phantoms,
    directly or through a fixture) and are in no xdist group of their own go to that scenario's group: one worker
    renders the scenario (3.5 s for each of its two poses) and finds its brain, not both. A real-MRI case of the
    same name renders no phantom: grouped with it, it only made the group longer (the falx_cingulate_rn group
    held both real-MRI cases and the storage re-assessment, ~230 s in one piece at the end of the run), so it is
    scheduled on its own. Runs before pytest-xdist's own hook, which turns the marks into groups."""
    from RNAssessmentLib.teaching.scenarios import scenario_list
    names = {s.name for s in scenario_list()}
    for item in items:
        name = getattr(getattr(item, "callspec", None), "params", {}).get("name")
        if name in names and "rendered" in getattr(item, "fixturenames", ()) and \
                item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(f"scenario-{name}"))
