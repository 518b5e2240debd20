"""Bring your own checkpoints through DVC (issue 16): `dvc repro` in a temporary copy of the
pipeline (dvc.yaml, params.yaml, hmu/, stages/) with `source.humanml3d.*.kind: pretrained`,
upstream-format checkpoints with random weights (tests/upstream_files.py), a tiny CLIP text
state dict, the released evaluator's files and a tiny dataset folder in the real HumanML3D
layout (the embedded generator writes it, outside the pipeline: it stands for the user's data).

Checked: the import stages ran and no training function did (each import writes import.json,
a training writes train.json), tokenize, every unlearning method, evaluate and the report ran,
and the report has the expected rows. The slow test runs the whole flow (about 2-4 min here);
the fast ones check the pieces it relies on.

Why targets and not a bare `dvc repro`: the report and gallery stages list metrics/motionx as a
dependency whatever `datasets` says, and features@motionx always exists, so a HumanML3D-only
project runs `dvc repro --glob 'evaluate*@humanml3d-*'` and then `dvc repro -s report` (with an
empty metrics/motionx folder); docs/pretrained.md says so.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from upstream_files import released_evaluator, tiny_clip_state, upstream_files

from hmu.data.synth import SynthConfig, generate_dataset

ROOT = Path(__file__).resolve().parents[1]
DS = "humanml3d"
MODELS = ["momask", "bamm"]
METHODS = ["base", "finetune", "finetune_all", "uce", "rece", "lcr"]
PAIR_STAGES = ("train_vq", "train_trans", "train_res")  # import stages under pretrained
WORDS = ["unk", "sos", "eos", "person", "kick", "walk", "forward", "a", "the"]


def tiny_humanml3d(folder: Path) -> None:
    """A small dataset in the real HumanML3D layout (new_joint_vecs, texts, split files,
    Mean/Std), with toxic (kick, punch) and safe motions."""
    config = SynthConfig(motions=200, seed=0, mirror=False, toxic_share=0.3, test_forget=32,
                         test_retain=32, val_share=0.1)  # fmt: skip
    generate_dataset(folder, config.validated())


def pretrained_overrides(user: Path, retain: dict | None = None) -> dict:
    """The params a user of issue 16's recipe sets (paths to their files), at tiny sizes:
    both subsets imported unless `retain` says otherwise."""
    torch_clip = user / "clip_text.pt"
    import torch

    torch.save(tiny_clip_state(), torch_clip)
    return {
        "datasets": [DS],
        "models": MODELS,
        "methods": METHODS,
        "data": {DS: {"format": "humanml3d", "root": str(user / "HumanML3D"), "on_error": "skip"}},
        "generator": {"text_encoder": "clip", "clip_weights": str(torch_clip), "threads": 1},
        "evaluator": {"threads": 1, **released_evaluator(user / "t2m_evaluator", WORDS)},
        "source": {
            DS: {
                "all": upstream_files(user / "momask_all", seed=0),
                "retain": retain or upstream_files(user / "momask_retain", seed=1),
            }
        },
        "protocol": {
            "repetitions": 2,
            "prompt_repetitions": 2,
            "mm_replications": 2,
            "mm_batches": 1,
            "diversity_times": 10,
            "mm_times": 1,
            "mm_repetitions": 1,
            "seed": 0,
        },  # fmt: skip
        "prompts": {"seed": 0, "seen": 4, "heldout": 4, "mirrors": False},
        "generation": {"timesteps": 2, "batch_size": 64},
        "finetune": {"epochs": 1},
        "rece": {"epochs": 1},
        "lcr": {"r": 2, "min_support": 1},
        "precision": {"train": "fp32", "generate": "fp32"},
    }


def merge(base: dict, changes: dict) -> dict:
    """base with changes applied recursively (dicts merge, anything else replaces)."""
    out = dict(base)
    for key, value in changes.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merge(out[key], value) if both else value
    return out


def dvc(cwd: Path, *args: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(cwd)}
    out = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env,
                         capture_output=True, text=True, check=False)  # fmt: skip
    if out.returncode:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{out.stdout[-6000:]}\n{out.stderr}")
    return out.stdout


def make_project(tmp: Path, retain: dict | None = None) -> Path:
    """A copy of the pipeline in tmp/project whose params point at the user's files in tmp/user."""
    user, project = tmp / "user", tmp / "project"
    tiny_humanml3d(user / "HumanML3D")
    project.mkdir()
    for item in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / item, project / item)
    for folder in ("hmu", "stages"):
        shutil.copytree(
            ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    params = yaml.safe_load((project / "params.yaml").read_text())
    params = merge(params, pretrained_overrides(user, retain))
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc(project, "init", "--no-scm", "-q")
    return project


def repro(project: Path) -> str:
    """The flow: everything the humanml3d evaluations need, then the report."""
    out = dvc(project, "repro", "--glob", f"evaluate*@{DS}-*")
    (project / "metrics" / "motionx").mkdir(parents=True, exist_ok=True)
    return out + dvc(project, "repro", "-s", "report")


def ran_stages(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


@pytest.fixture(scope="module", params=["pretrained", "none"])
def flow(request, tmp_path_factory):
    """The project after the flow; D_r imported from the user's files, or left out (none)."""
    retain = {"kind": "none"} if request.param == "none" else None
    project = make_project(tmp_path_factory.mktemp(f"flow_{request.param}"), retain)
    start = time.perf_counter()
    output = repro(project)
    seconds = time.perf_counter() - start
    print(f"pretrained flow, retain {request.param}: dvc repro took {seconds:.0f} s")
    return project, ran_stages(output), request.param


@pytest.mark.slow
def test_repro_imports_and_trains_nothing(flow):
    project, ran, retain = flow
    pair = [s for s in ran if s.split("@")[0] in PAIR_STAGES]
    assert len(pair) == 2 * (2 + len(MODELS)), pair  # vq, res, and a transformer per model
    for stage in ("train_evaluator", "text_emb", "tokenize", "unlearn", "unlearn_control",
                  "unlearn_edit", "evaluate_reference", "evaluate", "report"):  # fmt: skip
        assert any(s.split("@")[0] == stage for s in ran), stage
    assert not any(s.startswith("synth") for s in ran)  # the user's folder, not the generator
    models = project / "models" / DS
    subsets = ("all", "retain") if retain == "pretrained" else ("all",)
    imported = [models / f"{p}_{s}" for p in ("vq", "res", *MODELS) for s in subsets]
    for folder in imported:
        record = json.loads((folder / "import.json").read_text())
        assert record["source"] == "pretrained", folder
        assert not (folder / "train.json").exists() and not (folder / "live").exists(), folder
    if retain == "none":  # the D_r pieces are markers, nothing trained or imported
        for piece in ("vq", "res", *MODELS):
            assert [p.name for p in (models / f"{piece}_retain").iterdir()] == ["absent.json"]
    judge = json.loads((project / "metrics" / DS / "evaluator.json").read_text())
    assert judge["train_pairs"] > 0  # the released judge is loaded, its instruments fitted


@pytest.mark.slow
def test_every_method_and_the_report(flow):
    project, _, retain = flow
    metrics = project / "metrics" / DS
    for model in MODELS:
        for method in METHODS:
            assert (project / "models" / DS / model / method / "method.json").exists()
            result = json.loads((metrics / model / f"{method}.json").read_text())
            if retain == "pretrained":
                assert result["excess"], (model, method)
            else:  # explicitly null, with the reason
                assert result["excess"] is None and "kind is none" in result["meta"]["excess"]
        reference = json.loads((metrics / model / "retrain.json").read_text())
        assert ("absent" in reference) == (retain == "none")
        assert (project / "models" / DS / model / "retrain").is_dir()
    report = (project / "metrics" / "report.md").read_text()
    rows = ["Real motion", "| MoMask |", "MoMask FT", "MoMask FT (all data)", "MoMask w/ UCE",
            "MoMask w/ RECE", "MoMask w/ LCR", "| BAMM |", "BAMM w/ LCR"]  # fmt: skip
    for row in rows + ["MoMask D_r (reference)", "BAMM D_r (reference)"] * (retain != "none"):
        assert row in report, row
    section = report.split("## humanml3d")[1]
    assert "Missing" not in section
    if retain == "none":
        assert "D_r (reference)" not in report
        assert section.count("No D_r reference: params.yaml source.") == 2
        assert "excess" not in section.split("#### humanml3d")[1].split("|---")[0]


def test_overrides_name_every_imported_file(tmp_path):
    """The fast check of the pieces: the params the flow sets are valid and point at files."""
    from hmu.params_schema import validate_params

    tiny_humanml3d(tmp_path / "HumanML3D")
    params = merge(yaml.safe_load((ROOT / "params.yaml").read_text()),
                   pretrained_overrides(tmp_path))  # fmt: skip
    validate_params(params)
    block = params["source"][DS]["all"]
    for path in (block["vq"], block["mean"], block["std"], block["res"], block["length"],
                 *block["trans"].values(), params["evaluator"]["checkpoint"]):  # fmt: skip
        assert Path(path).is_file(), path
    for name in ("new_joint_vecs", "texts", "train.txt", "test.txt", "Mean.npy", "Std.npy"):
        assert (tmp_path / "HumanML3D" / name).exists(), name
