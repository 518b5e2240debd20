"""The studies report: sections gathered in issue 14's order, a clear error for a missing one,
the measured study times quoted from their record."""

import json

import pytest

from hmu.studies.report import STUDIES, build_report, ordered


def _write(root, study, text):
    (root / study).mkdir(parents=True)
    (root / study / "section.md").write_text(text + "\n", encoding="utf-8")


def test_sections_in_study_order_under_the_header(tmp_path):
    _write(tmp_path, "implicit", "## 5. Implicit\n\nbody five")
    _write(tmp_path, "lcr_ablation", "## 1. LCR ablation\n\nbody one")
    _write(tmp_path, "attacks", "## 6. Attacks")  # present but not asked for: left out
    text = build_report(["implicit", "lcr_ablation"], tmp_path, tmp_path / "times.json")
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


def test_times_table_quotes_the_measured_run(tmp_path):
    _write(tmp_path, "lcr_ablation", "## 1. LCR ablation")
    _write(tmp_path, "causal", "## 4. Causal")
    times = tmp_path / "times.json"
    assert "not measured" in build_report(["lcr_ablation"], tmp_path, times)  # no record yet
    stages = {"studies/dvc.yaml:lcr_ablation": 165, "studies/dvc.yaml:studies_report": 2}
    record = {"command": "dvc repro", "machine": "2 cores", "total": 500, "stages": stages}
    times.write_text(json.dumps(record))
    text = build_report(["lcr_ablation", "causal"], tmp_path, times)
    assert "| lcr_ablation | 165 |" in text and "| causal | not measured |" in text
    assert "| **all** | **167** (3 min) |" in text and "2 cores" in text
    assert text.index("| lcr_ablation | 165 |") < text.index("## 1. LCR ablation")
