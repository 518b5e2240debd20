"""The DVC graph: changing one method's params reruns only that method's stages and the report.

Builds a temporary copy of the pipeline definition with placeholder outputs, commits them so
every stage is up to date, then edits params.yaml and asks `dvc repro --dry` what would run.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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
    for item in ("dvc.yaml", "params.yaml"):
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


def _would_run(cwd: Path, dotted: str, value) -> set[str]:
    """Stages `dvc repro` would run after setting a param: the changed ones (--dry) and all
    stages downstream of them."""
    params = yaml.safe_load((cwd / "params.yaml").read_text())
    original = (cwd / "params.yaml").read_text()
    node = params
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    (cwd / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        changed = set(re.findall(r"Running stage '([^']+)'", _dvc(cwd, "repro", "--dry")))
        return changed | _downstream(cwd, changed)
    finally:
        (cwd / "params.yaml").write_text(original)


def _method_stages(method: str) -> set[str]:
    return {
        f"{kind}@{ds}-{model}-{method}"
        for kind in ("unlearn", "evaluate")
        for ds in ("humanml3d", "motionx")
        for model in ("momask", "bamm")
    }


@pytest.mark.parametrize(
    ("dotted", "value", "method"),
    [
        ("lcr.r", 32, "lcr"),
        ("uce.target", "walk", "uce"),
        ("rece.epochs", 3, "rece"),
        ("finetune.epochs", 3, "finetune"),
    ],
)
def test_method_params_rerun_only_their_stages(pipeline, dotted, value, method):
    assert _would_run(pipeline, dotted, value) == _method_stages(method) | {"report"}


def test_keywords_rerun_split_and_what_follows(pipeline):
    ran = _would_run(pipeline, "toxicity.humanml3d.keywords", ["kick"])
    assert {"split@humanml3d", "stats@humanml3d", "train_evaluator@humanml3d"} <= ran
    assert not any("motionx" in name for name in ran)
    assert not any(name.startswith(("synth", "features", "srl")) for name in ran)
