"""Readable DVC views: the README's pipeline picture matches dvc.yaml, and `dvc plots show`
loads every declared plot (DVCLive training curves, the stats and report PNGs) without error."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from pipeline_graph import mermaid_block, readme_block, stage_kind  # noqa: E402

PNG = bytes.fromhex(  # a 1x1 PNG
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def test_readme_pipeline_picture_is_generated_from_dvc_yaml():
    block = mermaid_block(ROOT)
    assert readme_block((ROOT / "README.md").read_text(encoding="utf-8")) == block, (
        "README.md's pipeline graph is stale: run `python scripts/pipeline_graph.py --update`"
    )
    kinds = {  # the main pipeline's stage kinds and the studies' (studies/dvc.yaml)
        name
        for pipeline in ("dvc.yaml", "studies/dvc.yaml")
        for name in yaml.safe_load((ROOT / pipeline).read_text())["stages"]
    }
    edges = [line.split(" --> ") for line in block.splitlines() if line.startswith("  ")]
    assert {kind.strip() for edge in edges for kind in edge} == kinds  # every kind appears
    assert (
        stage_kind("unlearn@humanml3d-bamm-lcr") == "unlearn" and stage_kind("report") == "report"
    )


def _plot_paths(cwd: Path) -> list[Path]:
    """Stage plots (PNG folders) and top-level plots (DVCLive folders), as DVC expands them."""
    from dvc.repo import Repo

    with Repo(str(cwd)) as repo:
        stage_plots = [Path(o.fs_path) for s in repo.index.stages for o in s.outs if o.is_plot]
    top = [next(iter(p)) for p in yaml.safe_load((cwd / "dvc.yaml").read_text())["plots"]]
    return stage_plots + [cwd / p for p in top]


def test_plots_show_loads_every_declared_plot(tmp_path):
    for item in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / item, tmp_path / item)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, env=env, check=True)
    for path in _plot_paths(tmp_path):
        if path.name == "metrics":  # a DVCLive folder
            (path / "train").mkdir(parents=True)
            (path / "train" / "loss.tsv").write_text("step\tloss\n0\t1.0\n20\t0.5\n")
        else:
            path.mkdir(parents=True)
            (path / "scatter.png").write_bytes(PNG)
    out = subprocess.run(
        [sys.executable, "-m", "dvc", "plots", "show", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "failed" not in out.stderr + out.stdout
    shown = json.loads(out.stdout)
    assert "errors" not in shown
    curves = [p for p in shown["data"] if p.endswith("/live/plots/metrics/train/loss.tsv")]
    assert len(curves) == 16 and any(p.startswith("metrics/report_plots/") for p in shown["data"])
    assert not any(p.endswith(".md") for p in shown["data"])
