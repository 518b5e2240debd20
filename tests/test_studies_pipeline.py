"""studies/dvc.yaml: every stage runs from the repository root, lists exactly its own
`studies.<study>` params (so changing one study reruns only that study and what reads it), and
writes its own metrics/studies/<study>/; the report gathers every study stage's section."""

from pathlib import Path

import pytest
import yaml

from hmu.studies.report import STUDIES

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "studies/dvc.yaml").read_text(encoding="utf-8"))["stages"]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
STUDY_STAGES = sorted(name for name in STAGES if name in STUDIES)


def _has_param(dotted: str) -> bool:
    node = PARAMS
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_runs_from_the_root_and_its_params_exist(name):
    stage = STAGES[name]
    assert stage.get("wdir") == "..", f"{name}: needs wdir: .."
    missing = [p for p in stage.get("params", []) if not _has_param(p)]
    assert not missing, f"{name}: params not in params.yaml: {missing}"


@pytest.mark.parametrize("name", STUDY_STAGES)
def test_study_stage_lists_only_its_own_studies_keys(name):
    stage = STAGES[name]
    studies_keys = {p for p in stage["params"] if p.split(".")[0] == "studies"}
    assert studies_keys == {f"studies.{name}", "studies.quick"}, name
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]]
    assert f"metrics/studies/{name}" in outs
    assert f"python stages/studies/{name}.py" in stage["cmd"]


def test_every_study_block_has_a_stage_and_the_report_gathers_them():
    assert set(PARAMS["studies"]) - {"quick"} == set(STUDY_STAGES)
    report = STAGES["studies_report"]
    assert sorted(report["cmd"].split()[2:]) == STUDY_STAGES
    assert not any(str(p).startswith("studies") for p in report.get("params", []))
    for name in STUDY_STAGES:
        assert f"metrics/studies/{name}/section.md" in report["deps"]
