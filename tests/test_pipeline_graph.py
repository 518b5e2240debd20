"""The DVC graph: changing one method's params reruns only that method's stages and the report.

Builds a temporary copy of the pipeline definition with placeholder outputs, commits them so
every stage is up to date, then sets a param as `dvc exp run -S` does (DVC's own function) and
asks `dvc repro --dry` what would run. Also: -S keeps params.yaml's layout, and the lists of
datasets, models and methods are said once.
"""

import difflib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hmu.eval.report import HAND_WRITTEN

ROOT = Path(__file__).resolve().parents[1]


def _dvc(cwd: Path, *args: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def _outputs(cwd: Path) -> list[str]:
    """Every out/metrics/plots path of every stage (matrix and foreach expanded by DVC)."""
    from dvc.repo import Repo

    with Repo(str(cwd)) as repo:
        return [str(Path(o.fs_path).relative_to(cwd)) for s in repo.index.stages for o in s.outs]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("pipeline")
    for item in ("dvc.yaml", "params.yaml", *HAND_WRITTEN):
        (cwd / item).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / item, cwd / item)
    for folder in ("hmu", "stages"):
        shutil.copytree(ROOT / folder, cwd / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["git", "init", "-q"], cwd=cwd, check=True)
    _dvc(cwd, "init", "-q")
    _dvc(cwd, "config", "core.analytics", "false")
    for rel in _outputs(cwd):
        path = cwd / rel
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}\n")
        else:
            path.mkdir(parents=True, exist_ok=True)
            (path / "placeholder").write_text("x\n")
    _dvc(cwd, "commit", "-f", "-q")
    assert "up to date" in _dvc(cwd, "repro", "--dry")
    return cwd


def _downstream(cwd: Path, names: set[str]) -> set[str]:
    """The stages that depend, directly or not, on the named ones (DVC's own graph)."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(cwd)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        by_name = {stage.name: stage for stage in graph.nodes}
        found = set()
        for name in names:
            found |= {stage.name for stage in nx.ancestors(graph, by_name[name])}
    return found


def _set_params(path: Path, *overrides: str) -> None:
    """Apply overrides to a params file the way `dvc exp run -S` does (DVC's own function)."""
    from dvc.utils.hydra import apply_overrides

    apply_overrides(str(path), list(overrides))


def _would_run(cwd: Path, override: str) -> set[str]:
    """Stages `dvc repro` would run after `dvc exp run -S <override>`: the changed ones (--dry)
    and all stages downstream of them."""
    original = (cwd / "params.yaml").read_text()
    _set_params(cwd / "params.yaml", override)
    try:
        changed = set(re.findall(r"Running stage '([^']+)'", _dvc(cwd, "repro", "--dry")))
        return changed | _downstream(cwd, changed)
    finally:
        (cwd / "params.yaml").write_text(original)


def _unlearn_stage(method: str, ds: str, model: str) -> str:
    if method == "finetune_all":
        return f"unlearn_control@{ds}-{model}"
    kind = "unlearn_edit" if method in ("uce", "rece") else "unlearn"
    return f"{kind}@{ds}-{model}-{method}"


def _method_stages(*methods: str) -> set[str]:
    return {
        stage
        for method in methods
        for ds in ("humanml3d", "motionx")
        for model in ("momask", "bamm")
        for stage in (_unlearn_stage(method, ds, model), f"evaluate@{ds}-{model}-{method}")
    }


@pytest.mark.parametrize(
    ("override", "methods"),
    [
        ("lcr.r=32", ["lcr"]),
        ("uce.target=walk", ["uce"]),
        ("edit.lam=0.2", ["uce", "rece"]),
        pytest.param("rece.epochs=3", ["rece"], marks=pytest.mark.slow),
        pytest.param("finetune.epochs=3", ["finetune", "finetune_all"], marks=pytest.mark.slow),
    ],
)
def test_method_params_rerun_only_their_stages(pipeline, override, methods):
    # the gallery shows every method's motions, so it follows any method's change
    assert _would_run(pipeline, override) == _method_stages(*methods) | {"report", "gallery"}


@pytest.mark.slow
def test_params_of_the_inactive_profile_rerun_nothing(pipeline):
    assert _would_run(pipeline, "trans.paper.train.steps=7") == set()


def test_keywords_rerun_split_and_what_follows(pipeline):
    ran = _would_run(pipeline, "toxicity.humanml3d.keywords=[kick]")
    assert {"split@humanml3d", "stats@humanml3d", "train_evaluator@humanml3d"} <= ran
    assert {"unlearn_edit@humanml3d-bamm-uce", "evaluate@humanml3d-bamm-lcr"} <= ran
    assert not any("motionx" in name for name in ran)
    assert not any(name.startswith(("synth", "features", "srl")) for name in ran)


def test_set_param_keeps_the_layout_of_params_yaml(tmp_path):
    """`dvc exp run -S` rewrites params.yaml: its layout must be the one DVC writes, so only the
    lines of changed values differ (here: none for the same values, one line for lcr.r)."""
    text = (ROOT / "params.yaml").read_text()
    data = yaml.safe_load(text)
    path = tmp_path / "params.yaml"
    path.write_text(text)
    lists = [k for k, v in data.items() if isinstance(v, list)]  # datasets, models, methods
    same = [f"{k}=[{','.join(data[k])}]" for k in lists]
    same += ["lcr.r=16", "uce.target=''", "edit.preserve_words=[walk,run,jump,wave,sit,stand,"
             "squat,throw,dance,turn,clap,bow]", "profile=small"]  # fmt: skip
    _set_params(path, *same)
    assert path.read_text() == text
    _set_params(path, "lcr.r=32")
    changed = [line for line in difflib.ndiff(text.splitlines(), path.read_text().splitlines())
               if line[:2] in ("- ", "+ ")]  # fmt: skip
    assert [" ".join(line.split("#")[0].split()) for line in changed] == ["- r: 16", "+ r: 32"]


def test_lists_are_said_once():
    """dvc.yaml builds its stages from params' datasets/models/methods; the unlearn stage kinds
    (unlearn, unlearn_edit, unlearn_control for finetune_all) split the methods and the D_r
    reference (retrain) between them, and the per-dataset entries cover every dataset."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    unlearn = stages["unlearn"]["matrix"]["method"] + stages["unlearn_edit"]["matrix"]["method"]
    assert "finetune_all" in stages["unlearn_control"]["cmd"]
    assert sorted([*unlearn, "finetune_all"]) == sorted(["retrain", *params["methods"]])
    assert stages["evaluate_reference"]["matrix"]["method"] == ["retrain"]
    assert stages["evaluate"]["matrix"] == {
        "dataset": "${datasets}",
        "model": "${models}",
        "method": "${methods}",
    }
    assert sorted(stages["features"]["foreach"]) == sorted(params["datasets"])
    report_deps = [
        d for d in stages["report"]["deps"] if d.startswith("metrics/") and d not in HAND_WRITTEN
    ]
    assert sorted(report_deps) == sorted(f"metrics/{ds}" for ds in params["datasets"])
