"""The studies report: sections gathered in issue 14's order, a clear error for a missing one."""

import pytest

from hmu.studies.report import STUDIES, build_report, ordered


def _write(root, study, text):
    (root / study).mkdir(parents=True)
    (root / study / "section.md").write_text(text + "\n", encoding="utf-8")


def test_sections_in_study_order_under_the_header(tmp_path):
    _write(tmp_path, "implicit", "## 5. Implicit\n\nbody five")
    _write(tmp_path, "lcr_ablation", "## 1. LCR ablation\n\nbody one")
    _write(tmp_path, "attacks", "## 6. Attacks")  # present but not asked for: left out
    text = build_report(["implicit", "lcr_ablation"], tmp_path)
    assert text.startswith("# HMU studies (issue 14)")
    one, five = text.index("## 1. LCR ablation"), text.index("## 5. Implicit")
    assert one < five and "body five" in text[five:]
    assert "Attacks" not in text and "1. lcr_ablation, 5. implicit" in text
    assert text.endswith("body five\n")


def test_missing_section_names_the_stage(tmp_path):
    _write(tmp_path, "lcr_ablation", "## 1. LCR ablation")
    with pytest.raises(FileNotFoundError, match=r"\['causal'\].*studies/dvc.yaml:causal"):
        build_report(["lcr_ablation", "causal"], tmp_path)


def test_unknown_study_is_an_error():
    with pytest.raises(ValueError, match="unknown studies"):
        ordered(["lcr", "implicit"])
    assert ordered(list(reversed(STUDIES))) == list(STUDIES)
