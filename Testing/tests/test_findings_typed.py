"""Typed results: an Assessment read back from its findings.json is the assessment that was written."""
import json

import pytest
from RNAssessmentLib.analysis.findings import Assessment, Finding, FindingKind


def _assessment():
    fs = [Finding(kind="noncontiguous_across_boundary", centroid_ras=(1.5, -2.0, 30.25), volume_mm3=120.0,
                  dose={"mean_gy": 14.2, "max_gy": 18.0}, evidence={"gap_mm": 6.1}, timepoint="fu1",
                  boundary="falx", gap_mm=6.1, segment="fu1 focus", description="New focus ..."),
          Finding(kind="mixed_response", centroid_ras=(0.0, 0.0, 0.0), volume_mm3=300.0, dose={}, from_="srs",
                  to="fu1", grew_mm3=200.0, regressed_mm3=100.0, portions=[{"state": "grew", "volume_mm3": 200.0}])]
    return Assessment(case_id="case 1", findings=fs, summary={"timepoints": [{"label": "srs"}, {"label": "fu1"}]},
                      warnings=["a warning"], inputs={"manifest": "/x/case.json"})


def test_an_assessment_reads_back_from_its_findings_json(tmp_path):
    a = _assessment()
    a.write(tmp_path / "findings.json")
    b = Assessment.read(tmp_path / "findings.json")
    assert b.to_dict() == a.to_dict()
    assert [f.kind for f in b.findings] == [FindingKind.NONCONTIGUOUS_ACROSS_BOUNDARY, FindingKind.MIXED_RESPONSE]
    assert b.findings[1].from_ == "srs" and b.findings[0].centroid_ras == (1.5, -2.0, 30.25)
    assert not b.maps.finding_masks and not b.maps.isodose          # maps live in memory only


def test_a_foreign_or_damaged_findings_json_is_refused(tmp_path):
    (tmp_path / "f.json").write_text(json.dumps({"findings": "none"}))
    with pytest.raises(ValueError, match="not an RNAssessment findings.json"):
        Assessment.read(tmp_path / "f.json")
    d = _assessment().to_dict()
    d["findings"][0]["kind"] = "tumour"
    with pytest.raises(ValueError, match="unknown finding kind 'tumour'"):
        Assessment.from_dict(d)
